import v8 from 'node:v8';
import type { TranslatedRegex } from './pyregex.js';

/**
 * Protection against catastrophic backtracking in user-supplied patterns: a
 * hostile log line must not stall the daemon.
 *
 * V8 can switch a regex from backtracking to its linear-time engine once a
 * match has backtracked too often (`--enable-experimental-regexp-engine-on-
 * excessive-backtracks`, 50,000 backtracks by default). The flag can be set at
 * run time, before the regexes are compiled, and covers regexes the linear
 * engine can run: no lookarounds, no backreferences, no `i`/`u` flags (our
 * translation emits neither flag for exactly this reason), small counted
 * repetitions. We check each translated regex against that engine
 * (`--enable-experimental-regexp-engine` makes the `l` flag available for the
 * check). A regex it cannot run is accepted only when it has no nested
 * unbounded repetition — the construct behind exponential blow-ups — and is
 * refused otherwise, with the reason, so the admin can rewrite it.
 */

let flagsSet = false;

/** Backtracks a match may make before V8 reruns it in linear time (V8's default: 50,000). */
export const BACKTRACKS_BEFORE_FALLBACK = 1_000_000;

/** Enables V8's linear-time fallback for regexes compiled from now on (idempotent). */
export function enableLinearFallback(): void {
  if (flagsSet) return;
  v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  v8.setFlagsFromString('--enable-experimental-regexp-engine');
  // The linear engine is slow on the large regexes fail2ban's <HOST> makes: a 16 KiB line of digits and
  // dots against ejabberd-auth took 2.2 s in it after V8's default 50,000 backtracks, and 2 ms when let
  // backtrack up to a million (a few ms of backtracking). Only runaway matches need the fallback.
  v8.setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_FALLBACK}`);
  flagsSet = true;
}

export type GuardVerdict =
  | { verdict: 'linear-fallback'; reason: string }
  | { verdict: 'no-hazard'; reason: string }
  | { verdict: 'unguarded'; reason: string };

export function guardRegex(t: TranslatedRegex): GuardVerdict {
  enableLinearFallback();
  let linear = false;
  try {
    new RegExp(t.source, `${t.flags}l`);
    linear = true;
  } catch {
    linear = false;
  }
  if (linear) return { verdict: 'linear-fallback', reason: 'falls back to linear-time matching after excessive backtracking' };
  if (t.hazards.length === 0) return { verdict: 'no-hazard', reason: 'no nested unbounded repetition' };
  return {
    verdict: 'unguarded',
    reason: `${t.hazards.join('; ')} together with lookarounds or backreferences: a crafted line could make it backtrack for minutes; rewrite the repeated part so it cannot match the same text in several ways (e.g. (?:[^x]*x)* instead of (?:.*x)*)`,
  };
}
