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
  private readonly slotOf = new Map<number, number>();
  private readonly free: number[] = [];
  private readonly hostIndex = new Map<string, number>();

  constructor(private readonly capacity: number, private readonly ttlMs: number) {
    this.words = new Float64Array(3 * (capacity + 1));
    this.times = new Float64Array(capacity + 1);
    this.counted = new Int32Array(capacity + 1);
    this.flags = new Uint8Array(capacity + 1);
  }

  get size(): number {
    return this.slotOf.size;
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
    return this.slotOf.get(key) ?? -1;
  }

  /** A new slot for `key` serving `address` (tallies zero), making room first if the table is full. */
  add(key: number, address: string, time: number): number {
    const words = wordsOf(address);
    if (this.slotOf.size >= this.capacity) this.evict(time);
    const slot = this.free.pop() ?? this.slotOf.size;
    this.slotOf.set(key, slot);
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
    this.slotOf.forEach((slot, key) => {
      if (now - this.times[slot]! > this.ttlMs) this.release(key, slot);
    });
    if (this.slotOf.size <= this.capacity * 0.9) return;
    let drop = this.slotOf.size - this.capacity / 2;
    for (const [key, slot] of this.slotOf) {
      if (drop-- <= 0) break;
      this.release(key, slot);
    }
  }

  private release(key: number, slot: number): void {
    this.slotOf.delete(key);
    this.free.push(slot);
  }

  private clear(): void {
    this.slotOf.clear();
    this.hostIndex.clear();
    this.free.length = 0;
  }
}

/** The address's words in the scratch array; a filter hands over only what canonicalAddress accepted. */
function wordsOf(address: string): Float64Array {
  if (!addressWords(address, WORDS, 0)) throw new Error(`not an address: ${address}`);
  return WORDS;
}
