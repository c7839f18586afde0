/**
 * Per-address failure counting for one jail: `maxretry` failures within
 * `findtime` → the address is due a ban. Times are the log lines' own times.
 *
 * A botnet makes a million of these entries, each failing once or twice, so
 * an entry is one 80-byte row of a Float64Array, invisible to the garbage
 * collector, instead of a JavaScript object, a Map entry, a key string and
 * arrays (~300 bytes). Addresses are
 * keyed by their numeric value in a chained hash table on typed arrays; a key
 * that is not an address (a network in the recidive jail) goes to a small Map.
 *
 * Expiry walks a FIFO ring of entries in the order they were queued, and every
 * entry is in it exactly once: an entry at the front that is idle for findtime
 * is dropped, one still active is moved to the back (at most once per
 * findtime of its life), one forgotten or tripped is only recycled when the
 * walk reaches it. So a failure costs one lookup, expiry never scans every
 * address, and when most entries have aged out the table is rebuilt smaller,
 * giving the memory back.
 */

import { addressWords } from '../core/address.js';
import { hashAddressWords } from '../core/address-map.js';

export interface JailLimits {
  maxretry: number;
  /** Milliseconds. */
  findtime: number;
}

export interface Trip<R> {
  address: string;
  /** What was recorded with the failures that counted (their lines, or ids to read them back by), oldest first. */
  evidence: R[];
  failures: number;
}

/**
 * Row layout: the key (a 128-bit address in three doubles of ≤ 48 bits),
 * chain link, failures, when queued, and the first two failures' times and
 * refs (an id as is, a line as -(its slot + 1)).
 */
const STRIDE = 10;
const KEY_A = 0;
const KEY_B = 1;
const KEY_C = 2;
const NEXT = 3;
/** Failures in the window; 0 = the entry is dead (tripped or forgotten) and waits for the expiry walk to recycle it. */
const COUNT = 4;
const TIME0 = 5;
const TIME1 = 6;
const QUEUED = 7;
const REF0 = 8;
const REF1 = 9;

const MIN_CAPACITY = 1024;
const TWO_32 = 4294967296;
/** Scratch for keyOf (single-threaded: never held across calls). */
const KEY = new Float64Array(3);

/** Failure i (oldest first) of the entry at row offset o: the first two in the row, the rest in `more`. */
function timeAt(rows: Float64Array, o: number, more: number[] | undefined, i: number): number {
  return i === 0 ? rows[o + TIME0]! : i === 1 ? rows[o + TIME1]! : more![2 * i - 4]!;
}

function refAt(rows: Float64Array, o: number, more: number[] | undefined, i: number): number {
  return i === 0 ? rows[o + REF0]! : i === 1 ? rows[o + REF1]! : more![2 * i - 3]!;
}

/**
 * `R` is what is kept per failure for the evidence: the log line itself, or
 * (in the daemon) the id of the failure's row in the state database, so a
 * million attackers' lines are not held in memory.
 */
export class FailureCounter<R extends string | number = string> {
  private capacity = MIN_CAPACITY;
  private rows = new Float64Array(MIN_CAPACITY * STRIDE);
  /** Hash bucket → first entry of its chain, or -1. As many buckets as rows. */
  private buckets = new Int32Array(MIN_CAPACITY).fill(-1);
  /** Entries in expiry order: a ring of `capacity` slots, `queued` of them from `head`. */
  private queue = new Int32Array(MIN_CAPACITY);
  private head = 0;
  private queued = 0;
  /** Rows handed out so far; recycled rows are chained through NEXT from `free`. */
  private used = 0;
  private free = -1;
  private live = 0;
  /** Failures beyond the second, as time, ref pairs, for the few entries that have more than two in the window. */
  private readonly more = new Map<number, number[]>();
  /** Lines recorded as refs, by slot; free slots are reused. */
  private readonly lineSlots: string[] = [];
  private readonly freeSlots: number[] = [];
  /** Keys that are not IP addresses, and the reverse. */
  private readonly named = new Map<string, number>();
  private readonly names = new Map<number, string>();
  /** Per-counter hash seed: addresses are attacker-chosen, so chains must not be predictable. */
  private readonly seed = (Math.random() * TWO_32) | 0;
  /** Set by find(): whether the key it looked up was an address. */
  private isAddress = false;
  private keyA = 0;
  private keyB = 0;
  private keyC = 0;
  private newest = -Infinity;
  private lastSweep = -Infinity;

  constructor(private readonly limits: JailLimits) {}

  /** Records a failure; returns a Trip when the address reached maxretry (its counter is then reset). */
  record(address: string, time: number, ref: R): Trip<R> | null {
    const { maxretry, findtime } = this.limits;
    if (time > this.newest) this.newest = time;
    if (this.lastSweep === -Infinity) this.lastSweep = time;
    // A sweep per 1/16 of findtime (of log time) keeps memory bounded at O(1) amortised cost. It comes
    // before the lookup: a sweep may rebuild the table smaller and renumber every entry, and an entry
    // number held across it pointed at another row (a trip then unlinked a row from a chain it was
    // not in, and looped for ever).
    if (this.newest - this.lastSweep >= findtime / 16) this.sweep(this.newest);
    let e = this.find(address);
    let count: number;
    if (e < 0) {
      e = this.insert(address, time);
      this.rows[e * STRIDE + REF0] = this.encode(ref);
      count = 1;
    } else {
      count = this.add(e, time, ref, time - findtime, maxretry);
    }
    if (count < maxretry) return null;
    const evidence = this.windowRefs(e).map((r) => this.decode(r));
    this.kill(e);
    return { address, evidence, failures: count };
  }

  /** Forgets an address (after a ban, or when it was allowlisted). */
  forget(address: string): void {
    const e = this.find(address);
    if (e >= 0) this.kill(e);
  }

  /** Removes addresses whose last failure is older than findtime before `now` (log time, ms since the epoch). */
  expire(now: number): number {
    return this.lastSweep === -Infinity ? 0 : this.sweep(now);
  }

  /** Addresses with failures still inside the window. */
  get size(): number {
    return this.live;
  }

  failuresOf(address: string): number {
    const e = this.find(address);
    return e < 0 ? 0 : this.rows[e * STRIDE + COUNT]!;
  }

  /** Adds a failure to a live entry, dropping those at or before `limit` and beyond maxretry; returns the count. */
  private add(e: number, at: number, ref: R, limit: number, maxretry: number): number {
    const rows = this.rows;
    const o = e * STRIDE;
    const n = rows[o + COUNT]!;
    let count: number;
    if (n === 1 && rows[o + TIME0]! <= limit) {
      // The one failure held has aged out: the new one replaces it (the botnet case, no allocation).
      this.drop(rows[o + REF0]!);
      rows[o + TIME0] = at;
      rows[o + REF0] = this.encode(ref);
      count = 1;
    } else if (n === 1 && maxretry >= 2) {
      rows[o + TIME1] = at;
      rows[o + REF1] = this.encode(ref);
      rows[o + COUNT] = count = 2;
    } else {
      count = this.addSlow(e, at, ref, limit, maxretry);
    }
    return count;
  }

  /**
   * The general case (a third failure and on): the failures beyond the first two are time, ref pairs
   * in the entry's `more` array, appended to, and the window trimmed from the front in place. A flood
   * brings every address here several times: no array is made per failure, only one per entry.
   */
  private addSlow(e: number, at: number, ref: R, limit: number, maxretry: number): number {
    const rows = this.rows;
    const o = e * STRIDE;
    let n = rows[o + COUNT]!;
    let more = this.more.get(e);
    if (n === 1) {
      rows[o + TIME1] = at;
      rows[o + REF1] = this.encode(ref);
    } else {
      if (more === undefined) this.more.set(e, (more = []));
      more.push(at, this.encode(ref));
    }
    n++;
    let drop = 0;
    while (n - drop > 1 && (timeAt(rows, o, more, drop) <= limit || n - drop > maxretry)) this.drop(refAt(rows, o, more, drop++));
    if (drop > 0) {
      const kept = n - drop;
      const t0 = timeAt(rows, o, more, drop), r0 = refAt(rows, o, more, drop);
      const t1 = kept > 1 ? timeAt(rows, o, more, drop + 1) : 0, r1 = kept > 1 ? refAt(rows, o, more, drop + 1) : 0;
      rows[o + TIME0] = t0;
      rows[o + REF0] = r0;
      rows[o + TIME1] = t1;
      rows[o + REF1] = r1;
      if (more !== undefined) {
        // The failures from drop + 2 on move to the front of `more`.
        if (kept > 2) more.copyWithin(0, 2 * drop);
        more.length = Math.max(0, 2 * (kept - 2));
      }
    }
    if (more !== undefined && more.length === 0) this.more.delete(e);
    return (rows[o + COUNT] = n - drop);
  }

  /** A live entry's refs, oldest first (for a trip's evidence). */
  private windowRefs(e: number): number[] {
    const rows = this.rows;
    const o = e * STRIDE;
    const n = rows[o + COUNT]!;
    const refs = n === 1 ? [rows[o + REF0]!] : [rows[o + REF0]!, rows[o + REF1]!];
    const more = this.more.get(e);
    if (more !== undefined) for (let i = 1; i < more.length; i += 2) refs.push(more[i]!);
    return refs;
  }

  /** The newest failure time of a live entry (lines can arrive slightly out of order). */
  private newestOf(e: number): number {
    const o = e * STRIDE;
    const n = this.rows[o + COUNT]!;
    let t = this.rows[o + TIME0]!;
    if (n >= 2) t = Math.max(t, this.rows[o + TIME1]!);
    if (n > 2) {
      const more = this.more.get(e)!;
      for (let i = 0; i < more.length; i += 2) if (more[i]! > t) t = more[i]!;
    }
    return t;
  }

  /** A ref as stored in a row: ids (≥ 0) as they are, lines in a slot. */
  private encode(ref: R): number {
    if (typeof ref === 'number') return ref;
    const slot = this.freeSlots.length > 0 ? this.freeSlots.pop()! : this.lineSlots.length;
    this.lineSlots[slot] = ref;
    return -(slot + 1);
  }

  private decode(r: number): R {
    return (r >= 0 ? r : this.lineSlots[-r - 1]!) as R;
  }

  /** Lets go of a ref that left the window. */
  private drop(r: number): void {
    if (r >= 0) return;
    this.lineSlots[-r - 1] = '';
    this.freeSlots.push(-r - 1);
  }

  private sweep(now: number): number {
    this.lastSweep = now;
    const limit = now - this.limits.findtime;
    const rows = this.rows;
    let removed = 0;
    // Only the entries queued now are looked at: one moved to the back is not seen again in this sweep.
    for (let left = this.queued; left > 0; left--) {
      const e = this.queue[this.head]!;
      const o = e * STRIDE;
      if (rows[o + COUNT] !== 0) {
        // Queued in the window: so is everything behind it.
        if (rows[o + QUEUED]! > limit) break;
        if (this.newestOf(e) <= limit) {
          this.kill(e);
          removed++;
        } else {
          rows[o + QUEUED] = now;
          this.pop();
          this.push(e);
          continue;
        }
      }
      this.pop();
      this.recycle(e);
    }
    if (this.capacity > MIN_CAPACITY && this.live * 4 < this.capacity) this.resize(Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(this.live * 2 + 1))));
    return removed;
  }

  /** Looks `address` up; leaves its key in keyA..C. Returns the entry or -1. */
  private find(address: string): number {
    this.isAddress = this.keyOf(address);
    if (!this.isAddress) return this.named.get(address) ?? -1;
    const rows = this.rows;
    const a = this.keyA;
    const b = this.keyB;
    const c = this.keyC;
    for (let e = this.buckets[this.hash(a, b, c) & (this.capacity - 1)]!; e >= 0; e = rows[e * STRIDE + NEXT]!) {
      const o = e * STRIDE;
      if (rows[o + KEY_C] === c && rows[o + KEY_B] === b && rows[o + KEY_A] === a) return e;
    }
    return -1;
  }

  /** A new live entry for the key find() just looked up. */
  private insert(address: string, time: number): number {
    if (this.free < 0 && this.used === this.capacity) this.resize(this.capacity * 2);
    let e: number;
    if (this.free >= 0) {
      e = this.free;
      this.free = this.rows[e * STRIDE + NEXT]!;
    } else {
      e = this.used++;
    }
    const rows = this.rows;
    const o = e * STRIDE;
    rows[o + COUNT] = 1;
    rows[o + TIME0] = time;
    rows[o + TIME1] = 0;
    rows[o + QUEUED] = time;
    if (this.isAddress) {
      rows[o + KEY_A] = this.keyA;
      rows[o + KEY_B] = this.keyB;
      rows[o + KEY_C] = this.keyC;
      this.link(e);
    } else {
      rows[o + KEY_A] = rows[o + KEY_B] = rows[o + KEY_C] = Number.NaN;
      this.named.set(address, e);
      this.names.set(e, address);
    }
    this.push(e);
    this.live++;
    return e;
  }

  /** Ends an entry's life: out of the index now, its row recycled when the expiry walk reaches it. */
  private kill(e: number): void {
    const rows = this.rows;
    const o = e * STRIDE;
    const name = this.names.get(e);
    if (name !== undefined) {
      this.named.delete(name);
      this.names.delete(e);
    } else {
      const bucket = this.hash(rows[o + KEY_A]!, rows[o + KEY_B]!, rows[o + KEY_C]!) & (this.capacity - 1);
      let prev = -1;
      for (let x = this.buckets[bucket]!; x !== e; x = rows[x * STRIDE + NEXT]!) {
        // A broken chain would loop here for ever: fail loudly instead.
        if (x < 0) throw new Error(`failure counter: entry ${e} is not in its hash chain (internal error)`);
        prev = x;
      }
      if (prev < 0) this.buckets[bucket] = rows[o + NEXT]!;
      else rows[prev * STRIDE + NEXT] = rows[o + NEXT]!;
    }
    // Only lines held in slots need letting go; ids (the daemon's) are left as they are.
    if (this.lineSlots.length > 0) for (const r of this.windowRefs(e)) this.drop(r);
    rows[o + COUNT] = 0;
    this.more.delete(e);
    this.live--;
  }

  private recycle(e: number): void {
    this.rows[e * STRIDE + NEXT] = this.free;
    this.free = e;
  }

  private link(e: number): void {
    const o = e * STRIDE;
    const bucket = this.hash(this.rows[o + KEY_A]!, this.rows[o + KEY_B]!, this.rows[o + KEY_C]!) & (this.capacity - 1);
    this.rows[o + NEXT] = this.buckets[bucket]!;
    this.buckets[bucket] = e;
  }

  private push(e: number): void {
    this.queue[(this.head + this.queued) & (this.capacity - 1)] = e;
    this.queued++;
  }

  private pop(): void {
    this.head = (this.head + 1) & (this.capacity - 1);
    this.queued--;
  }

  /**
   * Rebuilds the table with room for `capacity` entries: live entries are
   * copied in queue order (so the queue becomes 0..live-1), dead ones dropped.
   */
  private resize(capacity: number): void {
    const old = this.rows;
    const rows = new Float64Array(capacity * STRIDE);
    const queue = new Int32Array(capacity);
    const renumber = new Int32Array(this.capacity);
    let n = 0;
    for (let i = 0; i < this.queued; i++) {
      const e = this.queue[(this.head + i) & (this.capacity - 1)]!;
      if (old[e * STRIDE + COUNT] === 0) continue;
      for (let f = 0; f < STRIDE; f++) rows[n * STRIDE + f] = old[e * STRIDE + f]!;
      queue[n] = n;
      renumber[e] = ++n;
    }
    this.rows = rows;
    this.queue = queue;
    this.capacity = capacity;
    this.head = 0;
    this.queued = this.used = this.live = n;
    this.free = -1;
    this.buckets = new Int32Array(capacity).fill(-1);
    // renumber[e] is the new number + 1 (0: dropped).
    for (const map of [this.more, this.names] as Map<number, unknown>[]) {
      const entries = [...map];
      map.clear();
      for (const [e, v] of entries) if (renumber[e]! > 0) map.set(renumber[e]! - 1, v);
    }
    this.named.clear();
    for (const [e, name] of this.names) this.named.set(name, e);
    for (let e = 0; e < n; e++) if (!this.names.has(e)) this.link(e);
  }

  /** Puts the address's 128-bit value into keyA..C (IPv4 as IPv4-mapped IPv6); false if it is not an address. */
  private keyOf(address: string): boolean {
    if (!addressWords(address, KEY, 0)) return false;
    this.keyA = KEY[0]!;
    this.keyB = KEY[1]!;
    this.keyC = KEY[2]!;
    return true;
  }

  private hash(a: number, b: number, c: number): number {
    return hashAddressWords(this.seed, a, b, c);
  }
}

