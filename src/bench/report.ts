/**
 * What each bench section returns: printed as one table by `npm run bench`
 * and written to bench-results/<time>.json for comparison between commits.
 */

export interface BenchRow {
  /** What was measured, e.g. `replay, every built-in jail`. */
  name: string;
  /** The figure as printed, e.g. `1,020,000 lines/s (median of 5; min …, max …)`. */
  value: string;
  /** The issue's target, e.g. `≥ 1,000,000 lines/s`, when there is one. */
  target?: string;
  /** Whether the target was met in this run (absent when there is no target or no peer to compare with). */
  met?: boolean;
}

export interface BenchSection {
  title: string;
  rows: BenchRow[];
  /** Raw figures (every run, not only the median) for the JSON results file. */
  json: Record<string, unknown>;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

/** 1234567.8 → `1,234,568`. */
export const fmt = (n: number): string => Math.round(n).toLocaleString('en');

/** Several runs of one measurement: `median (min …, max …; N runs)`. */
export function spread(xs: readonly number[], unit: string, digits = 0): string {
  const f = (n: number): string => (digits === 0 ? fmt(n) : n.toFixed(digits));
  return xs.length === 1 ? `${f(xs[0]!)} ${unit}` : `${f(median(xs))} ${unit} (median of ${xs.length}; min ${f(Math.min(...xs))}, max ${f(Math.max(...xs))})`;
}

export function printSection(section: BenchSection, out: (line: string) => void): void {
  out(`\n${section.title}`);
  const width = Math.max(...section.rows.map((r) => r.name.length));
  for (const r of section.rows) {
    const verdict = r.met === undefined ? '' : r.met ? '  ✔ met' : '  ✘ NOT met';
    out(`  ${r.name.padEnd(width)}  ${r.value}${r.target ? `   [target ${r.target}]` : ''}${verdict}`);
  }
}
