import { AddressMap } from '../core/address-map.js';
import { addressFamily, ownCopy, parseNetwork, prefixOf, type Network } from '../core/address.js';
import { formatDuration } from '../core/duration.js';
import type { Decision, Event, LogLine } from '../core/types.js';
import { RECIDIVE_JAIL } from '../config/builtin-jails.js';
import type { JailConfig } from '../config/load.js';
import { EscalationDetector, type Escalation } from '../detectors/escalation.js';
import { FailureCounter, type JailLimits, type Trip } from '../detectors/jail.js';
import { SiegeDetector, type SiegeTransition } from '../detectors/siege.js';
import { LongWindowDetector, type LongWindowTrip } from '../detectors/spray.js';
import { programMatches, type Filter } from '../filters/filter.js';
import { createFilter } from '../filters/index.js';
import { createFail2banFilter, isFail2banFilterSpec } from '../fail2ban/fail2ban-filter.js';
import { Allowlist, type AllowlistEntry, type AllowlistResolver } from '../policy/allowlist.js';
import { ALL_JAILS, BanCounts, describeGrowth, grownBantime } from '../policy/bantime.js';
import { FailureRows, type FailureRow, type StateChanges, type StoredEvidence } from '../state/store.js';

/**
 * The detection pipeline shared by the daemon and `replay`: lines → filters →
 * per-jail counters → allowlist policy → decisions. It is synchronous and
 * keeps no I/O: callers feed lines, then take the decisions and state changes
 * the lines caused and commit/enforce them.
 *
 * Beyond per-address counting, each jail may have: a siege detector (fed every
 * non-allowlisted failure), a long-window detector for slow and sprayed brute
 * force (fed the failures that did not ban), netblock escalation and ban-time
 * growth (fed bans only), and the recidive jail is fed every other jail's bans.
 * A disabled defence costs one null check per failure; nothing runs per line.
 */

export interface PipelineOptions {
  jails: readonly JailConfig[];
  globalIgnore: readonly Network[];
  /** `replay`: bans end at line time + bantime; `live`: at wall clock + bantime. */
  mode: 'replay' | 'live';
  /**
   * The daemon's state database: every failure is handed out as a row (output
   * `failuresAdded`) with an id, counters hold the ids rather than the lines,
   * and a ban's evidence is read back by id. Without it (replay) counters hold the lines.
   */
  failureLog?: FailureLog;
  now?: () => number;
  origin: string;
  /** Treat the host's own addresses as allowlisted (always in live use; tests may turn it off). */
  includeHostAddresses?: boolean;
  /** Told of every matched line (evidence and health), e.g. for metrics and the dashboard. */
  onEvent?: (event: Event) => void;
  /** Earlier ban counts (counted by the store from its bans), so repeat offenders stay repeat offenders across restarts. */
  banCounts?: (target: string, jail: string) => number;
  /** Things the admin should know that are not decisions (a prefix not banned because it covers an allowlisted address). */
  onNotice?: (message: string) => void;
  /** Global `allowlist:` entries (each jail adds its own). */
  allowlist?: readonly AllowlistEntry[];
  /** Resolves the host:, spf: and file: entries; without one they allow nothing. */
  allowlistResolver?: AllowlistResolver;
}

export interface FailureLog {
  /** The first id to hand out (ids increase for the life of the database). */
  nextId: number;
}

export interface PipelineOutput {
  decisions: Decision[];
  failuresAdded: FailureRows;
  /** Ids of failures that ended in a ban (cleared too, see failuresCleared). */
  failuresConsumed: number[];
  /** An address's failures in a jail that stop counting (a ban, a long-window ban). */
  failuresCleared: Array<{ jail: string; address: string; before: number }>;
  /** Bans' evidence lines still in the failure log (older than the batch), for the store's commit to fill in. */
  evidenceToRead: StoredEvidence[];
}

/** What a batch's output changes in the store: its failures, bans (with the evidence to fill in) and unbans. */
export function stateChangesOf(out: PipelineOutput): StateChanges {
  return {
    failuresAdded: out.failuresAdded,
    failuresConsumed: out.failuresConsumed,
    failuresCleared: out.failuresCleared,
    bans: out.decisions.filter((d) => d.action === 'ban'),
    evidenceToRead: out.evidenceToRead,
    unbans: out.decisions.filter((d) => d.action === 'unban').map((d) => ({ jail: d.jail, target: d.target, time: d.time, reason: d.reason })),
  };
}

const EMPTY_OUTPUT: PipelineOutput = Object.freeze({
  decisions: Object.freeze([]) as unknown as Decision[], failuresAdded: new FailureRows(),
  failuresConsumed: Object.freeze([]) as unknown as number[], failuresCleared: Object.freeze([]) as unknown as PipelineOutput['failuresCleared'],
  evidenceToRead: Object.freeze([]) as unknown as StoredEvidence[],
});

export interface JailStats {
  failures: number;
  ignored: number;
  bans: number;
  /** Prefix bans made by netblock escalation. */
  escalations: number;
  /** Prefixes not banned because they cover an allowlisted address. */
  conflicts: number;
  lastConflict: string | null;
  slowBans: number;
  sprayBans: number;
}

export interface FilterStats {
  matched: number;
  byPattern: Map<string, number>;
  health: number;
  /** Lines under the filter's programs longer than its service can write: somebody else's, skipped unread. */
  overlong: number;
}

interface JailRuntime {
  config: JailConfig;
  /** The counter's limits; a siege lowers maxretry while it lasts. */
  limits: JailLimits;
  /** Holds failure ids with a FailureLog (the recidive jail: its lines), otherwise lines. */
  counter: FailureCounter<string | number>;
  allowlist: Allowlist;
  /** Active bans: target → until (null: permanent). */
  active: AddressMap;
  stats: JailStats;
  escalation: EscalationDetector | null;
  /** Active prefix bans per family: prefix length → prefixes, to pass over lines of addresses they cover. */
  prefixBans: { 4: Map<number, Set<string>>; 6: Map<number, Set<string>> };
  prefixBanCount: number;
  siege: SiegeDetector | null;
  longWindow: LongWindowDetector | null;
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

/** What `status` shows about a jail's defences beyond per-address counting. */
export interface DefenceStatus {
  bantime: string;
  escalation: { steps: string[]; bannedNow: number; escalations: number; conflicts: number; lastConflict: string | null; tracking: number } | null;
  siege: {
    active: boolean; since: number | null; leavesAt: number | null; rate: number; sources: number; entered: number; lastTransition: number | null;
    enter: string; leave: string; during: string;
  } | null;
  slow: { window: string; maxretry: number; spray: string | null; addresses: number; users: number; sprayedUsers: number; slowBans: number; sprayBans: number } | null;
  /** Only for the recidive jail: addresses with bans counted in its window. */
  recidive: { counting: number; rule: string } | null;
}

/** What `explain` shows about one address in one jail's defences. */
export interface DefenceExplanation {
  jail: string;
  /** An active prefix ban of this jail that covers the address. */
  coveredBy: string | null;
  escalation: Array<{ prefix: string; banned: string[]; threshold: number; window: string; prefixBanned: boolean }>;
  /** Earlier bans counted by this jail's growth rule, and the ban the next one would get. */
  previousBans: number;
  nextBantime: string;
  siege: string | null;
  longWindow: { failures: number; maxretry: number; window: string; sprayedUser: string | null; sprayMaxretry: number | null } | null;
  /** Recidive jail: bans of the address counted in its window. */
  recidiveBans: number | null;
}

export class Pipeline {
  readonly jails = new Map<string, JailRuntime>();
  readonly filterStats = new Map<string, FilterStats>();
  /** Health events (operational warnings) by filter and pattern. */
  readonly health = new Map<string, number>();
  private readonly routes = new Map<string, Route>();
  private readonly expiry = new ExpiryHeap();
  private readonly now: () => number;
  private readonly counts: BanCounts;
  private readonly growthConfigured: boolean;
  /** The recidive jail (fed with every other jail's bans), when enabled. */
  private readonly recidive: JailRuntime | null;
  private siegesActive = 0;
  private out: PipelineOutput = { decisions: [], failuresAdded: new FailureRows(), failuresConsumed: [], failuresCleared: [], evidenceToRead: [] };
  private readonly failureLog: FailureLog | null;
  private nextFailureId: number;
  /** The first failure id of the batch not yet taken: ids from here on are in out.failuresAdded, in order. */
  private batchFirstId: number;
  linesProcessed = 0;
  linesMatched = 0;

  constructor(private readonly options: PipelineOptions) {
    this.now = options.now ?? Date.now;
    this.counts = new BanCounts(options.banCounts ?? null);
    this.growthConfigured = options.jails.some((j) => j.bantimeGrowth);
    this.failureLog = options.failureLog ?? null;
    this.nextFailureId = this.batchFirstId = this.failureLog?.nextId ?? 1;
    for (const config of options.jails) {
      const limits: JailLimits = { maxretry: config.maxretry, findtime: config.findtime };
      this.jails.set(config.name, {
        config,
        limits,
        counter: new FailureCounter<string | number>(limits),
        allowlist: new Allowlist([...options.globalIgnore, ...config.ignoreip], {
          includeHost: options.includeHostAddresses ?? true, entries: [...(options.allowlist ?? []), ...(config.allowlist ?? [])], resolver: options.allowlistResolver,
        }),
        active: new AddressMap(),
        stats: { failures: 0, ignored: 0, bans: 0, escalations: 0, conflicts: 0, lastConflict: null, slowBans: 0, sprayBans: 0 },
        escalation: config.escalate ? new EscalationDetector(config.escalate) : null,
        prefixBans: { 4: new Map(), 6: new Map() },
        prefixBanCount: 0,
        siege: config.siege ? new SiegeDetector(config.siege) : null,
        longWindow: config.slow ? new LongWindowDetector(config.slow) : null,
      });
      for (const f of config.filters) if (!this.filterStats.has(f)) this.filterStats.set(f, { matched: 0, byPattern: new Map(), health: 0, overlong: 0 });
    }
    this.recidive = this.jails.get(RECIDIVE_JAIL) ?? null;
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
    if (f === undefined) this.filters.set(name, (f = createFilter(name) ?? (isFail2banFilterSpec(name) ? createFail2banFilter(name) : null)));
    return f;
  }

  /** Lines a filter gave up on because its patterns ran over their time budget (see regex-budget.ts). */
  linesOverBudget(filterName: string): number {
    return this.filters.get(filterName)?.linesOverBudget ?? 0;
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
    if (this.options.mode === 'replay') {
      if (line.time >= this.expiry.nextAt) this.expire(line.time);
      // A siege ends on the log's clock too, even when its jail's lines have stopped.
      else if (this.siegesActive > 0) this.tickSieges(line.time);
    }
    for (const entry of entries) {
      const limit = entry.filter.maxMessageLength;
      if (limit !== undefined && line.message.length > limit) {
        this.filterStats.get(entry.filter.name)!.overlong++;
        continue;
      }
      const m = entry.filter.match(line);
      if (m === null) continue;
      this.linesMatched++;
      const stats = this.filterStats.get(entry.filter.name)!;
      stats.matched++;
      stats.byPattern.set(m.pattern, (stats.byPattern.get(m.pattern) ?? 0) + 1);
      const event: Event = { time: m.time ?? line.time, service: entry.filter.service, kind: m.kind, address: m.address, user: m.user, filter: entry.filter.name, pattern: m.pattern, line };
      if (m.repeat) event.repeat = true;
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
    if (ev.repeat) return;
    const address = ev.address!;
    jail.stats.failures++;
    if (jail.allowlist.match(address) !== null) {
      jail.stats.ignored++;
      return;
    }
    // Every failure counts towards the siege rate, also from addresses banned a moment ago.
    if (jail.siege !== null) {
      const t = jail.siege.record(address, ev.time);
      if (t !== null) this.siegeTransition(jail, t);
    }
    // Lines from an address already banned here (logged before the firewall took effect) do not count again.
    if (jail.active.has(address)) return;
    if (jail.prefixBanCount > 0 && this.coveringPrefixBan(jail, address) !== null) return;
    let ref: string | number = ev.line.raw;
    if (this.failureLog !== null) {
      ref = this.nextFailureId++;
      this.out.failuresAdded.push(ref, jail.config.name, address, ev.time, ev.line.raw);
    }
    const trip = jail.counter.record(address, ev.time, ref);
    if (trip === null) {
      if (jail.longWindow !== null) {
        for (const t of jail.longWindow.record(address, ev.user, ev.time)) this.banLongWindow(jail, t, ev);
      }
      return;
    }
    if (this.failureLog !== null) {
      // The banned address's failures stop counting; those of this batch need not be written at all.
      // Those already on disk are cleared by a tombstone. None are when every one counted is of this
      // batch: older ones are out of the window and could never count with newer ones again, unless
      // the jail's long window (hours) remembers them, so it always gets the tombstone.
      let onDisk = jail.longWindow !== null;
      for (const id of trip.evidence) {
        this.out.failuresConsumed.push(id as number);
        if ((id as number) < this.batchFirstId) onDisk = true;
      }
      if (onDisk) this.out.failuresCleared.push({ jail: jail.config.name, address, before: ev.time });
    }
    jail.longWindow?.forget(address);
    const { config } = jail;
    const sieged = jail.siege?.active ? `; siege: maxretry ${jail.limits.maxretry}` : '';
    this.banFor(jail, address, ev.time,
      `${trip.failures} failure${trip.failures === 1 ? '' : 's'} within ${formatDuration(config.findtime)} (last: ${ev.kind} by ${ev.filter}${ev.user ? `, user ${JSON.stringify(ev.user)}` : ''})${sieged}`,
      this.evidenceOf(trip), this.jailBantime(jail));
  }

  /**
   * A trip's lines: held by the counter, or by id in this batch's rows or (older) the failure log.
   * Older lines are placeholders until the batch's commit reads them all at once (StoredEvidence).
   */
  private evidenceOf(trip: Trip<string | number>): string[] {
    if (this.failureLog === null) return trip.evidence as string[];
    const ids = trip.evidence as number[];
    const stored = ids.filter((id) => id < this.batchFirstId);
    const lines: string[] = stored.map(() => '');
    if (stored.length > 0) this.out.evidenceToRead.push({ lines, ids: stored });
    for (const id of ids) if (id >= this.batchFirstId) lines.push(this.out.failuresAdded.lines[id - this.batchFirstId]!);
    return lines;
  }

  /** The jail's base ban time now: a siege may lengthen it. */
  private jailBantime(jail: JailRuntime): number | null {
    const siege = jail.siege;
    return siege?.active && siege.config.bantime !== undefined ? siege.config.bantime : jail.config.bantime;
  }

  /** Bans `target` in `jail` for `base` grown by the target's earlier bans (repeat offenders). */
  private banFor(jail: JailRuntime, slicedTarget: string, time: number, reason: string, evidence: string[], base: number | null): void {
    // A copy: the target outlives its log line by the whole ban, as a key every later line is looked up by.
    const target = ownCopy(slicedTarget);
    const { config } = jail;
    const growth = config.bantimeGrowth ?? null;
    const previous = growth ? this.counts.get(target, growth.count === 'all' ? ALL_JAILS : config.name) : 0;
    const duration = grownBantime(base, growth, previous, target);
    const start = this.options.mode === 'replay' ? time : this.now();
    this.ban(jail, {
      action: 'ban', target, jail: config.name, time, until: duration === null ? null : start + duration, duration,
      reason: previous > 0 ? `${reason}; banned ${previous} time(s) before, so ${formatDuration(duration)}` : reason,
      origin: this.options.origin, evidence,
      ...(config.ports ? { ports: config.ports } : {}), protocol: config.protocol,
    });
  }

  private ban(jail: JailRuntime, decision: Decision): void {
    jail.active.set(decision.target, decision.until);
    jail.stats.bans++;
    if (decision.until !== null) this.expiry.push(decision.until, jail.config.name, decision.target);
    this.out.decisions.push(decision);
    // Counts are read only for growing ban times; without them each new ban would cost two database reads.
    if (this.growthConfigured) this.counts.add(decision.target, jail.config.name);
    if (decision.target.includes('/')) this.prefixBanned(jail, decision.target, true);
    if (jail.escalation !== null) {
      const esc = jail.escalation.onBan(decision.target, decision.time);
      if (esc !== null) this.escalate(jail, esc, decision.time);
    }
    const recidive = this.recidive;
    if (recidive !== null && recidive !== jail && !recidive.active.has(decision.target)) {
      const line = `${new Date(decision.time).toISOString()} [${jail.config.name}] ban ${decision.target}: ${decision.reason}`;
      const trip = recidive.counter.record(decision.target, decision.time, line);
      if (trip !== null) {
        // The recidive jail counts bans, not failures: it holds the lines it made up.
        const evidence = trip.evidence as string[];
        const jails = [...new Set(evidence.map((l) => /\[([^\]]+)\]/.exec(l)?.[1] ?? '?'))];
        this.banFor(recidive, decision.target, decision.time,
          `banned ${trip.failures} times within ${formatDuration(recidive.config.findtime)} (in ${jails.join(', ')})`, evidence, recidive.config.bantime);
      }
    }
  }

  /** A prefix is due a ban: ban it, unless it would cover an allowlisted address (then say so). */
  private escalate(jail: JailRuntime, esc: Escalation, time: number): void {
    const step = jail.config.escalate![esc.step]!;
    const what = `${esc.members.length} ${esc.step === 0 ? 'addresses' : 'prefixes'} of ${esc.prefix} banned within ${formatDuration(step.window)}`;
    const allowed = jail.allowlist.coversAllowed(parseNetwork(esc.prefix)!);
    if (allowed !== null) {
      jail.stats.conflicts++;
      jail.stats.lastConflict = `${esc.prefix} covers ${allowed}`;
      this.options.onNotice?.(`[${jail.config.name}] not banning ${esc.prefix} although ${what}: it covers allowlist entry ${allowed}; the addresses stay banned one by one`);
      return;
    }
    if (jail.active.has(esc.prefix)) return;
    jail.stats.escalations++;
    this.banFor(jail, esc.prefix, time, `netblock escalation: ${what} (${esc.members.join(', ')})`, esc.members.map((m) => `banned ${m}`), step.bantime);
  }

  private banLongWindow(jail: JailRuntime, t: LongWindowTrip, ev: Event): void {
    const slow = jail.config.slow!;
    if (jail.active.has(t.address)) return;
    jail.counter.forget(t.address);
    if (this.failureLog !== null) this.out.failuresCleared.push({ jail: jail.config.name, address: t.address, before: ev.time });
    const window = formatDuration(slow.window);
    let reason: string;
    if (t.kind === 'slow') {
      jail.stats.slowBans++;
      reason = `slow brute force: ${t.failures} failures within ${window}`;
    } else {
      jail.stats.sprayBans++;
      reason = `distributed brute force: tried user ${JSON.stringify(t.user)}, which was tried from at least ${slow.spray!.sources} addresses within ${window}; ${t.failures} failure(s) within ${window}`;
    }
    this.banFor(jail, t.address, ev.time, reason, t.address === ev.address ? [ev.line.raw] : [], slow.bantime === undefined ? this.jailBantime(jail) : slow.bantime);
  }

  private siegeTransition(jail: JailRuntime, t: SiegeTransition): void {
    const { config } = jail;
    const c = jail.siege!.config;
    let reason: string;
    if (t.action === 'siege-on') {
      this.siegesActive++;
      jail.limits.maxretry = Math.min(c.maxretry, config.maxretry);
      reason = `${t.failures} failures in the last minute from ${t.sources} addresses (siege at ${c.enterRate} a minute from ${c.enterSources}): `
        + `maxretry ${jail.limits.maxretry}${c.bantime !== undefined ? `, bans of ${formatDuration(c.bantime)}` : ''}, `
        + (c.allowlistOnly ? 'only allowlisted sources accepted' : `new connections limited to ${c.rateLimit}`);
    } else {
      this.siegesActive--;
      jail.limits.maxretry = config.maxretry;
      reason = `fewer than ${c.leaveRate} failures a minute for ${formatDuration(c.leaveFor)}`;
    }
    this.out.decisions.push({
      action: t.action, target: '*', jail: config.name, time: t.time, until: null, reason, origin: this.options.origin,
      ...(config.ports ? { ports: config.ports } : {}), protocol: config.protocol,
      ...(t.action === 'siege-on' ? { siege: { rateLimit: c.rateLimit, allowlistOnly: c.allowlistOnly } } : {}),
    });
  }

  private tickSieges(now: number): void {
    for (const jail of this.jails.values()) {
      if (jail.siege === null || !jail.siege.active) continue;
      const t = jail.siege.tick(now);
      if (t !== null) this.siegeTransition(jail, t);
    }
  }

  private prefixBanned(jail: JailRuntime, target: string, banned: boolean): void {
    const slash = target.indexOf('/');
    const length = Number(target.slice(slash + 1));
    const byLength = jail.prefixBans[addressFamily(target)];
    let set = byLength.get(length);
    if (banned) {
      if (set === undefined) byLength.set(length, (set = new Set()));
      if (!set.has(target)) { set.add(target); jail.prefixBanCount++; }
    } else if (set?.delete(target)) {
      jail.prefixBanCount--;
      // Lifting a prefix ban ends its escalation: it takes `threshold` new bans to escalate again.
      jail.escalation?.forget(target);
    }
  }

  /** The active prefix ban of `jail` covering `address`, or null. */
  private coveringPrefixBan(jail: JailRuntime, address: string): string | null {
    for (const [length, set] of jail.prefixBans[addressFamily(address)]) {
      if (set.size === 0) continue;
      const prefix = prefixOf(address, length);
      if (set.has(prefix)) return prefix;
    }
    return null;
  }

  private lifted(jail: JailRuntime, target: string): void {
    jail.active.delete(target);
    if (target.includes('/')) this.prefixBanned(jail, target, false);
  }

  /** Emits unbans for bans whose time is up at `now` (line time in replay, wall clock live), and ends sieges that calmed down. */
  expire(now: number): void {
    while (this.expiry.nextAt <= now) {
      const e = this.expiry.pop()!;
      const jail = this.jails.get(e.jail);
      // The heap may hold stale entries for bans that were lifted or replaced since.
      if (!jail || jail.active.get(e.target) !== e.until) continue;
      this.lifted(jail, e.target);
      this.out.decisions.push({ action: 'unban', target: e.target, jail: e.jail, time: e.until, until: null, reason: 'bantime expired', origin: this.options.origin });
    }
    for (const jail of this.jails.values()) {
      jail.counter.expire(now);
      jail.escalation?.expire(now);
      jail.longWindow?.expire(now);
    }
    if (this.siegesActive > 0) this.tickSieges(now);
  }

  /** A ban from outside the detectors (CLI, API); `jail` must exist or be a manual pseudo-jail. */
  manualBan(target: string, jailName: string, until: number | null, reason: string, origin: string, time = this.now()): Decision {
    const decision: Decision = { action: 'ban', target, jail: jailName, time, until, reason, origin };
    const jail = this.jails.get(jailName);
    if (jail) {
      jail.counter.forget(target);
      jail.longWindow?.forget(target);
      this.ban(jail, decision);
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
      if (!jail.active.has(target)) continue;
      this.lifted(jail, target);
      // An address the admin let go no longer counts towards its netblock's escalation.
      jail.escalation?.forget(target);
      const d: Decision = { action: 'unban', target, jail: jail.config.name, time, until: null, reason, origin };
      made.push(d);
      this.out.decisions.push(d);
    }
    return made;
  }

  /**
   * Restores state after a restart: active bans (not yet expired), pending
   * failures (also the long-window counts), and recent ban history (for
   * netblock escalation and the recidive jail), oldest first. Restoring never
   * decides anything.
   */
  restore(
    bans: ReadonlyArray<{ target: string; jail: string; until: number | null }>,
    failures: readonly FailureRow[],
    history: ReadonlyArray<{ target: string; jail: string; time: number }> = [],
  ): void {
    for (const b of bans) {
      const jail = this.jails.get(b.jail);
      if (!jail) continue;
      jail.active.set(b.target, b.until);
      if (b.target.includes('/')) this.prefixBanned(jail, b.target, true);
      if (b.until !== null) this.expiry.push(b.until, b.jail, b.target);
    }
    for (const f of failures) {
      const jail = this.jails.get(f.jail);
      if (!jail || jail.active.has(f.address)) continue;
      const trip = jail.counter.record(f.address, f.time, this.failureLog !== null ? f.id : f.line);
      if (trip) jail.counter.forget(f.address);
      jail.longWindow?.restore(f.address, f.time);
    }
    for (const h of history) {
      const jail = this.jails.get(h.jail);
      if (!jail) continue;
      // Evidence that already escalated was consumed then; the prefix ban itself is in the history too.
      jail.escalation?.onBan(h.target, h.time);
      const recidive = this.recidive;
      if (recidive !== null && recidive !== jail && recidive.counter.record(h.target, h.time, `${new Date(h.time).toISOString()} [${h.jail}] ban ${h.target}`) !== null) {
        recidive.counter.forget(h.target);
      }
    }
  }

  /** How far back `restore` wants pending failures (long windows included) and ban history (ms). */
  retention(): { failures: number; history: number } {
    let failures = 0;
    let history = 0;
    for (const { config } of this.jails.values()) {
      failures = Math.max(failures, config.findtime, config.slow?.window ?? 0);
      for (const step of config.escalate ?? []) history = Math.max(history, step.window);
      if (config.name === RECIDIVE_JAIL) history = Math.max(history, config.findtime);
    }
    return { failures, history };
  }

  /** Takes (and resets) what the lines processed since the last call decided and changed. */
  take(): PipelineOutput {
    const out = this.out;
    this.batchFirstId = this.nextFailureId;
    // Most lines decide nothing: hand back the same empty output rather than allocate per line.
    if (out.decisions.length === 0 && out.failuresAdded.length === 0 && out.failuresCleared.length === 0) return EMPTY_OUTPUT;
    this.out = { decisions: [], failuresAdded: new FailureRows(), failuresConsumed: [], failuresCleared: [], evidenceToRead: [] };
    return out;
  }

  /** Addresses with failures pending in `jail`. */
  failing(jail: string): number {
    return this.jails.get(jail)?.counter.size ?? 0;
  }

  /** The defences of `jailName` for `status`. */
  defenceStatus(jailName: string): DefenceStatus | null {
    const jail = this.jails.get(jailName);
    if (!jail) return null;
    const { config, stats } = jail;
    const siege = jail.siege;
    const slow = jail.longWindow;
    return {
      bantime: describeGrowth(config.bantime, config.bantimeGrowth),
      escalation: jail.escalation === null ? null : {
        steps: jail.escalation.steps.map((s) => `${s.threshold} bans within ${formatDuration(s.window)} in one /${s.prefix4} or /${s.prefix6} → ban it for ${formatDuration(s.bantime)}`),
        bannedNow: jail.prefixBanCount, escalations: stats.escalations, conflicts: stats.conflicts, lastConflict: stats.lastConflict, tracking: jail.escalation.tracked,
      },
      siege: siege === null ? null : {
        active: siege.active, since: siege.since, leavesAt: siege.leavesAt, rate: siege.rate, sources: siege.distinctSources, entered: siege.entered, lastTransition: siege.lastTransition,
        enter: `${siege.config.enterRate} failures a minute from ${siege.config.enterSources} addresses`,
        leave: `below ${siege.config.leaveRate} a minute for ${formatDuration(siege.config.leaveFor)}`,
        during: `maxretry ${Math.min(siege.config.maxretry, config.maxretry)}${siege.config.bantime !== undefined ? `, bantime ${formatDuration(siege.config.bantime)}` : ''}, ${siege.config.allowlistOnly ? 'allowlisted sources only' : `new connections ${siege.config.rateLimit}`}`,
      },
      slow: slow === null ? null : {
        window: formatDuration(slow.config.window), maxretry: slow.config.maxretry,
        spray: slow.config.spray ? `a user name tried from ${slow.config.spray.sources} addresses; participants banned at ${slow.config.spray.maxretry} failure(s)` : null,
        addresses: slow.trackedAddresses, users: slow.trackedUsers, sprayedUsers: slow.sprayedUsers, slowBans: stats.slowBans, sprayBans: stats.sprayBans,
      },
      recidive: jail === this.recidive ? { counting: jail.counter.size, rule: `${config.maxretry} bans within ${formatDuration(config.findtime)} in other jails` } : null,
    };
  }

  /** Where `address` stands in every jail's defences, for `explain`. */
  explainDefences(address: string, now = this.now()): DefenceExplanation[] {
    const out: DefenceExplanation[] = [];
    for (const jail of this.jails.values()) {
      const { config } = jail;
      const growth = config.bantimeGrowth ?? null;
      const previousBans = growth ? this.counts.get(address, growth.count === 'all' ? ALL_JAILS : config.name) : 0;
      const siege = jail.siege;
      const slow = jail.longWindow;
      const evidence = slow?.evidenceOf(address, now);
      out.push({
        jail: config.name,
        coveredBy: jail.prefixBanCount > 0 && !address.includes('/') ? this.coveringPrefixBan(jail, address) : null,
        escalation: (jail.escalation?.progress(address, now) ?? []).map((p) => ({
          prefix: p.prefix, banned: p.members, threshold: p.threshold, window: formatDuration(p.window), prefixBanned: jail.active.has(p.prefix),
        })),
        previousBans,
        nextBantime: formatDuration(grownBantime(this.jailBantime(jail), growth, previousBans, address)),
        siege: siege?.active ? `under siege since ${new Date(siege.since!).toISOString()} (${siege.rate} failures in the last minute from ${siege.distinctSources} addresses): maxretry ${jail.limits.maxretry}` : null,
        longWindow: slow && evidence ? { failures: evidence.failures, maxretry: slow.config.maxretry, window: formatDuration(slow.config.window), sprayedUser: evidence.sprayedUser, sprayMaxretry: slow.config.spray?.maxretry ?? null } : null,
        recidiveBans: jail === this.recidive ? jail.counter.failuresOf(address) : null,
      });
    }
    return out;
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
