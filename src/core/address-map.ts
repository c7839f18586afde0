import { addressWords } from './address.js';

/**
 * A map from addresses to numbers (or null) for tables an attack fills: the
 * active bans looked up on every failure, the dashboard's offenders.
 *
 * A Map keyed by address strings costs a chain walk that reads each key
 * string somewhere else in the heap: at 100,000 entries that is several
 * cache misses, ~0.5 µs a lookup under a flood. Here an address is keyed by
 * its 128-bit value (IPv4 as IPv4-mapped IPv6, so both spellings are one key)
 * in typed arrays with open addressing: a lookup parses the address and reads
 * one or two neighbouring rows. Keys that are not a single address (a
 * network like `203.0.113.0/24`) go to a small Map beside it.
 */

/**
 * Row layout: the address's 48-, 48- and 32-bit parts and the value (NaN for
 * null). Four doubles, 32 bytes: a lookup reads one cache line. The first
 * part marks free rows: an address's is never negative.
 */
const STRIDE = 4;
const EMPTY = -1;
const MIN_CAPACITY = 64;
const TWO_32 = 4294967296;
const KEY = new Float64Array(3);

export class AddressMap {
  private capacity = MIN_CAPACITY;
  private rows = new Float64Array(MIN_CAPACITY * STRIDE).fill(EMPTY);
  private live = 0;
  private readonly other = new Map<string, number | null>();
  /** Addresses are attacker-chosen: the probe sequence must not be predictable. */
  private readonly seed = (Math.random() * TWO_32) | 0;

  get size(): number {
    return this.live + this.other.size;
  }

  has(key: string): boolean {
    return addressWords(key, KEY, 0) ? this.find() >= 0 : this.other.has(key);
  }

  get(key: string): number | null | undefined {
    if (!addressWords(key, KEY, 0)) return this.other.get(key);
    const o = this.find();
    if (o < 0) return undefined;
    const v = this.rows[o + 3]!;
    return Number.isNaN(v) ? null : v;
  }

  set(key: string, value: number | null): void {
    if (!addressWords(key, KEY, 0)) {
      this.other.set(key, value);
      return;
    }
    const o = this.findOrClaim(); // may rebuild the rows: read them after
    this.rows[o + 3] = value === null ? Number.NaN : value;
  }

  delete(key: string): boolean {
    if (!addressWords(key, KEY, 0)) return this.other.delete(key);
    const o = this.find();
    if (o < 0) return false;
    this.vacate(o);
    this.live--;
    if (this.capacity > MIN_CAPACITY && this.live * 8 < this.capacity) this.rebuild(this.capacity / 2);
    return true;
  }

  /**
   * Empties a row and moves later rows of its probe run back into the hole, so that every key stays
   * reachable from its home row without tombstones: a table that keeps its size while an attack churns
   * through it (the offenders, bans ending as others begin) never fills with them and is never rebuilt.
   */
  private vacate(hole: number): void {
    const rows = this.rows;
    const mask = this.capacity - 1;
    let i = hole / STRIDE;
    for (let j = (i + 1) & mask; rows[j * STRIDE]! !== EMPTY; j = (j + 1) & mask) {
      const o = j * STRIDE;
      const home = hashAddressWords(this.seed, rows[o]!, rows[o + 1]!, rows[o + 2]!) & mask;
      // A row whose home lies cyclically in (i, j] is reachable where it is; any other would be cut off by the hole.
      if (i <= j ? i < home && home <= j : i < home || home <= j) continue;
      rows.copyWithin(i * STRIDE, o, o + STRIDE);
      i = j;
    }
    rows[i * STRIDE] = EMPTY;
  }

  clear(): void {
    this.other.clear();
    this.capacity = MIN_CAPACITY;
    this.rows = new Float64Array(MIN_CAPACITY * STRIDE).fill(EMPTY);
    this.live = 0;
  }

  /** The offset of the row holding the key in KEY, or -1. */
  private find(): number {
    const a = KEY[0]!, b = KEY[1]!, c = KEY[2]!;
    const rows = this.rows;
    const mask = this.capacity - 1;
    for (let row = hashAddressWords(this.seed, a, b, c) & mask; ; row = (row + 1) & mask) {
      const o = row * STRIDE;
      const ra = rows[o]!;
      if (ra === EMPTY) return -1;
      if (ra === a && rows[o + 1] === b && rows[o + 2] === c) return o;
    }
  }

  /** The offset of the row holding the key in KEY, claimed for it when it is not there yet. */
  private findOrClaim(): number {
    const found = this.find();
    if (found >= 0) return found;
    // Grow at half full: probe runs stay short.
    if ((this.live + 1) * 2 > this.capacity) this.rebuild(this.capacity * 2);
    const o = this.place(KEY[0]!, KEY[1]!, KEY[2]!);
    this.live++;
    return o;
  }

  /** Writes a key not in the table into its first free row; returns the row's offset. */
  private place(a: number, b: number, c: number): number {
    const rows = this.rows;
    const mask = this.capacity - 1;
    let o = (hashAddressWords(this.seed, a, b, c) & mask) * STRIDE;
    while (rows[o]! !== EMPTY) o = (o + STRIDE) & (mask * STRIDE + STRIDE - 1);
    rows[o] = a;
    rows[o + 1] = b;
    rows[o + 2] = c;
    return o;
  }

  private rebuild(capacity: number): void {
    const old = this.rows;
    this.capacity = capacity;
    this.rows = new Float64Array(capacity * STRIDE).fill(EMPTY);
    for (let o = 0; o < old.length; o += STRIDE) {
      if (old[o]! === EMPTY) continue;
      const n = this.place(old[o]!, old[o + 1]!, old[o + 2]!);
      this.rows[n + 3] = old[o + 3]!;
    }
  }
}

/** Seeded 32-bit hash of an address's parts as addressWords gives them (murmur3's steps over five 32-bit words). */
export function hashAddressWords(seed: number, a: number, b: number, c: number): number {
  let h = seed;
  h = mix(h, a | 0);
  h = mix(h, (a / TWO_32) | 0);
  h = mix(h, b | 0);
  h = mix(h, (b / TWO_32) | 0);
  h = mix(h, c | 0);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function mix(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
