import type { Config, JailConfig } from '../config/load.js';
import type { Logger } from '../core/log.js';
import { FileSource } from '../sources/file.js';
import { pathMatcher } from '../sources/glob.js';
import { canonicalJournalMatches, JournalSource } from '../sources/journal.js';
import type { Source } from '../sources/source.js';
import { StdinSource } from '../sources/stdin.js';

/**
 * Turns the jails' source specs into running sources. Every followed file is
 * read by exactly one reader (one FileSource holds all file patterns, so two
 * jails naming the same file, even through different globs, share one reader
 * and one persisted position); journal readers are shared per distinct match.
 * Lines are routed to jails by where they came from (`LogLine.source`).
 */
export interface RoutedSource {
  source: Source;
  /** The jails a line from this source goes to, by the line's `source` (its file path for files). */
  jailsFor: (lineSource: string) => string[];
  /** Jails fed by this source, for status. */
  jails: string[];
}

export function buildSources(config: Config, jails: readonly JailConfig[], options: { stdin: boolean; log: Logger }): RoutedSource[] {
  const out: RoutedSource[] = [];
  // Files: one reader per start rule (end/beginning), routing each path to the jails whose patterns match it.
  for (const startAtEnd of [true, false]) {
    const patterns = new Map<string, Set<string>>();
    for (const jail of jails) {
      for (const spec of jail.sources) {
        if (spec.kind !== 'file' || spec.startAtEnd !== startAtEnd) continue;
        for (const p of spec.paths) patterns.set(p, (patterns.get(p) ?? new Set()).add(jail.name));
      }
    }
    if (patterns.size === 0) continue;
    const matchers = [...patterns].map(([p, names]) => ({ match: pathMatcher(p), names }));
    out.push({
      source: new FileSource({ id: startAtEnd ? 'files' : 'files (from the beginning)', patterns: [...patterns.keys()], maxLineLength: config.maxLineLength, startAtEnd }),
      jailsFor: (lineSource) => {
        const path = lineSource.slice('file:'.length);
        const names = new Set<string>();
        for (const m of matchers) if (m.match(path)) for (const n of m.names) names.add(n);
        return [...names];
      },
      jails: [...new Set([...patterns.values()].flatMap((s) => [...s]))],
    });
  }
  const journals = new Map<string, { matches: Record<string, string[]>; names: string[] }>();
  for (const jail of jails) {
    for (const spec of jail.sources) {
      if (spec.kind !== 'journal') continue;
      const key = canonicalJournalMatches(spec.matches);
      const hit = journals.get(key);
      if (hit) hit.names.push(jail.name);
      else journals.set(key, { matches: spec.matches, names: [jail.name] });
    }
  }
  for (const [key, { matches, names }] of journals) {
    out.push({ source: new JournalSource({ id: `journal:${key}`, matches, maxLineLength: config.maxLineLength, jail: names.join(', ') }), jailsFor: () => names, jails: names });
  }
  const stdinJails = options.stdin ? jails.map((j) => j.name) : jails.filter((j) => j.sources.some((s) => s.kind === 'stdin')).map((j) => j.name);
  if (stdinJails.length) {
    out.push({ source: new StdinSource({ id: 'stdin', maxLineLength: config.maxLineLength }), jailsFor: () => stdinJails, jails: stdinJails });
  }
  return out;
}
