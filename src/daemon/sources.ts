import type { Config, JailConfig } from '../config/load.js';
import type { Logger } from '../core/log.js';
import { FileSource } from '../sources/file.js';
import { pathMatcher } from '../sources/glob.js';
import { canonicalJournalMatches, JournalSource } from '../sources/journal.js';
import { JournalWaker, SYSTEM_JOURNAL_DIRECTORIES } from '../sources/journal-waker.js';
import type { Source } from '../sources/source.js';
import { StdinSource } from '../sources/stdin.js';
import { SyslogSource } from '../sources/syslog.js';
import { formatNetwork, networkContains, type Network } from '../core/address.js';

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
  // One waker for the system journal, shared by every journal source reading it.
  const waker = journals.size > 0 && config.journalWakeMs !== null
    ? new JournalWaker({ directories: SYSTEM_JOURNAL_DIRECTORIES, intervalMs: config.journalWakeMs })
    : undefined;
  for (const [key, { matches, names }] of journals) {
    out.push({ source: new JournalSource({ id: `journal:${key}`, matches, maxLineLength: config.maxLineLength, jail: names.join(', '), waker }), jailsFor: () => names, jails: names });
  }
  out.push(...syslogReceivers(config, jails));
  const stdinJails = options.stdin ? jails.map((j) => j.name) : jails.filter((j) => j.sources.some((s) => s.kind === 'stdin')).map((j) => j.name);
  if (stdinJails.length) {
    out.push({ source: new StdinSource({ id: 'stdin', maxLineLength: config.maxLineLength }), jailsFor: () => stdinJails, jails: stdinJails });
  }
  return out;
}

/**
 * One receiver per syslog listen address, shared by the jails that name it. A
 * sender's lines go to the jails whose `allow` lists it: when the jails allow
 * different senders, the line's `source` names those jails
 * (`syslog:udp://0.0.0.0:514 for openvpn,sshd`), which is what routes it.
 */
function syslogReceivers(config: Config, jails: readonly JailConfig[]): RoutedSource[] {
  const receivers = new Map<string, { tls: { cert: string; key: string; ca: string | null } | null; jails: Map<string, Network[]> }>();
  for (const jail of jails) {
    for (const spec of jail.sources) {
      if (spec.kind !== 'syslog') continue;
      let r = receivers.get(spec.listen);
      if (!r) receivers.set(spec.listen, (r = { tls: spec.tls, jails: new Map() }));
      r.jails.set(jail.name, [...(r.jails.get(jail.name) ?? []), ...spec.allow]);
    }
  }
  const out: RoutedSource[] = [];
  for (const [listen, r] of receivers) {
    const names = [...r.jails.keys()];
    const base = `syslog:${listen}`;
    const allowText = [...r.jails.values()].map((allow) => allow.map(formatNetwork).sort().join(' '));
    const uniform = allowText.every((t) => t === allowText[0]);
    const routes = new Map<string, string>();
    const sourceOf = (sender: string): string => {
      let route = routes.get(sender);
      if (route === undefined) {
        const wanted = names.filter((n) => r.jails.get(n)!.some((net) => networkContains(net, sender)));
        route = `${base} for ${wanted.join(',')}`;
        // Senders come from the allowlist, but a wide one (a /16) could still name many: keep the cache bounded.
        if (routes.size >= 4096) routes.clear();
        routes.set(sender, route);
      }
      return route;
    };
    out.push({
      source: new SyslogSource({
        listen, allow: [...r.jails.values()].flat(), tls: r.tls, maxLineLength: config.maxLineLength,
        ...(uniform ? {} : { sourceOf }),
      }),
      jailsFor: (lineSource) => (uniform ? names : lineSource.slice(base.length + ' for '.length).split(',').filter((n) => n !== '')),
      jails: names,
    });
  }
  return out;
}
