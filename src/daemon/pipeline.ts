import type { Network } from '../core/address.js';
import { formatDuration } from '../core/duration.js';
import type { Decision, Event, LogLine } from '../core/types.js';
import type { JailConfig } from '../config/load.js';
import { FailureCounter } from '../detectors/jail.js';
import { programMatches, type Filter } from '../filters/filter.js';
import { createFilter } from '../filters/index.js';
import { Allowlist } from '../policy/allowlist.js';
import type { FailureRow } from '../state/store.js';

/**
 * The detection pipeline shared by the daemon and `replay`: lines → filters →
 * per-jail counters → allowlist policy → decisions. It is synchronous and
 * keeps no I/O: callers feed lines, then take the decisions and state changes
 * the lines caused and commit/enforce them.
 */

export interface PipelineOptions {
  jails: readonly JailConfig[];
  globalIgnore: readonly Network[];
  /** `replay`: bans end at line time + bantime; `live`: at wall clock + bantime. */
  mode: 'replay' | 'live';
  now?: () => number;
  origin: string;
  /** Treat the host's own addresses as allowlisted (always in live use; tests may turn it off). */
  includeHostAddresses?: boolean;
  /** Told of every matched line (evidence and health), e.g. for metrics and the dashboard. */
  onEvent?: (event: Event) => void;
}

export interface PipelineOutput {
  decisions: Decision[];
  failuresAdded: FailureRow[];
  failuresCleared: Array<{ jail: string; address: string }>;
}

export interface JailStats {
  failures: number;
  ignored: number;
  bans: number;
}

export interface FilterStats {
  matched: number;
  byPattern: Map<string, number>;
  health: number;
}

interface JailRuntime {
  config: JailConfig;
  counter: FailureCounter;
  allowlist: Allowlist;
  active: Map<string, number | null>;
  stats: JailStats;
}

/** Filters that see a line of a given program, each with the jails fed by it. */
interface DispatchEntry {
  filter: Filter;
  jails: JailRuntime[];
}

interface Route {
  jails: JailRuntime[];
  byProgram: Map<string, DispatchEntry[]>;
  bare: DispatchEntry[];
}

export class Pipeline {
  readonly jails = new Map<string, JailRuntime>();
  readonly filterStats = new Map<string, FilterStats>();
  /** Health events (operational warnings) by filter and pattern. */
  readonly health = new Map<string, number>();
  private readonly routes = new Map<string, Route>();
  private readonly expiry = new ExpiryHeap();
  private readonly now: () => number;
  private out: PipelineOutput = { decisions: [], failuresAdded: [], failuresCleared: [] };
  linesProcessed = 0;
  linesMatched = 0;

  constructor(private readonly options: PipelineOptions) {
    this.now = options.now ?? Date.now;
    for (const config of options.jails) {
      this.jails.set(config.name, {
        config,
        counter: new FailureCounter({ maxretry: config.maxretry, findtime: config.findtime }),
        allowlist: new Allowlist([...options.globalIgnore, ...config.ignoreip], { includeHost: options.includeHostAddresses ?? true }),
        active: new Map(),
        stats: { failures: 0, ignored: 0, bans: 0 },
      });
      for (const f of config.filters) if (!this.filterStats.has(f)) this.filterStats.set(f, { matched: 0, byPattern: new Map(), health: 0 });
    }
  }

  /** Declares that lines arriving with `routeId` go to these jails. */
  addRoute(routeId: string, jailNames: readonly string[]): void {
    const jails = jailNames.map((n) => this.jails.get(n)).filter((j): j is JailRuntime => j !== undefined);
    const bare: DispatchEntry[] = [];
    for (const entry of this.entriesFor(jails)) if (entry.filter.bareLines) bare.push(entry);
    this.routes.set(routeId, { jails, byProgram: new Map(), bare });
  }

  private readonly filters = new Map<string, Filter | null>();

  /** One instance per filter name in this pipeline, shared by the jails using it. */
  private filterInstance(name: string): Filter | null {
    let f = this.filters.get(name);
    if (f === undefined) this.filters.set(name, (f = createFilter(name)));
    return f;
  }

  hasRoute(routeId: string): boolean {
    return this.routes.has(routeId);
  }

  private entriesFor(jails: JailRuntime[], program?: string): DispatchEntry[] {
    const entries = new Map<string, DispatchEntry>();
    for (const jail of jails) {
      for (const name of jail.config.filters) {
        const filter = this.filterInstance(name);
        if (!filter) continue;
        if (program !== undefined) {
          const wanted = filter.programs.some((p) => programMatches(p, program)) || jail.config.programs.includes(program);
          if (!wanted) continue;
        }
        let e = entries.get(name);
        if (!e) entries.set(name, (e = { filter, jails: [] }));
        e.jails.push(jail);
      }
    }
    return [...entries.values()];
  }

  /** Runs one line through the route's filters and jails. */
  process(line: LogLine, routeId: string): void {
    const route = this.routes.get(routeId);
    if (!route) throw new Error(`no route ${routeId}`);
    this.linesProcessed++;
    let entries: DispatchEntry[];
    if (line.program === null) {
      entries = route.bare;
    } else {
      let hit = route.byProgram.get(line.program);
      if (hit === undefined) {
        hit = this.entriesFor(route.jails, line.program);
        // Program names come from the log: bound the cache so a flood of random tags cannot grow it.
        if (route.byProgram.size < 4096) route.byProgram.set(line.program, hit);
      }
      entries = hit;
    }
    if (this.options.mode === 'replay' && line.time >= this.expiry.nextAt) this.expire(line.time);
    for (const entry of entries) {
      const m = entry.filter.match(line);
      if (m === null) continue;
      this.linesMatched++;
      const stats = this.filterStats.get(entry.filter.name)!;
      stats.matched++;
      stats.byPattern.set(m.pattern, (stats.byPattern.get(m.pattern) ?? 0) + 1);
      const event: Event = { time: line.time, service: entry.filter.service, kind: m.kind, address: m.address, user: m.user, filter: entry.filter.name, pattern: m.pattern, line };
      this.options.onEvent?.(event);
      if (m.kind === 'health' || m.address === null) {
        stats.health++;
        const key = `${entry.filter.name}/${m.pattern}`;
        this.health.set(key, (this.health.get(key) ?? 0) + 1);
        return;
      }
      for (const jail of entry.jails) this.count(jail, event);
      return;
    }
  }

  private count(jail: JailRuntime, ev: Event): void {
    const address = ev.address!;
    jail.stats.failures++;
    if (jail.allowlist.match(address) !== null) {
      jail.stats.ignored++;
      return;
    }
    // Lines from an address already banned here (logged before the firewall took effect) do not count again.
    if (jail.active.has(address)) return;
    const trip = jail.counter.record(address, ev.time, ev.line.raw);
    if (trip === null) {
      this.out.failuresAdded.push({ jail: jail.config.name, address, time: ev.time, line: ev.line.raw });
      return;
    }
    this.out.failuresCleared.push({ jail: jail.config.name, address });
    const { config } = jail;
    const base = this.options.mode === 'replay' ? ev.time : this.now();
    const until = config.bantime === null ? null : base + config.bantime;
    this.ban(jail, {
      action: 'ban', target: address, jail: config.name, time: ev.time, until,
      reason: `${trip.failures} failures within ${formatDuration(config.findtime)} (last: ${ev.kind} by ${ev.filter}${ev.user ? `, user ${JSON.stringify(ev.user)}` : ''})`,
      origin: this.options.origin, evidence: trip.evidence,
      ...(config.ports ? { ports: config.ports } : {}), protocol: config.protocol,
    });
  }

  private ban(jail: JailRuntime, decision: Decision): void {
    jail.active.set(decision.target, decision.until);
    jail.stats.bans++;
    if (decision.until !== null) this.expiry.push(decision.until, jail.config.name, decision.target);
    this.out.decisions.push(decision);
  }

  /** Emits unbans for bans whose time is up at `now` (line time in replay, wall clock live). */
  expire(now: number): void {
    while (this.expiry.nextAt <= now) {
      const e = this.expiry.pop()!;
      const jail = this.jails.get(e.jail);
      // The heap may hold stale entries for bans that were lifted or replaced since.
      if (!jail || jail.active.get(e.target) !== e.until) continue;
      jail.active.delete(e.target);
      this.out.decisions.push({ action: 'unban', target: e.target, jail: e.jail, time: e.until, until: null, reason: 'bantime expired', origin: this.options.origin });
    }
    for (const jail of this.jails.values()) jail.counter.expire(now);
  }

  /** A ban from outside the detectors (CLI, API); `jail` must exist or be a manual pseudo-jail. */
  manualBan(target: string, jailName: string, until: number | null, reason: string, origin: string, time = this.now()): Decision {
    const decision: Decision = { action: 'ban', target, jail: jailName, time, until, reason, origin };
    const jail = this.jails.get(jailName);
    if (jail) {
      this.ban(jail, decision);
      jail.counter.forget(target);
    } else {
      this.out.decisions.push(decision);
    }
    return decision;
  }

  /** Lifts bans of `target` (in `jailName` or every jail); returns the unban decisions. */
  manualUnban(target: string, jailName: string | null, reason: string, origin: string, time = this.now()): Decision[] {
    const made: Decision[] = [];
    for (const jail of this.jails.values()) {
      if (jailName !== null && jail.config.name !== jailName) continue;
      jail.counter.forget(target);
      if (!jail.active.delete(target)) continue;
      const d: Decision = { action: 'unban', target, jail: jail.config.name, time, until: null, reason, origin };
      made.push(d);
      this.out.decisions.push(d);
    }
    return made;
  }

  /** Restores state after a restart: active bans (not yet expired) and pending failures. */
  restore(bans: ReadonlyArray<{ target: string; jail: string; until: number | null }>, failures: readonly FailureRow[]): void {
    for (const b of bans) {
      const jail = this.jails.get(b.jail);
      if (!jail) continue;
      jail.active.set(b.target, b.until);
      if (b.until !== null) this.expiry.push(b.until, b.jail, b.target);
    }
    for (const f of failures) {
      const jail = this.jails.get(f.jail);
      if (!jail || jail.active.has(f.address)) continue;
      const trip = jail.counter.record(f.address, f.time, f.line);
      if (trip) jail.counter.forget(f.address);
    }
  }

  /** Takes (and resets) what the lines processed since the last call decided and changed. */
  take(): PipelineOutput {
    const out = this.out;
    this.out = { decisions: [], failuresAdded: [], failuresCleared: [] };
    return out;
  }

  /** Addresses with failures pending in `jail`. */
  failing(jail: string): number {
    return this.jails.get(jail)?.counter.size ?? 0;
  }
}

/** Min-heap of ban expiries. */
class ExpiryHeap {
  private readonly items: Array<{ until: number; jail: string; target: string }> = [];

  get nextAt(): number {
    return this.items.length ? this.items[0]!.until : Infinity;
  }

  push(until: number, jail: string, target: string): void {
    const a = this.items;
    a.push({ until, jail, target });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.until <= a[i]!.until) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  pop(): { until: number; jail: string; target: string } | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.until < a[m]!.until) m = l;
        if (r < a.length && a[r]!.until < a[m]!.until) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
