import { isIPv4, isIPv6 } from 'node:net';

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
  if (isIPv4(s)) return s;
  if (!isIPv6(s)) return null;
  const value = ipv6ToBigInt(s);
  if (value >> 32n === 0xffffn) return bigIntToIPv4(value & 0xffffffffn);
  return bigIntToIPv6(value);
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
  const p = s.split('.');
  return BigInt(((+p[0]! << 24) >>> 0) + (+p[1]! << 16) + (+p[2]! << 8) + +p[3]!);
}

function bigIntToIPv4(v: bigint): string {
  const n = Number(v);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function ipv6ToBigInt(s: string): bigint {
  let text = s.toLowerCase();
  // Embedded dotted quad at the end (::ffff:1.2.3.4, 64:ff9b::1.2.3.4).
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = Number(ipv4ToBigInt(tail));
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const dbl = text.indexOf('::');
  let groups: string[];
  if (dbl >= 0) {
    const head = text.slice(0, dbl) ? text.slice(0, dbl).split(':') : [];
    const rest = text.slice(dbl + 2) ? text.slice(dbl + 2).split(':') : [];
    groups = [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  } else {
    groups = text.split(':');
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

function bigIntToIPv6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (first if tied) of two or more zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
