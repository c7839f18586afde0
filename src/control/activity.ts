import { addressFamily, prefixOf } from '../core/address.js';
import type { Decision, Event } from '../core/types.js';
import type { Daemon } from '../daemon/daemon.js';
import type { JailConfig } from '../config/load.js';
import { pathMatcher } from '../sources/glob.js';
import { BAN_WEIGHT, OffenderTable } from './offenders.js';

/**
 * What the dashboard and /metrics show beyond the daemon's own status: counts
 * of matched lines and decisions, per-minute series for the last day, recent
 * events, top offenders, and dropped traffic sampled from the firewall's
 * counters. Everything is bounded: fixed rings of minute buckets, a capped
 * recent list, and an offender table pruned by age and size.
 */

const MINUTE = 60_000;
const DAY_MINUTES = 1440;
const RECENT_MAX = 500;
const HEALTH_MAX = 100;
const OFFENDERS_MAX = 50_000;
const LINE_MAX = 1000;

/** Adds `n` to the minutes from `from` to `to` (ms), in whole counts, in proportion to the time each covers. */
function spread(r: MinuteRing, from: number, to: number, n: number): void {
  const start = Math.max(from, to - DAY_MINUTES * MINUTE);
  let given = 0;
  for (let t = start; t < to; t = (Math.floor(t / MINUTE) + 1) * MINUTE) {
    const end = Math.min(to, (Math.floor(t / MINUTE) + 1) * MINUTE);
    const upTo = end === to ? n : Math.round((n * (end - from)) / (to - from));
    if (upTo > given) r.add(t, upTo - given);
    given = Math.max(given, upTo);
  }
}

/** Per-minute counts for the last day, in a ring indexed by minute number. */
class MinuteRing {
  private readonly counts = new Float64Array(DAY_MINUTES);
  private readonly stamps = new Float64Array(DAY_MINUTES).fill(-1);

  add(time: number, n = 1): void {
    const minute = Math.floor(time / MINUTE);
    const i = minute % DAY_MINUTES;
    if (this.stamps[i] !== minute) {
      this.stamps[i] = minute;
      this.counts[i] = 0;
    }
    this.counts[i]! += n;
  }

  /** Counts for the `n` minutes ending with `lastMinute`, aggregated `step` minutes per point. */
  values(lastMinute: number, n: number, step: number): number[] {
    const out: number[] = [];
    for (let start = lastMinute - n + 1; start <= lastMinute; start += step) {
      let sum = 0;
      for (let m = start; m < start + step; m++) {
        const i = ((m % DAY_MINUTES) + DAY_MINUTES) % DAY_MINUTES;
        if (this.stamps[i] === m) sum += this.counts[i]!;
      }
      out.push(sum);
    }
    return out;
  }
}

export interface RecentEvent {
  time: string;
  seen: string;
  kind: string;
  service: string;
  filter: string;
  pattern: string;
  address: string | null;
  user: string | null;
  jails: string[];
  source: string;
  line: string;
}

export interface Series {
  range: '1h' | '1d';
  /** Seconds since the epoch of each point (start of its interval). */
  times: number[];
  stepSeconds: number;
  failures: Record<string, number[]>;
  bans: number[];
  unbans: number[];
  dropped: Record<string, number[]>;
}

export class Activity {
  /** filter → kind → lines: two lookups of constant strings per event, no key built per line. */
  private readonly matchedByFilter = new Map<string, Map<string, number>>();
  readonly health = new Map<string, number>(); // `filter\0pattern`
  readonly decisions = new Map<string, number>(); // `jail\0action`
  /** Seconds between a line's own time and its processing, per source (last matched line). */
  readonly lagSeconds = new Map<string, number>();
  private readonly failures = new Map<string, MinuteRing>();
  private readonly bans = new MinuteRing();
  private readonly unbans = new MinuteRing();
  private readonly dropped = new Map<string, MinuteRing>();
  /** Per jail: packets stopped at the last read of the counters, and when it was made. */
  private lastCounters = new Map<string, { packets: number; at: number }>();
  // Kept as seen and formatted only when asked for: a flood costs no string building.
  private readonly recent = new SeenRing(RECENT_MAX);
  private readonly healthEvents = new SeenRing(HEALTH_MAX);
  private readonly offenders = new OffenderTable(OFFENDERS_MAX, DAY_MINUTES * MINUTE);
  private readonly jailsOfFilter = new Map<string, Array<{ jail: string; accepts: (source: string) => boolean }>>();
  /** filter → source → jails; sources are few, but a glob may add files: bounded. */
  private readonly jailsCache = new Map<string, Map<string, string[]>>();
  private jailsCached = 0;
  private counterTimer: NodeJS.Timeout | null = null;
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly daemon: Daemon, jails: readonly JailConfig[], private readonly now: () => number = Date.now) {
    for (const j of jails) {
      if (!j.enabled) continue;
      const files = j.sources.flatMap((s) => (s.kind === 'file' ? s.paths.map(pathMatcher) : []));
      const other = j.sources.some((s) => s.kind !== 'file');
      // A jail sees a line from a file it follows, or from any non-file source it reads.
      const accepts = (source: string): boolean => (source.startsWith('file:') ? files.some((m) => m(source.slice(5))) : other || files.length === 0);
      for (const f of j.filters) {
        const list = this.jailsOfFilter.get(f) ?? [];
        list.push({ jail: j.name, accepts });
        this.jailsOfFilter.set(f, list);
      }
    }
    this.seedFromHistory();
    const onEvent = (e: Event): void => this.onEvent(e);
    const onDecision = (d: Decision): void => this.onDecision(d);
    daemon.events.on('event', onEvent);
    daemon.events.on('decision', onDecision);
    this.listeners.push(() => daemon.events.off('event', onEvent), () => daemon.events.off('decision', onDecision));
  }

  /** Starts sampling the firewall's drop counters (for the dropped-traffic series). */
  startSampling(intervalMs = 15_000): void {
    const sample = (): void => void this.sampleCounters();
    sample();
    this.counterTimer = setInterval(sample, intervalMs);
    this.counterTimer.unref();
  }

  stop(): void {
    if (this.counterTimer) clearInterval(this.counterTimer);
    this.counterTimer = null;
    for (const off of this.listeners.splice(0)) off();
  }

  /** Lines matched per `filter\0kind` (for /metrics). */
  get matched(): Map<string, number> {
    const flat = new Map<string, number>();
    for (const [filter, kinds] of this.matchedByFilter) for (const [kind, n] of kinds) flat.set(`${filter}\0${kind}`, n);
    return flat;
  }

  /** Which jails counted this event (a filter may serve several jails, on different files). */
  jailsOf(e: Event): string[] {
    let bySource = this.jailsCache.get(e.filter);
    let jails = bySource?.get(e.line.source);
    if (jails) return jails;
    const candidates = this.jailsOfFilter.get(e.filter) ?? [];
    const hit = candidates.filter((c) => c.accepts(e.line.source)).map((c) => c.jail);
    jails = hit.length ? hit : candidates.map((c) => c.jail);
    if (this.jailsCached >= 4096) {
      this.jailsCache.clear();
      this.jailsCached = 0;
    }
    if (!bySource) this.jailsCache.set(e.filter, (bySource = new Map()));
    bySource.set(e.line.source, jails);
    this.jailsCached++;
    return jails;
  }

  private onEvent(e: Event): void {
    const now = this.now();
    let kinds = this.matchedByFilter.get(e.filter);
    if (!kinds) this.matchedByFilter.set(e.filter, (kinds = new Map()));
    bump(kinds, e.kind);
    if (e.line.timeFromLine) this.lagSeconds.set(e.line.source, Math.max(0, (now - e.time) / 1000));
    const jails = this.jailsOf(e);
    this.recent.add(e, now, jails);
    if (e.kind === 'health') {
      bump(this.health, `${e.filter}\0${e.pattern}`);
      this.healthEvents.add(e, now, jails);
      return;
    }
    // Charted by arrival: a live view of what the daemon is fighting now, whatever the lines' own clocks say.
    for (const j of jails) ring(this.failures, j).add(now);
    if (e.address !== null) this.offenders.addFailure(e.address, jails, now);
  }

  private onDecision(d: Decision): void {
    bump(this.decisions, `${d.jail}\0${d.action}`);
    const now = this.now();
    if (d.action === 'ban') {
      this.bans.add(now);
      if (!d.target.includes('/')) this.offenders.addBan(d.target, d.jail, now);
    } else if (d.action === 'unban') {
      this.unbans.add(now);
    }
  }

  /** Bans and unbans of the last day from the database, so a restart does not blank the chart. */
  private seedFromHistory(): void {
    const since = this.now() - DAY_MINUTES * MINUTE;
    for (const b of this.daemon.store.history({ limit: 100_000 })) {
      if (b.time >= since) this.bans.add(b.time);
      if (b.liftedAt !== null && b.liftedAt >= since) this.unbans.add(b.liftedAt);
      if (b.time < since && (b.liftedAt === null || b.liftedAt < since)) break;
    }
  }

  async sampleCounters(): Promise<void> {
    const counters = await this.daemon.enforcerCounters();
    const next = new Map<string, { packets: number; at: number }>();
    for (const c of counters) {
      const sum = next.get(c.jail);
      next.set(c.jail, { packets: (sum?.packets ?? 0) + c.packets, at: Math.max(sum?.at ?? 0, c.sampledAt) });
    }
    for (const [jail, now] of next) {
      const before = this.lastCounters.get(jail);
      // The first sample is the baseline; a counter that went down was reset (firewall rebuilt).
      if (before === undefined) ring(this.dropped, jail);
      // Reads are paced (minutes apart with many bans): what was stopped in between is spread over the minutes it covers.
      else if (now.at > before.at) spread(ring(this.dropped, jail), before.at, now.at, now.packets >= before.packets ? now.packets - before.packets : now.packets);
    }
    this.lastCounters = next;
  }

  series(range: '1h' | '1d'): Series {
    const minutes = range === '1h' ? 60 : DAY_MINUTES;
    const step = range === '1h' ? 1 : 10;
    const last = Math.floor(this.now() / MINUTE);
    const times: number[] = [];
    for (let m = last - minutes + 1; m <= last; m += step) times.push(m * 60);
    const per = (rings: Map<string, MinuteRing>): Record<string, number[]> =>
      Object.fromEntries([...rings].sort(([a], [b]) => a.localeCompare(b)).map(([k, r]) => [k, r.values(last, minutes, step)]));
    return {
      range, times, stepSeconds: step * 60,
      failures: per(this.failures),
      bans: this.bans.values(last, minutes, step),
      unbans: this.unbans.values(last, minutes, step),
      dropped: per(this.dropped),
    };
  }

  recentEvents(limit = 100, kind?: string): RecentEvent[] {
    return this.recent.newestFirst(limit, kind).map(recentJson);
  }

  healthLog(limit = 50): RecentEvent[] {
    return this.healthEvents.newestFirst(limit).map(recentJson);
  }

  /** Addresses and networks (/24 for IPv4, /64 for IPv6) with the most failures and bans over the last day. */
  top(limit = 10): { addresses: TopEntry[]; networks: TopEntry[] } {
    const since = this.now() - DAY_MINUTES * MINUTE;
    const nets = new Map<string, TopEntry & { members: Set<string> }>();
    const addresses: TopEntry[] = [];
    for (const o of this.offenders.entries(since)) {
      const { address } = o;
      const jails = [...o.jails].sort();
      addresses.push({ key: address, failures: o.failures, bans: o.bans, jails, last: new Date(o.last).toISOString() });
      const net = prefixOf(address, addressFamily(address) === 4 ? 24 : 64);
      let n = nets.get(net);
      if (!n) nets.set(net, (n = { key: net, failures: 0, bans: 0, jails: [], last: '', addresses: 0, members: new Set() }));
      n.failures += o.failures;
      n.bans += o.bans;
      n.members.add(address);
      n.addresses = n.members.size;
      for (const j of jails) if (!n.jails.includes(j)) n.jails.push(j);
      const iso = new Date(o.last).toISOString();
      if (iso > n.last) n.last = iso;
    }
    const rank = (a: TopEntry, b: TopEntry): number => b.failures + b.bans * BAN_WEIGHT - (a.failures + a.bans * BAN_WEIGHT) || a.key.localeCompare(b.key);
    return {
      addresses: addresses.sort(rank).slice(0, limit),
      networks: [...nets.values()].map(({ members: _m, ...rest }) => rest).sort(rank).slice(0, limit),
    };
  }
}

export interface TopEntry {
  key: string;
  failures: number;
  bans: number;
  jails: string[];
  last: string;
  addresses?: number;
}

function bump(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

interface Seen {
  event: Event;
  at: number;
  jails: string[];
}

export function recentJson({ event: e, at, jails }: Seen): RecentEvent {
  return {
    time: new Date(e.time).toISOString(), seen: new Date(at).toISOString(), kind: e.kind, service: e.service, filter: e.filter, pattern: e.pattern,
    address: e.address, user: e.user, jails, source: e.line.source, line: e.line.raw.length > LINE_MAX ? `${e.line.raw.slice(0, LINE_MAX)}…` : e.line.raw,
  };
}

/** The last `capacity` events seen, in parallel arrays: a flood allocates nothing per line here. */
class SeenRing {
  private readonly events: Event[] = [];
  private readonly at: Float64Array;
  private readonly jails: string[][] = [];
  private next = 0;

  constructor(private readonly capacity: number) {
    this.at = new Float64Array(capacity);
  }

  add(event: Event, at: number, jails: string[]): void {
    const i = this.next++ % this.capacity;
    this.events[i] = event;
    this.at[i] = at;
    this.jails[i] = jails;
  }

  /** Up to `limit` events (of `kind`, when given), newest first. */
  newestFirst(limit: number, kind?: string): Seen[] {
    const out: Seen[] = [];
    const oldest = Math.max(0, this.next - this.capacity);
    for (let n = this.next - 1; n >= oldest && out.length < limit; n--) {
      const i = n % this.capacity;
      const event = this.events[i]!;
      if (kind === undefined || event.kind === kind) out.push({ event, at: this.at[i]!, jails: this.jails[i]! });
    }
    return out;
  }
}

function ring(map: Map<string, MinuteRing>, key: string): MinuteRing {
  let r = map.get(key);
  if (!r) map.set(key, (r = new MinuteRing()));
  return r;
}
