/**
 * Per-address failure counting for one jail: `maxretry` failures within
 * `findtime` → the address is due a ban. Times are the log lines' own times.
 *
 * State lives in a Map whose insertion order is kept equal to "last failure
 * time" order (an entry is re-inserted on every failure), so expiring idle
 * addresses is a walk from the front that stops at the first young entry: no
 * scan over every address, and memory is given back as entries age out.
 */

export interface JailLimits {
  maxretry: number;
  /** Milliseconds. */
  findtime: number;
}

interface Tracked {
  /** Failure times, oldest first; never more than maxretry entries. */
  times: number[];
  lines: string[];
  last: number;
}

export interface Trip {
  address: string;
  /** The lines that counted, oldest first. */
  evidence: string[];
  failures: number;
}

export class FailureCounter {
  private readonly tracked = new Map<string, Tracked>();
  private newest = 0;
  private lastSweep = 0;

  constructor(private readonly limits: JailLimits) {}

  /** Records a failure; returns a Trip when the address reached maxretry (its counter is then reset). */
  record(address: string, time: number, line: string): Trip | null {
    const { maxretry, findtime } = this.limits;
    if (time > this.newest) this.newest = time;
    let t = this.tracked.get(address);
    if (t === undefined) {
      t = { times: [], lines: [], last: time };
    } else {
      this.tracked.delete(address);
      // Drop failures that fell out of the window.
      let drop = 0;
      while (drop < t.times.length && t.times[drop]! <= time - findtime) drop++;
      if (drop) { t.times.splice(0, drop); t.lines.splice(0, drop); }
    }
    t.times.push(time);
    t.lines.push(line);
    if (t.times.length > maxretry) { t.times.shift(); t.lines.shift(); }
    t.last = Math.max(t.last, time);
    // Sweeping on every failure would rescan the Map's deleted slots each time; a sweep per
    // 1/16 of findtime (of log time) keeps memory bounded at O(1) amortised cost.
    if (this.newest - this.lastSweep >= findtime / 16) this.expire(this.newest);
    if (t.times.length >= maxretry) return { address, evidence: t.lines, failures: t.times.length };
    this.tracked.set(address, t);
    return null;
  }

  /** Forgets an address (after a ban, or when it was allowlisted). */
  forget(address: string): void {
    this.tracked.delete(address);
  }

  /** Removes addresses whose last failure is older than findtime before `now`. */
  expire(now: number): number {
    this.lastSweep = now;
    const limit = now - this.limits.findtime;
    let removed = 0;
    for (const [address, t] of this.tracked) {
      if (t.last > limit) break;
      this.tracked.delete(address);
      removed++;
    }
    return removed;
  }

  /** Addresses with failures still inside the window. */
  get size(): number {
    return this.tracked.size;
  }

  failuresOf(address: string): number {
    return this.tracked.get(address)?.times.length ?? 0;
  }
}
