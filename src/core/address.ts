/**
 * One canonical form for addresses and networks (DESIGN.md): IPv4-mapped IPv6
 * becomes IPv4, IPv6 is compressed lower-case (RFC 5952), zone ids are dropped.
 */

export type Family = 4 | 6;

export interface Network {
  family: Family;
  /** Network address as a bigint (host bits cleared). */
  base: bigint;
  prefix: number;
}

/** Canonical form of an address, or null if `text` is not an IP address. */
export function canonicalAddress(text: string): string | null {
  let s = text;
  if (s.length > 2 && s.charCodeAt(0) === 91 /* [ */ && s.charCodeAt(s.length - 1) === 93) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (parseIPv4(s, 0, s.length) >= 0) return s;
  if (!parseIPv6(s, GROUPS)) return null;
  if (isMappedIPv4(GROUPS)) return `${GROUPS[6]! >>> 8}.${GROUPS[6]! & 255}.${GROUPS[7]! >>> 8}.${GROUPS[7]! & 255}`;
  return formatIPv6Groups(GROUPS);
}

/**
 * The address as an unsigned 32-bit number, or -1 when s[start,end) is not a
 * dotted quad (four decimal octets, no leading zeros, as node:net's isIPv4).
 * Hand-written: it runs for every address a filter reports.
 */
export function parseIPv4(s: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (octets < 4) {
    const first = i;
    let octet = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + c - 48;
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && s.charCodeAt(first) === 48)) return -1;
    value = value * 256 + octet;
    octets++;
    if (octets < 4) {
      if (s.charCodeAt(i) !== 46 || i >= end) return -1;
      i++;
    }
  }
  return i === end ? value : -1;
}

/**
 * A copy of `s` that shares no memory with the string it was cut from: V8
 * slices strings of 13+ characters by reference, so an address kept in a long
 * lived map would otherwise keep its whole log line alive.
 */
export function ownCopy(s: string): string {
  if (s.length < 13) return s;
  const codes = new Array<number>(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = s.charCodeAt(i);
  return String.fromCharCode(...codes);
}

/** Scratch space for parseIPv6 on the hot path (single-threaded: never held across calls). */
const GROUPS = new Uint16Array(8);

const TWO_32 = 4294967296;

/**
 * Writes the address's 128-bit value to out[at], out[at+1], out[at+2] as three
 * exact doubles (48, 48 and 32 bits; IPv4 as IPv4-mapped IPv6), so that tables
 * can hold addresses as numbers rather than strings. False if `address` is not
 * an IPv4 or IPv6 literal.
 */
export function addressWords(address: string, out: Float64Array, at: number): boolean {
  // An event's address is looked up in several tables in a row (allowlist, counter, active bans, the
  // dashboard's offenders): the last one parsed is kept, and the same string is not parsed again.
  if (address !== lastAddress) {
    lastAddress = address;
    lastValid = parseAddressWords(address, LAST_WORDS);
  }
  if (lastValid) {
    out[at] = LAST_WORDS[0]!;
    out[at + 1] = LAST_WORDS[1]!;
    out[at + 2] = LAST_WORDS[2]!;
  }
  return lastValid;
}

let lastAddress = '';
let lastValid = false;
const LAST_WORDS = new Float64Array(3);

function parseAddressWords(address: string, out: Float64Array): boolean {
  const v4 = parseIPv4(address, 0, address.length);
  if (v4 >= 0) {
    out[0] = 0;
    out[1] = 0xffff;
    out[2] = v4;
    return true;
  }
  if (!parseIPv6(address, GROUPS)) return false;
  const g = GROUPS;
  out[0] = (g[0]! * 65536 + g[1]!) * 65536 + g[2]!;
  out[1] = (g[3]! * 65536 + g[4]!) * 65536 + g[5]!;
  out[2] = g[6]! * 65536 + g[7]!;
  return true;
}

/** The canonical text of an address given as addressWords wrote it. */
export function formatAddressWords(a: number, b: number, c: number): string {
  if (a === 0 && b === 0xffff) return `${c >>> 24}.${(c >>> 16) & 255}.${(c >>> 8) & 255}.${c & 255}`;
  const g = GROUPS;
  g[0] = a / TWO_32;
  g[1] = a / 65536;
  g[2] = a;
  g[3] = b / TWO_32;
  g[4] = b / 65536;
  g[5] = b;
  g[6] = c / 65536;
  g[7] = c;
  return formatIPv6Groups(g);
}

/** Parses an IPv6 address (`::` compression and a trailing dotted quad allowed) into eight 16-bit groups. */
export function parseIPv6(s: string, groups: Uint16Array): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === 58 /* : */) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
    if (i === n) { groups.fill(0); return true; }
  }
  while (i < n) {
    if (count === 8) return false;
    let value = 0;
    let digits = 0;
    const start = i;
    while (i < n && digits <= 4) {
      const c = s.charCodeAt(i);
      const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (i < n && s.charCodeAt(i) === 46 /* . */) {
      // A dotted quad ends the address and fills two groups.
      if (count > 6) return false;
      const v4 = parseIPv4(s, start, n);
      if (v4 < 0) return false;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = n;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    groups[count++] = value;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i++;
      if (i === n) break;
    } else if (i === n) {
      return false;
    }
  }
  if (gap < 0) return count === 8;
  if (count === 8) return false;
  // Move the groups after the gap to the end and zero the gap.
  const tail = count - gap;
  for (let k = 0; k < tail; k++) groups[7 - k] = groups[count - 1 - k]!;
  for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  return true;
}

function isMappedIPv4(g: Uint16Array): boolean {
  return g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;
}

/** RFC 5952 text: lower case, the longest run (first if tied) of two or more zero groups compressed. */
function formatIPv6Groups(g: Uint16Array): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    out += g[i]!.toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

export function addressFamily(address: string): Family {
  return address.includes(':') ? 6 : 4;
}

/** Parses `ADDR` or `ADDR/PREFIX` into a network (host bits cleared); null when invalid. */
export function parseNetwork(text: string): Network | null {
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const addr = canonicalAddress(addrText);
  if (addr === null) return null;
  const family = addressFamily(addr);
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    // An IPv4-mapped network like ::ffff:10.0.0.0/104 is an IPv4 /8.
    if (family === 4 && addrText.includes(':')) prefix -= 96;
    if (prefix < 0 || prefix > bits) return null;
  }
  const value = family === 4 ? ipv4ToBigInt(addr) : ipv6ToBigInt(addr);
  return { family, base: value & mask(family, prefix), prefix };
}

/** Canonical text of an address or CIDR: a full-length prefix is written as a bare address. */
export function canonicalTarget(text: string): string | null {
  const net = parseNetwork(text);
  return net === null ? null : formatNetwork(net);
}

export function formatNetwork(net: Network): string {
  const addr = net.family === 4 ? bigIntToIPv4(net.base) : bigIntToIPv6(net.base);
  return net.prefix === (net.family === 4 ? 32 : 128) ? addr : `${addr}/${net.prefix}`;
}

export function networkContains(net: Network, address: string): boolean {
  const family = addressFamily(address);
  if (family !== net.family) return false;
  const value = family === 4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  return (value & mask(family, net.prefix)) === net.base;
}

/** True when network `inner` lies entirely within `outer`. */
export function networkCovers(outer: Network, inner: Network): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && (inner.base & mask(outer.family, outer.prefix)) === outer.base;
}

/** The /prefix network containing `address`, in canonical CIDR text. */
export function prefixOf(address: string, prefix: number): string {
  const family = addressFamily(address);
  const value = family === 4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
  return formatNetwork({ family, base: value & mask(family, prefix), prefix });
}

function mask(family: Family, prefix: number): bigint {
  const bits = family === 4 ? 32n : 128n;
  const all = (1n << bits) - 1n;
  return prefix === 0 ? 0n : (all >> (bits - BigInt(prefix))) << (bits - BigInt(prefix));
}

function ipv4ToBigInt(s: string): bigint {
  return BigInt(parseIPv4(s, 0, s.length));
}

function bigIntToIPv4(v: bigint): string {
  const n = Number(v);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function ipv6ToBigInt(s: string): bigint {
  const g = new Uint16Array(8);
  parseIPv6(s, g);
  return (BigInt(g[0]! * 0x10000 + g[1]!) << 96n) | (BigInt(g[2]! * 0x10000 + g[3]!) << 64n) | (BigInt(g[4]! * 0x10000 + g[5]!) << 32n) | BigInt(g[6]! * 0x10000 + g[7]!);
}

function bigIntToIPv6(v: bigint): string {
  const g = new Uint16Array(8);
  for (let i = 7; i >= 0; i--) g[7 - i] = Number((v >> BigInt(i * 16)) & 0xffffn);
  return formatIPv6Groups(g);
}
