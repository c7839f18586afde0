import { formatDuration } from '../core/duration.js';
import { trimOldest } from '../core/recency.js';

/**
 * Repeat offenders: the ban time grows with how often the target was banned
 * before — `base × factor^(previous bans)`, capped at `max`, spread by ±`jitter`
 * so a botnet banned together does not come back together.
 *
 * The jitter is derived from the target and its ban number (a hash, not a
 * random draw), so `replay` gives exactly the durations the daemon gives live.
 */

export interface BantimeGrowth {
  factor: number;
  /** Milliseconds. */
  max: number;
  /** Fraction (0.1 = ±10%). */
  jitter: number;
  /** Which earlier bans count: the target's bans in every jail, or only in this jail. */
  count: 'all' | 'jail';
}

/** Pseudo-jail under which ban counts across all jails are kept (as the store counts them). */
export const ALL_JAILS = '*';

/** The ban duration for a target banned `previousBans` times before; null = permanent. */
export function grownBantime(base: number | null, growth: BantimeGrowth | null | undefined, previousBans: number, target: string): number | null {
  if (base === null) return null;
  if (!growth) return base;
  let ms = base * growth.factor ** previousBans;
  if (!Number.isFinite(ms) || ms > growth.max) ms = growth.max;
  if (growth.jitter > 0) {
    const spread = (unitHash(`${target}#${previousBans}`) * 2 - 1) * growth.jitter;
    ms = Math.min(growth.max, ms * (1 + spread));
  }
  return Math.round(ms / 1000) * 1000;
}

export function describeGrowth(base: number | null, growth: BantimeGrowth | null | undefined): string {
  if (!growth) return `fixed ${formatDuration(base)}`;
  const jitter = growth.jitter ? ` ±${Math.round(growth.jitter * 100)}%` : '';
  return `${formatDuration(base)} × ${growth.factor} per earlier ban (${growth.count === 'all' ? 'counted across jails' : 'counted in this jail'}), at most ${formatDuration(growth.max)}${jitter}`;
}

/** FNV-1a of `text`, as a number in [0, 1). */
function unitHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 2 ** 32;
}

/**
 * How many times each target was banned, per jail and across jails. Counts
 * missing from memory are loaded once from the store (so they survive
 * restarts), then kept up to date by the pipeline as it bans — the store
 * counts the same bans when they are committed. At most `capacity` entries stay
 * in memory; evicted ones are simply loaded again.
 */
export class BanCounts {
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly load: ((target: string, jail: string) => number) | null = null,
    private readonly capacity = 200_000,
  ) {}

  get(target: string, jail: string): number {
    const key = `${jail}\u0000${target}`;
    let n = this.counts.get(key);
    if (n === undefined) {
      n = this.load ? this.load(target, jail) : 0;
      this.put(key, n);
    }
    return n;
  }

  /** Counts one more ban of `target` in `jail` (and across jails). */
  add(target: string, jail: string): void {
    for (const j of [jail, ALL_JAILS]) {
      const n = this.get(target, j);
      this.put(`${j}\u0000${target}`, n + 1);
    }
  }

  private put(key: string, n: number): void {
    this.counts.delete(key);
    this.counts.set(key, n);
    trimOldest(this.counts, this.capacity);
  }
}
