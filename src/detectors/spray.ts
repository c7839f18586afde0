import { trimOldest } from '../core/recency.js';

/**
 * Slow and distributed brute force ("the Hail Mary Cloud" of seed 001): many
 * addresses, each failing only a few times a day, working through the same
 * list of user names. Two long-window signals (hours to days), per jail:
 *
 * - slow: an address with `maxretry` failures within `window`;
 * - spray: a user name tried from at least `spray.sources` distinct addresses
 *   within `window` is being sprayed; every address that tried it is a
 *   participant, banned once it has `spray.maxretry` failures within `window`
 *   (at once for those already there when the name crossed the threshold).
 *
 * Memory is bounded and holds counts, never lines: per address at most
 * max(maxretry, spray.maxretry) failure times; per user name at most
 * `spray.sources` addresses until it is known to be sprayed, then none; both
 * maps are capped (`maxTracked`) and kept in "last failure" order, so expiry and
 * eviction take the oldest from the front.
 */

export interface LongWindowConfig {
  /** Milliseconds. */
  window: number;
  /** Failures of one address within the window that ban it (slow brute force). */
  maxretry: number;
  /** Ban time for these bans (ms, null = permanent); undefined = the jail's. */
  bantime?: number | null;
  spray: { sources: number; maxretry: number } | null;
  /** Addresses (and user names) remembered at most. */
  maxTracked: number;
}

interface AddressRecord {
  times: number[];
  last: number;
  /** A sprayed user name this address tried (it is a participant), or null. */
  sprayedUser: string | null;
}

interface UserRecord {
  /** Addresses that tried the name within the window (only until it is known to be sprayed). */
  addresses: Map<string, number>;
  sprayed: boolean;
  last: number;
}

export interface LongWindowTrip {
  address: string;
  kind: 'slow' | 'spray';
  failures: number;
  /** For spray: the sprayed user name the address tried. */
  user?: string;
}

const NONE: readonly LongWindowTrip[] = [];

export class LongWindowDetector {
  private readonly addresses = new Map<string, AddressRecord>();
  private readonly users = new Map<string, UserRecord>();
  private readonly cap: number;
  sprayedUsers = 0;
  /**
   * When record() next drops what aged out. Not on every failure: iterating a Map walks the
   * entries deleted at its front until it rehashes, so expiring per failure cost ~30 µs each
   * once a botnet filled maxTracked. Failures out of the window never count (touch() trims them).
   */
  private nextExpiry = -Infinity;
  trips = 0;

  constructor(readonly config: LongWindowConfig) {
    this.cap = Math.max(config.maxretry, config.spray?.maxretry ?? 0);
  }

  /** Records a failure; returns the addresses now due a ban (this one, or participants of a spray it revealed). */
  record(address: string, user: string | null, time: number): readonly LongWindowTrip[] {
    const { window, spray } = this.config;
    if (time >= this.nextExpiry) {
      this.expire(time);
      this.nextExpiry = time + window / 64;
    }
    const rec = this.touch(address, time);
    rec.times.push(time);
    if (rec.times.length > this.cap) rec.times.shift();
    let out: LongWindowTrip[] | null = null;
    if (spray && user !== null) {
      let u = this.users.get(user);
      if (u === undefined) u = { addresses: new Map(), sprayed: false, last: time };
      else this.users.delete(user);
      u.last = Math.max(u.last, time);
      this.users.set(user, u);
      trimOldest(this.users, this.config.maxTracked);
      if (u.sprayed) {
        rec.sprayedUser = user;
      } else {
        u.addresses.delete(address);
        u.addresses.set(address, time);
        for (const [a, t] of u.addresses) {
          if (t > time - window) break;
          u.addresses.delete(a);
        }
        if (u.addresses.size >= spray.sources) {
          u.sprayed = true;
          this.sprayedUsers++;
          for (const a of u.addresses.keys()) {
            const r = this.addresses.get(a);
            if (!r) continue;
            r.sprayedUser = user;
            if (a !== address && r.times.length >= spray.maxretry) (out ??= []).push(this.trip(a, { address: a, kind: 'spray', failures: r.times.length, user }));
          }
          u.addresses.clear();
          rec.sprayedUser = user;
          if (rec.times.length >= spray.maxretry) (out ??= []).push(this.trip(address, { address, kind: 'spray', failures: rec.times.length, user }));
          return out ?? NONE;
        }
      }
    }
    if (rec.times.length >= this.config.maxretry) {
      (out ??= []).push(this.trip(address, { address, kind: 'slow', failures: rec.times.length }));
    } else if (spray && rec.sprayedUser !== null && rec.times.length >= spray.maxretry) {
      (out ??= []).push(this.trip(address, { address, kind: 'spray', failures: rec.times.length, user: rec.sprayedUser }));
    }
    return out ?? NONE;
  }

  /** Rebuilds an address's count after a restart (never trips). */
  restore(address: string, time: number): void {
    const rec = this.touch(address, time);
    rec.times.push(time);
    if (rec.times.length >= this.cap) rec.times.shift();
  }

  private touch(address: string, time: number): AddressRecord {
    let rec = this.addresses.get(address);
    if (rec === undefined) {
      rec = { times: [], last: time, sprayedUser: null };
    } else {
      this.addresses.delete(address);
      let drop = 0;
      while (drop < rec.times.length && rec.times[drop]! <= time - this.config.window) drop++;
      if (drop) rec.times.splice(0, drop);
    }
    rec.last = Math.max(rec.last, time);
    this.addresses.set(address, rec);
    trimOldest(this.addresses, this.config.maxTracked);
    return rec;
  }

  private trip(address: string, t: LongWindowTrip): LongWindowTrip {
    this.addresses.delete(address);
    this.trips++;
    return t;
  }

  /** Forgets an address (it was banned). */
  forget(address: string): void {
    this.addresses.delete(address);
  }

  /** Drops addresses and user names not seen within the window before `now`. */
  expire(now: number): void {
    const limit = now - this.config.window;
    for (const [a, r] of this.addresses) {
      if (r.last > limit) break;
      this.addresses.delete(a);
    }
    for (const [u, r] of this.users) {
      if (r.last > limit) break;
      this.users.delete(u);
    }
  }

  /** For `explain`: the address's failures within the window and the sprayed name it tried. */
  evidenceOf(address: string, now: number): { failures: number; sprayedUser: string | null } {
    const r = this.addresses.get(address);
    if (!r) return { failures: 0, sprayedUser: null };
    return { failures: r.times.filter((t) => t > now - this.config.window).length, sprayedUser: r.sprayedUser };
  }

  get trackedAddresses(): number {
    return this.addresses.size;
  }

  get trackedUsers(): number {
    return this.users.size;
  }
}
