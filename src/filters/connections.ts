import { addressWords, formatAddressWords } from '../core/address.js';

/**
 * Per-process connection state for a filter whose messages name the peer only
 * sometimes (sshd): which address a host's process serves, when it was last
 * seen, and a few per-connection tallies.
 *
 * A botnet opens thousands of connections a second, each served by a new
 * pid, and each lives for minutes: as JavaScript objects in a Map keyed by
 * `host\0pid` strings they filled the old generation with garbage (~100 MB
 * between major collections at a million attackers). Here a connection is a
 * slot in typed arrays, found through a number made of the host's index and
 * the pid, and its address is held as numbers (addressWords): a connection
 * costs no string either, and keeps no log line alive.
 */

/** Linux pids are below 2^22 (pid_max's ceiling); a host's index is multiplied past them. */
const PID_RANGE = 4_194_304;
/** Hosts numbered before the numbering starts afresh (a syslog receiver for a whole network). */
const MAX_HOSTS = 65_536;

/** Scratch for comparisons (single-threaded: never held across calls). */
const WORDS = new Float64Array(3);

export class ConnectionTable {
  /** Peer address per slot, three words each (addressWords). */
  private readonly words: Float64Array;
  /** When the slot's process was last seen (log time, ms). */
  readonly times: Float64Array;
  /** Per-connection tallies for the filter's own use. */
  readonly counted: Int32Array;
  readonly flags: Uint8Array;
  /** The key each slot serves, NaN when the slot is free. */
  private readonly keys: Float64Array;
  /** Order of arrival per slot: eviction drops the oldest arrivals. */
  private readonly arrival: Float64Array;
  private nextArrival = 0;
  /**
   * Slots in order of arrival, with the arrival each was queued for: an entry whose slot has since
   * been released (or reused) is skipped. Twice the capacity, compacted when full.
   */
  private readonly queue: Int32Array;
  private readonly queueArrival: Float64Array;
  private queueHead = 0;
  private queueLength = 0;
  /**
   * Key → slot by open addressing (slot + 1; 0 = empty) at most half full, so a lookup reads one or
   * two neighbouring entries. A Map here rehashed as a botnet's connections came and went: a fifth of
   * sshd's filter time under a flood.
   */
  private readonly index: Int32Array;
  private readonly mask: number;
  private count = 0;
  /** Slots never used yet start at `fresh`; released ones are stacked in `free`. */
  private fresh = 0;
  private readonly free: Int32Array;
  private freeTop = 0;
  private readonly hostIndex = new Map<string, number>();
  /** Host names come from the log: the probe sequence must not be predictable. */
  private readonly seed = (Math.random() * 4294967296) | 0;

  constructor(private readonly capacity: number, private readonly ttlMs: number) {
    this.words = new Float64Array(3 * capacity);
    this.times = new Float64Array(capacity);
    this.counted = new Int32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.keys = new Float64Array(capacity).fill(Number.NaN);
    this.arrival = new Float64Array(capacity);
    this.free = new Int32Array(capacity);
    this.queue = new Int32Array(2 * capacity);
    this.queueArrival = new Float64Array(2 * capacity);
    const buckets = 2 ** Math.ceil(Math.log2(2 * capacity + 2));
    this.index = new Int32Array(buckets);
    this.mask = buckets - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The number that identifies `host`'s process `pid`. */
  key(host: string | null, pid: number): number {
    const name = host ?? '';
    let index = this.hostIndex.get(name);
    if (index === undefined) {
      if (this.hostIndex.size >= MAX_HOSTS) this.clear();
      index = this.hostIndex.size;
      this.hostIndex.set(name, index);
    }
    return index * PID_RANGE + (pid % PID_RANGE);
  }

  /** The slot of the connection `key`, or -1. */
  find(key: number): number {
    const { index, keys, mask } = this;
    for (let b = this.home(key); ; b = (b + 1) & mask) {
      const entry = index[b]!;
      if (entry === 0) return -1;
      if (keys[entry - 1] === key) return entry - 1;
    }
  }

  /** A new slot for `key` (not in the table) serving `address` (tallies zero), making room first if the table is full. */
  add(key: number, address: string, time: number): number {
    const words = wordsOf(address);
    if (this.count >= this.capacity) this.evict(time);
    const slot = this.freeTop > 0 ? this.free[--this.freeTop]! : this.fresh++;
    const { index, mask } = this;
    let b = this.home(key);
    while (index[b] !== 0) b = (b + 1) & mask;
    index[b] = slot + 1;
    this.keys[slot] = key;
    this.arrival[slot] = this.nextArrival;
    this.enqueue(slot, this.nextArrival++);
    this.count++;
    this.putWords(slot, words);
    this.times[slot] = time;
    this.counted[slot] = 0;
    this.flags[slot] = 0;
    return slot;
  }

  /** The address the slot's process serves, in canonical form. */
  address(slot: number): string {
    const w = this.words;
    return formatAddressWords(w[3 * slot]!, w[3 * slot + 1]!, w[3 * slot + 2]!);
  }

  /** Whether the slot's process serves `address` (canonical, as filters report it). */
  serves(slot: number, address: string): boolean {
    const w = this.words;
    return addressWords(address, WORDS, 0) && WORDS[2] === w[3 * slot + 2] && WORDS[1] === w[3 * slot + 1] && WORDS[0] === w[3 * slot];
  }

  /** Points `slot` at `address`, an IPv4 or IPv6 literal (a filter's canonicalAddress). */
  setAddress(slot: number, address: string): void {
    this.putWords(slot, wordsOf(address));
  }

  /** Element by element: TypedArray#set costs a builtin call, several times three stores. */
  private putWords(slot: number, words: Float64Array): void {
    const w = this.words;
    w[3 * slot] = words[0]!;
    w[3 * slot + 1] = words[1]!;
    w[3 * slot + 2] = words[2]!;
  }

  /**
   * Makes room in one sweep (amortised O(1) per connection): first every
   * connection older than the TTL, then, if still nearly full of live ones,
   * the older half by order of arrival.
   */
  private evict(now: number): void {
    const { keys, times } = this;
    for (let slot = 0; slot < this.fresh; slot++) if (keys[slot] === keys[slot] && now - times[slot]! > this.ttlMs) this.release(slot);
    if (this.count <= this.capacity * 0.9) return;
    for (let drop = this.count - Math.floor(this.capacity / 2); drop > 0; ) {
      // Every live slot is queued: running out would be a bug, never a reason to loop for ever.
      if (this.queueLength === 0) throw new Error('connection table: arrival queue ran out (internal error)');
      const slot = this.queue[this.queueHead]!;
      const live = keys[slot] === keys[slot] && this.arrival[slot] === this.queueArrival[this.queueHead];
      this.queueHead = (this.queueHead + 1) % this.queue.length;
      this.queueLength--;
      if (!live) continue;
      this.release(slot);
      drop--;
    }
  }

  private enqueue(slot: number, arrival: number): void {
    const size = this.queue.length;
    if (this.queueLength === size) {
      // Full of entries for slots released since: keep only the live ones, in order (at most `capacity`).
      const slots = new Int32Array(this.count);
      const arrivals = new Float64Array(this.count);
      let kept = 0;
      for (let i = 0; i < size; i++) {
        const at = (this.queueHead + i) % size;
        const s = this.queue[at]!;
        if (this.keys[s] !== this.keys[s] || this.arrival[s] !== this.queueArrival[at]) continue;
        slots[kept] = s;
        arrivals[kept++] = this.queueArrival[at]!;
      }
      this.queue.set(slots);
      this.queueArrival.set(arrivals);
      this.queueHead = 0;
      this.queueLength = kept;
    }
    const at = (this.queueHead + this.queueLength++) % size;
    this.queue[at] = slot;
    this.queueArrival[at] = arrival;
  }

  /** Frees a slot: its key leaves the index (later entries of its probe run shift back), the slot is stacked. */
  private release(slot: number): void {
    const { index, keys, mask } = this;
    let hole = this.home(keys[slot]!);
    while (index[hole] !== slot + 1) hole = (hole + 1) & mask;
    index[hole] = 0;
    // Backward shift: an entry after the hole moves into it unless its home lies cyclically in (hole, here].
    for (let b = (hole + 1) & mask; index[b] !== 0; b = (b + 1) & mask) {
      const home = this.home(keys[index[b]! - 1]!);
      const stays = hole < b ? home > hole && home <= b : home > hole || home <= b;
      if (stays) continue;
      index[hole] = index[b]!;
      index[b] = 0;
      hole = b;
    }
    keys[slot] = Number.NaN;
    this.free[this.freeTop++] = slot;
    this.count--;
  }

  private clear(): void {
    this.index.fill(0);
    this.keys.fill(Number.NaN);
    this.hostIndex.clear();
    this.count = this.fresh = this.freeTop = this.queueHead = this.queueLength = 0;
  }

  private home(key: number): number {
    let h = Math.imul((key | 0) ^ this.seed, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 16) ^ ((key / 4294967296) | 0), 0x85ebca6b);
    return (h ^ (h >>> 13)) & this.mask;
  }
}

/** The address's words in the scratch array; a filter hands over only what canonicalAddress accepted. */
function wordsOf(address: string): Float64Array {
  if (!addressWords(address, WORDS, 0)) throw new Error(`not an address: ${address}`);
  return WORDS;
}
