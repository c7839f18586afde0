import { ownCopy } from '../core/address.js';

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
 * the pid; only its address is a string, a copy so the log line can go.
 */

/** Linux pids are below 2^22 (pid_max's ceiling); a host's index is multiplied past them. */
const PID_RANGE = 4_194_304;
/** Hosts numbered before the numbering starts afresh (a syslog receiver for a whole network). */
const MAX_HOSTS = 65_536;

export class ConnectionTable {
  /** Peer address per slot. */
  readonly addresses: string[] = [];
  /** When the slot's process was last seen (log time, ms). */
  readonly times: Float64Array;
  /** Per-connection tallies for the filter's own use. */
  readonly counted: Int32Array;
  readonly flags: Uint8Array;
  private readonly slotOf = new Map<number, number>();
  private readonly free: number[] = [];
  private readonly hostIndex = new Map<string, number>();

  constructor(private readonly capacity: number, private readonly ttlMs: number) {
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
    if (this.slotOf.size >= this.capacity) this.evict(time);
    const slot = this.free.pop() ?? this.slotOf.size;
    this.slotOf.set(key, slot);
    this.addresses[slot] = ownCopy(address);
    this.times[slot] = time;
    this.counted[slot] = 0;
    this.flags[slot] = 0;
    return slot;
  }

  /** Points `slot` at `address` (a copy, when it changed). */
  setAddress(slot: number, address: string): void {
    if (this.addresses[slot] !== address) this.addresses[slot] = ownCopy(address);
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
    this.addresses[slot] = '';
    this.free.push(slot);
  }

  private clear(): void {
    this.slotOf.clear();
    this.hostIndex.clear();
    this.free.length = 0;
    this.addresses.length = 0;
  }
}
