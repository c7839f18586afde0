/**
 * Per-address failure counting for one jail: `maxretry` failures within
 * `findtime` → the address is due a ban. Times are the log lines' own times.
 *
 * Expiry walks a FIFO of tracked entries in the order they were created: an
 * entry at the front that is idle for findtime is dropped, one still active is
 * moved to the back (at most once per findtime of its life). So a failure
 * costs one Map lookup — no delete and re-insert — expiry never scans every
 * address, and memory is given back as addresses age out.
 */

export interface JailLimits {
  maxretry: number;
  /** Milliseconds. */
  findtime: number;
}

/**
 * One address's pending failures. Kept small, because a botnet makes a
 * million of them: most addresses fail once, so the first failure is held in
 * plain fields and arrays appear only from the second. Times are stored
 * relative to the counter's base so they stay small integers (no boxed doubles).
 */
interface Tracked {
  address: string;
  /** Oldest failure in the window: time and line. */
  time0: number;
  line0: string;
  /** Later failures, oldest first (with time0/line0 never more than maxretry), or null. */
  times: number[] | null;
  lines: string[] | null;
  last: number;
  /** When it was put at the back of the queue. */
  queuedAt: number;
  /** Without keepLines: the lines of this batch (until release()), the newest maxretry. */
  recent: string[] | null;
}

export interface Trip {
  address: string;
  /** The lines that counted, oldest first. */
  evidence: string[];
  failures: number;
}

export class FailureCounter {
  private readonly tracked = new Map<string, Tracked>();
  /** Entries in expiry order from `head`; stale ones (forgotten, replaced) are skipped when reached. */
  private queue: Tracked[] = [];
  private head = 0;
  /** Log time all stored times are relative to: the first failure seen. */
  private base = Number.NaN;
  private newest = 0;
  private lastSweep = 0;

  private readonly keepLines: boolean;
  /** Entries holding recent lines, to be let go at release(). */
  private held: Tracked[] = [];

  /**
   * With `keepLines: false` lines are held only until release() — by then the
   * caller has written them to its database, and a million attackers' lines
   * would not fit in memory. Trip.evidence then has just the lines since the
   * last release; the caller reads the older ones back.
   */
  constructor(private readonly limits: JailLimits, options: { keepLines?: boolean } = {}) {
    this.keepLines = options.keepLines ?? true;
  }

  /** Records a failure; returns a Trip when the address reached maxretry (its counter is then reset). */
  record(address: string, time: number, line: string): Trip | null {
    const { maxretry, findtime } = this.limits;
    if (Number.isNaN(this.base)) this.base = time;
    const at = time - this.base;
    if (at > this.newest) this.newest = at;
    let t = this.tracked.get(address);
    let count: number;
    const kept = this.keepLines ? line : '';
    if (t === undefined) {
      // A substring would keep its whole log line alive as long as the address is tracked.
      t = { address: detach(address), time0: at, line0: kept, times: null, lines: null, last: at, queuedAt: at, recent: null };
      this.tracked.set(address, t);
      this.queue.push(t);
      count = 1;
    } else {
      count = this.add(t, at, kept, at - findtime, maxretry);
    }
    if (!this.keepLines) {
      if (t.recent === null) {
        t.recent = [line];
        this.held.push(t);
      } else {
        t.recent.push(line);
        if (t.recent.length > maxretry) t.recent.shift();
      }
    }
    // A sweep per 1/16 of findtime (of log time) keeps memory bounded at O(1) amortised cost.
    if (this.newest - this.lastSweep >= findtime / 16) this.sweep(this.newest);
    if (count < maxretry) return null;
    this.tracked.delete(address);
    const evidence = !this.keepLines ? t.recent!.slice(-count) : t.lines === null ? [t.line0] : [t.line0, ...t.lines];
    return { address, evidence, failures: count };
  }

  /** Lets go of the lines held since the last call (keepLines: false): they are in the caller's database now. */
  release(): void {
    if (this.held.length === 0) return;
    for (const t of this.held) t.recent = null;
    this.held = [];
  }

  /** Adds a failure to a tracked address, dropping those at or before `limit` and beyond maxretry; returns the count. */
  private add(t: Tracked, at: number, line: string, limit: number, maxretry: number): number {
    if (t.times === null) {
      if (t.time0 <= limit) {
        t.time0 = at;
        t.line0 = line;
      } else {
        t.times = [at];
        t.lines = [line];
      }
    } else {
      t.times.push(at);
      t.lines!.push(line);
    }
    if (at > t.last) t.last = at;
    // Promote from the arrays while the oldest is out of the window or there are more than maxretry.
    while (t.times !== null && (t.time0 <= limit || 1 + t.times.length > maxretry)) {
      t.time0 = t.times.shift()!;
      t.line0 = t.lines!.shift()!;
      if (t.times.length === 0) { t.times = null; t.lines = null; }
    }
    return t.times === null ? 1 : 1 + t.times.length;
  }

  /** Forgets an address (after a ban, or when it was allowlisted). */
  forget(address: string): void {
    this.tracked.delete(address);
  }

  /** Removes addresses whose last failure is older than findtime before `now` (log time, ms since the epoch). */
  expire(now: number): number {
    return Number.isNaN(this.base) ? 0 : this.sweep(now - this.base);
  }

  private sweep(now: number): number {
    this.lastSweep = now;
    const limit = now - this.limits.findtime;
    const { queue } = this;
    const end = queue.length;
    let removed = 0;
    // Only the entries present now are looked at: one moved to the back is not seen again in this sweep.
    while (this.head < end) {
      const t = queue[this.head]!;
      if (this.tracked.get(t.address) !== t) { this.head++; continue; }
      // Queued in the window: so is everything behind it.
      if (t.queuedAt > limit) break;
      this.head++;
      if (t.last <= limit) {
        this.tracked.delete(t.address);
        removed++;
      } else {
        t.queuedAt = now;
        queue.push(t);
      }
    }
    if (this.head > 1024 && this.head * 2 > queue.length) {
      this.queue = queue.slice(this.head);
      this.head = 0;
    }
    return removed;
  }

  /** Addresses with failures still inside the window. */
  get size(): number {
    return this.tracked.size;
  }

  failuresOf(address: string): number {
    const t = this.tracked.get(address);
    return t === undefined ? 0 : t.times === null ? 1 : 1 + t.times.length;
  }
}

/** A copy of `s` that shares no memory with the string it was cut from (V8 slices strings of 13+ characters by reference). */
function detach(s: string): string {
  if (s.length < 13) return s;
  const codes = new Array<number>(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = s.charCodeAt(i);
  return String.fromCharCode(...codes);
}
