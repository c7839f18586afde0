import { AddressMap } from '../core/address-map.js';
import { ownCopy } from '../core/address.js';

/**
 * The addresses with the most failures and bans over the last day, for the
 * dashboard's top offenders, at a bounded size and a constant cost per event.
 *
 * A botnet brings more addresses than the table holds, so a newcomer must
 * push someone out. Sorting the table to find who (what a plain Map needs)
 * costs O(n log n) every few thousand events under a flood; instead, a few
 * slots are sampled and the lightest of them (stale ones first) is reused, as
 * Redis approximates LFU eviction. Heavy hitters are almost never sampled as
 * the lightest, so the top of the table stays right; only the tail is
 * approximate. Once the table is full, a newcomer's failure gets it in one
 * time in ADMISSION (a heavy hitter comes back soon enough), and its ban
 * when the lightest sampled weighs less than a ban or is stale, so neither
 * a spray of one-off addresses nor a burst of one-off bans churns the table
 * on every line (a burst of 100,000 bans spent half of its dashboard time
 * here when each ban pushed another out). Counts live in typed
 * arrays: no object per address; a slot's counts and time side by side, so
 * that sampling a slot reads one cache line, not three.
 */

/** Slots compared per eviction: more is more exact and slower (Redis samples 5). */
const EVICTION_SAMPLE = 5;
/** Once full, a newcomer is admitted with probability 1/ADMISSION (a power of two). */
const ADMISSION = 8;
/** What a ban weighs against failures, in the ranking and for getting in. */
export const BAN_WEIGHT = 10;
/** The layout of a slot's row in `stats`. */
const STATS = 3;
const FAILURES = 0;
const BANS = 1;
const LAST = 2;

export interface OffenderEntry {
  address: string;
  failures: number;
  bans: number;
  /** Jails that saw the address, in no particular order. */
  jails: readonly string[];
  last: number;
}

export class OffenderTable {
  /** Address → slot; keyed by the address's value, so a lookup reads no key string. */
  private readonly slotOf = new AddressMap();
  private readonly addresses: string[] = [];
  /**
   * Jails per slot as bits of jailNames' indices: reading a per-slot array was
   * a cache miss on every event. Jails past the 32nd (rare) go to moreJails.
   */
  private readonly jailBits: Uint32Array;
  private readonly moreJails = new Map<number, Set<string>>();
  private readonly jailNames: string[] = [];
  private readonly jailIndex = new Map<string, number>();
  /** Per slot: failures, bans, last seen (ms). */
  private readonly stats: Float64Array;
  /** A xorshift state: eviction samples need to be cheap, not good. */
  private seed = 0x9e3779b9;

  constructor(readonly capacity: number, private readonly maxAgeMs: number) {
    this.jailBits = new Uint32Array(capacity);
    this.stats = new Float64Array(capacity * STATS);
  }

  get size(): number {
    return this.slotOf.size;
  }

  addFailure(address: string, jails: readonly string[], now: number): void {
    const slot = this.slot(address, now, false);
    if (slot < 0) return;
    this.stats[slot * STATS + FAILURES]!++;
    for (const j of jails) this.addJail(slot, j);
  }

  addBan(address: string, jail: string, now: number): void {
    const slot = this.slot(address, now, true);
    if (slot < 0) return;
    this.stats[slot * STATS + BANS]!++;
    this.addJail(slot, jail);
  }

  private addJail(slot: number, jail: string): void {
    let index = this.jailIndex.get(jail);
    if (index === undefined) {
      index = this.jailNames.push(jail) - 1;
      this.jailIndex.set(jail, index);
    }
    if (index < 32) {
      this.jailBits[slot]! |= 1 << index;
    } else {
      let more = this.moreJails.get(slot);
      if (more === undefined) this.moreJails.set(slot, (more = new Set()));
      more.add(jail);
    }
  }

  private jailsOf(slot: number): string[] {
    const out: string[] = [];
    for (let bits = this.jailBits[slot]!, i = 0; bits !== 0; bits >>>= 1, i++) if (bits & 1) out.push(this.jailNames[i]!);
    const more = this.moreJails.get(slot);
    if (more !== undefined) out.push(...more);
    return out;
  }

  /** Entries seen since `since`, in no particular order. */
  *entries(since: number): IterableIterator<OffenderEntry> {
    const stats = this.stats;
    for (let slot = 0; slot < this.addresses.length; slot++) {
      const o = slot * STATS;
      if (stats[o + LAST]! < since) continue;
      yield { address: this.addresses[slot]!, failures: stats[o + FAILURES]!, bans: stats[o + BANS]!, jails: this.jailsOf(slot), last: stats[o + LAST]! };
    }
  }

  /** The address's slot, taking one if it has none; -1 when it was not admitted. */
  private slot(address: string, now: number, banned: boolean): number {
    let slot = this.slotOf.get(address) ?? -1;
    if (slot < 0) {
      if (this.addresses.length < this.capacity) {
        slot = this.addresses.length;
      } else {
        if (!banned && (this.random() & (ADMISSION - 1)) !== 0) return -1;
        slot = this.lightest(now);
        if (banned && this.weight(slot, now) >= BAN_WEIGHT) return -1;
        this.slotOf.delete(this.addresses[slot]!);
      }
      this.slotOf.set(address, slot);
      // A copy: kept for a day, the address must not keep its log line alive.
      this.addresses[slot] = ownCopy(address);
      this.jailBits[slot] = 0;
      this.moreJails.delete(slot);
      this.stats[slot * STATS + FAILURES] = 0;
      this.stats[slot * STATS + BANS] = 0;
    }
    this.stats[slot * STATS + LAST] = now;
    return slot;
  }

  /** The lightest of a few sampled slots: the candidate to push out. */
  private lightest(now: number): number {
    let victim = -1;
    let lightest = Infinity;
    for (let i = 0; i < EVICTION_SAMPLE; i++) {
      const slot = this.random() % this.capacity;
      const weight = this.weight(slot, now);
      if (weight < lightest) {
        lightest = weight;
        victim = slot;
      }
    }
    return victim;
  }

  /** A slot's failures and bans; one older than the maximum age weighs less than any live one. */
  private weight(slot: number, now: number): number {
    const o = slot * STATS;
    const stats = this.stats;
    return stats[o + LAST]! < now - this.maxAgeMs ? -1 : stats[o + FAILURES]! + BAN_WEIGHT * stats[o + BANS]!;
  }

  private random(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }
}
