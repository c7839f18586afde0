/**
 * Siege detection for one jail (seed 003: a botnet at about one connection a
 * second, every source under any per-address threshold). It watches the
 * aggregate failure rate over the last minute and how many distinct addresses
 * it came from:
 *
 * - enter when, in the last minute, at least `enterRate` failures came from at
 *   least `enterSources` addresses;
 * - leave once the rate has stayed below `leaveRate` for `leaveFor` without a
 *   break. The gap between the two rates and the cool-down are the hysteresis:
 *   a siege hovering around one threshold cannot flap on and off.
 *
 * Counting is per second in a 60-slot ring (no allocation per failure), so the
 * moment the rate fell below `leaveRate` is known to the second even when no
 * line arrives for hours; distinct sources are a map of address → last second,
 * kept in "last seen" order so expiry walks from the front.
 */

import { ownCopy, parseIPv4 } from '../core/address.js';
import { trimOldest } from '../core/recency.js';

export interface SiegeConfig {
  enterRate: number;
  enterSources: number;
  leaveRate: number;
  /** Milliseconds the rate must stay below leaveRate. */
  leaveFor: number;
  /** The jail's maxretry during a siege. */
  maxretry: number;
  /** The jail's bantime during a siege (ms, null = permanent); undefined = unchanged. */
  bantime?: number | null;
  /** Kernel rate limit on the jail's ports for everyone not allowlisted, e.g. `10/minute`. */
  rateLimit: string;
  /** Accept only allowlisted sources on the jail's ports while the siege lasts. */
  allowlistOnly: boolean;
}

export type SiegeTransition =
  | { action: 'siege-on'; time: number; failures: number; sources: number }
  | { action: 'siege-off'; time: number };

const WINDOW_SECONDS = 60;

/**
 * The key a source is remembered by for a minute: IPv4 as a small integer,
 * anything else as a copy. The address is a slice of its log line, and a
 * slice kept in the map would keep the whole line alive (100,000 of them in a botnet).
 */
function sourceKey(address: string): number | string {
  const v4 = parseIPv4(address, 0, address.length);
  return v4 >= 0 ? v4 | 0 : ownCopy(address);
}
/** Distinct sources remembered per minute; beyond this the count saturates (it is far past any threshold). */
const MAX_SOURCES = 100_000;

export class SiegeDetector {
  private readonly slots = new Uint32Array(WINDOW_SECONDS);
  /** The newest second (epoch seconds) the ring holds. */
  private second = -Infinity;
  /** Failures in the ring = failures in the last minute. */
  private sum = 0;
  /** Source key (see sourceKey) → last second seen, oldest first. */
  private readonly sources = new Map<number | string, number>();
  active = false;
  /** When the current siege began (ms), or null. */
  since: number | null = null;
  /** When the rate last fell below leaveRate during this siege (ms), or null while it is above. */
  private calmSince: number | null = null;
  entered = 0;
  lastTransition: number | null = null;

  constructor(readonly config: SiegeConfig) {}

  /** Records one failure; returns the transition it caused (a siege ending first if its cool-down was over). */
  record(address: string, time: number): SiegeTransition | null {
    const off = this.tick(time);
    if (off) return off; // the next failure is counted with the siege over: at worst it starts one again later
    const s = Math.floor(time / 1000);
    if (s > this.second - WINDOW_SECONDS) {
      this.slots[s % WINDOW_SECONDS]!++;
      this.sum++;
    }
    const key = sourceKey(address);
    const seen = this.sources.get(key);
    if (seen === undefined || seen < s) {
      this.sources.delete(key);
      this.sources.set(key, Math.max(s, seen ?? s));
      trimOldest(this.sources, MAX_SOURCES);
    }
    if (this.active) {
      if (this.calmSince !== null && this.sum >= this.config.leaveRate) this.calmSince = null;
      return null;
    }
    if (this.sum >= this.config.enterRate && this.sources.size >= this.config.enterSources) {
      this.active = true;
      this.since = time;
      this.calmSince = null;
      this.entered++;
      this.lastTransition = time;
      return { action: 'siege-on', time, failures: this.sum, sources: this.sources.size };
    }
    return null;
  }

  /** Advances the clock to `now`; returns the end of the siege when its cool-down is over. */
  tick(now: number): SiegeTransition | null {
    this.advance(Math.floor(now / 1000));
    if (this.active && this.calmSince !== null && now >= this.calmSince + this.config.leaveFor) {
      const time = this.calmSince + this.config.leaveFor;
      this.active = false;
      this.since = null;
      this.calmSince = null;
      this.lastTransition = time;
      return { action: 'siege-off', time };
    }
    return null;
  }

  private advance(second: number): void {
    if (second <= this.second) return;
    if (this.second === -Infinity) {
      this.second = second;
      return;
    }
    const steps = Math.min(second - this.second, WINDOW_SECONDS);
    for (let i = 1; i <= steps; i++) {
      const s = this.second + i;
      const slot = s % WINDOW_SECONDS;
      this.sum -= this.slots[slot]!;
      this.slots[slot] = 0;
      if (this.active && this.calmSince === null && this.sum < this.config.leaveRate) this.calmSince = s * 1000;
    }
    this.second = second;
    const oldest = second - WINDOW_SECONDS;
    for (const [key, s] of this.sources) {
      if (s > oldest) break;
      this.sources.delete(key);
    }
  }

  /** Failures in the last minute (as of the last failure or tick). */
  get rate(): number {
    return this.sum;
  }

  /** Distinct addresses that failed in the last minute. */
  get distinctSources(): number {
    return this.sources.size;
  }

  /** When the siege will end if the calm holds, or null. */
  get leavesAt(): number | null {
    return this.active && this.calmSince !== null ? this.calmSince + this.config.leaveFor : null;
  }
}
