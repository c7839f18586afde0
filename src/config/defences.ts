import { parseBantime, parseDuration } from '../core/duration.js';
import type { EscalationStep } from '../detectors/escalation.js';
import type { SiegeConfig } from '../detectors/siege.js';
import type { LongWindowConfig } from '../detectors/spray.js';
import type { BantimeGrowth } from '../policy/bantime.js';

/**
 * The per-jail defences beyond per-address counting, from validated YAML:
 * `bantime` as a growth rule, `escalate`, `siege`, `slow`. The schema has
 * checked types and ranges; this checks how values relate to each other and
 * fills in defaults. `fail(path, message)` reports at the key's position.
 */

type Raw = Record<string, unknown>;
export type Fail = (path: string[], message: string) => void;

/** A jail's ban time (base) and its growth rule, from `bantime:` (a duration, or `{ base, factor, max, jitter, count }`). */
export function bantimeOf(value: unknown, fail: Fail): { bantime: number | null; growth: BantimeGrowth | null } {
  if (value === null || typeof value !== 'object') return { bantime: parseBantime(value as string)!, growth: null };
  const r = value as Raw;
  const bantime = parseBantime(r.base as string)!;
  const max = r.max === undefined ? 5 * 604_800_000 : parseDuration(r.max as string)!;
  if (bantime === null) fail(['bantime', 'base'], 'a permanent base cannot grow; write `bantime: permanent` instead of a growth rule');
  else if (max < bantime) fail(['bantime', 'max'], `max (${String(r.max)}) is shorter than base (${String(r.base)}); max must be at least base`);
  return {
    bantime,
    growth: { factor: (r.factor as number | undefined) ?? 2, max, jitter: r.jitter === undefined ? 0 : parsePercent(r.jitter as string)! / 100, count: (r.count as 'all' | 'jail' | undefined) ?? 'all' },
  };
}

/** `10%` or 10 → 10; null when not a percentage from 0 to 100. */
export function parsePercent(v: string | number): number | null {
  const m = typeof v === 'number' ? [String(v), String(v)] : /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isFinite(n) && n >= 0 && n <= 100 ? n : null;
}

/** `10/minute` → { count: 10, perMs: 60000 }; null when not a rate. */
export function parseRate(v: string): { count: number; perMs: number } | null {
  const m = /^\s*(\d+)\s*\/\s*(s|second|m|minute|h|hour|d|day)\s*$/.exec(v);
  if (!m || Number(m[1]) < 1) return null;
  const perMs = { s: 1000, second: 1000, m: 60_000, minute: 60_000, h: 3_600_000, hour: 3_600_000, d: 86_400_000, day: 86_400_000 }[m[2]!]!;
  return { count: Number(m[1]), perMs };
}

export const RATE_HELP = 'a rate N/second, N/minute, N/hour or N/day, such as 10/minute';
export const PERCENT_HELP = 'a percentage from 0% to 100%, such as 10%';

export function escalationOf(value: unknown, fail: Fail): EscalationStep[] | null {
  if (value === undefined) return null;
  const r = value as Raw;
  const first = step(r, { prefix4: 24, prefix6: 64, threshold: 3, window: 3_600_000, bantime: 86_400_000 });
  const steps = [first];
  if (r.then !== undefined) {
    const t = r.then as Raw;
    const second = step(t, { prefix4: 16, prefix6: 48, threshold: first.threshold, window: first.window, bantime: first.bantime });
    if (second.prefix4 >= first.prefix4) fail(['escalate', 'then', 'prefix4'], `the second step must cover a wider prefix than the first: /${second.prefix4} is not wider than /${first.prefix4}`);
    if (second.prefix6 >= first.prefix6) fail(['escalate', 'then', 'prefix6'], `the second step must cover a wider prefix than the first: /${second.prefix6} is not wider than /${first.prefix6}`);
    steps.push(second);
  }
  return steps;
}

function step(r: Raw, d: EscalationStep): EscalationStep {
  return {
    prefix4: (r.prefix4 as number | undefined) ?? d.prefix4,
    prefix6: (r.prefix6 as number | undefined) ?? d.prefix6,
    threshold: (r.threshold as number | undefined) ?? d.threshold,
    window: r.window === undefined ? d.window : parseDuration(r.window as string)!,
    bantime: r.bantime === undefined ? d.bantime : parseBantime(r.bantime as string)!,
  };
}

export function siegeOf(value: unknown, fail: Fail): SiegeConfig | null {
  if (value === undefined) return null;
  const r = value as Raw;
  const enter = (r.enter ?? {}) as Raw;
  const leave = (r.leave ?? {}) as Raw;
  const config: SiegeConfig = {
    enterRate: (enter.failures_per_minute as number | undefined) ?? 60,
    enterSources: (enter.sources as number | undefined) ?? 20,
    leaveRate: (leave.failures_per_minute as number | undefined) ?? 10,
    leaveFor: leave.for === undefined ? 600_000 : parseDuration(leave.for as string)!,
    maxretry: (r.maxretry as number | undefined) ?? 1,
    rateLimit: (r.rate_limit as string | undefined) ?? '10/minute',
    allowlistOnly: (r.allowlist_only as boolean | undefined) ?? false,
  };
  if (r.bantime !== undefined) config.bantime = parseBantime(r.bantime as string)!;
  if (config.leaveRate >= config.enterRate) {
    fail(['siege', 'leave', 'failures_per_minute'], `must be below enter.failures_per_minute (${config.enterRate}): the gap between entering and leaving is what keeps a siege from flapping`);
  }
  if (config.leaveFor < 60_000) fail(['siege', 'leave', 'for'], 'must be at least 1m (the rate is measured over a minute)');
  return config;
}

export function slowOf(value: unknown, fail: Fail): LongWindowConfig | null {
  if (value === undefined) return null;
  const r = value as Raw;
  const spray = r.spray as Raw | undefined;
  const config: LongWindowConfig = {
    window: r.window === undefined ? 86_400_000 : parseDuration(r.window as string)!,
    maxretry: (r.maxretry as number | undefined) ?? 10,
    spray: spray ? { sources: (spray.sources as number | undefined) ?? 10, maxretry: (spray.maxretry as number | undefined) ?? 2 } : null,
    maxTracked: (r.max_tracked as number | undefined) ?? 100_000,
  };
  if (r.bantime !== undefined) config.bantime = parseBantime(r.bantime as string)!;
  if (config.window < 600_000) fail(['slow', 'window'], 'must be at least 10m; slow brute force is counted over hours or days');
  return config;
}
