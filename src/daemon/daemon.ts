import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Config } from '../config/load.js';
import { canonicalTarget, networkCovers, parseNetwork } from '../core/address.js';
import { formatDuration } from '../core/duration.js';
import { PortcullisError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Decision, Event } from '../core/types.js';
import { banKey, type BanEntry } from '../enforcers/enforcer.js';
import { createEnforcers } from '../enforcers/index.js';
import { PacedAnswers } from '../core/paced.js';
import { Fleet, type FleetStatus } from '../fleet/fleet.js';
import type { Checkpoint, Source, SourceBatch, SourceStatus } from '../sources/source.js';
import { Store, type BanRecord, type StateChanges } from '../state/store.js';
import { createStateWriter } from '../state/store-writer.js';
import type { RetryingWriter } from '../state/retrying-writer.js';
import { EnforcementQueue, type EnforcerHealth } from './enforcement.js';
import { Pipeline, stateChangesOf, type DefenceExplanation, type DefenceStatus } from './pipeline.js';
import { buildSources, type RoutedSource } from './sources.js';
import { KernelDefences, type AllowlistStatus } from './kernel-defences.js';
import type { KernelBan } from '../enforcers/nftables-limits.js';

export interface DaemonOptions {
  log: Logger;
  /** Force the dry-run enforcer whatever the config says. */
  dryRun?: boolean;
  /** Also read lines from standard input, for every enabled jail. */
  stdin?: boolean;
  /** Remove the firewall objects on exit (by default bans stay in the kernel across restarts). */
  flushOnExit?: boolean;
  /** How often the firewall is re-synchronised with the database, ms. */
  reconcileInterval?: number;
}

export interface JailStatus {
  name: string;
  filters: string[];
  maxretry: number;
  findtime: string;
  bantime: string;
  ports: number[] | null;
  protocol: string;
  failing: number;
  failuresTotal: number;
  ignoredTotal: number;
  bannedNow: number;
  bannedTotal: number;
  sources: SourceStatus[];
  /** Escalation, repeat offenders, siege, slow/spray, recidive. */
  defences?: DefenceStatus | null;
}

export interface StatusReport {
  node: string;
  pid: number;
  startedAt: string;
  config: string[];
  stateDb: string;
  linesRead: number;
  linesMatched: number;
  jails: JailStatus[];
  enforcers: EnforcerHealth[];
  health: Record<string, number>;
  errors: string[];
  /** Sharing with other nodes through Redis; absent when no `fleet:` is configured. */
  fleet?: FleetStatus;
  /** Allowlist entries resolved from DNS and files: how many networks each gave, problems (SPF permerror…). */
  allowlist?: AllowlistStatus;
}

export interface Explanation {
  address: string;
  bans: BanJson[];
  history: BanJson[];
  jails: Array<{ jail: string; allowlistedBy: string | null; failing: number; maxretry: number; banned: boolean }>;
  banCount: number;
  /** Per jail: escalation steps, repeat-offender count and next bantime, siege state, long-window evidence. */
  defences?: DefenceExplanation[];
}

export interface BanJson {
  target: string;
  jail: string;
  time: string;
  until: string | null;
  reason: string;
  origin: string;
  evidence: string[];
  liftedAt: string | null;
  liftReason: string | null;
}

export function banJson(b: BanRecord): BanJson {
  const iso = (ms: number): string => new Date(ms).toISOString();
  return {
    target: b.target, jail: b.jail, time: iso(b.time), until: b.until === null ? null : iso(b.until), reason: b.reason, origin: b.origin,
    evidence: b.evidence, liftedAt: b.liftedAt === null ? null : iso(b.liftedAt), liftReason: b.liftReason,
  };
}

/**
 * What the daemon tells observers (HTTP API, dashboard, metrics, notifiers, fleet):
 * `decision` after a decision is committed, `event` for every matched line,
 * `started` and `stopping`.
 */
export interface DaemonEvents {
  decision: [Decision];
  event: [Event];
  started: [];
  stopping: [];
}

/**
 * While a source has a backlog (a flood, or catching up after a restart), the effects of its
 * batches are handed to the state writer together: one commit per this many ms or lines instead
 * of one per chunk read (the writer makes the commits that queue up one transaction). Bans wait
 * at most this long for their commit; without a backlog every batch is committed at once.
 */
const BACKLOG_COMMIT_MS = 250;
const BACKLOG_COMMIT_LINES = 50_000;
/** Bans and unbans logged one by one per second; beyond that (a flood) they are counted and summed up once a second. */
const DECISIONS_LOGGED_PER_SECOND = 100;

/** The long-running service: sources → pipeline → store → enforcers, plus housekeeping. */
export class Daemon {
  readonly events = new EventEmitter<DaemonEvents>();
  readonly store: Store;
  /** Counts over every ban, for the control plane: at a million bans reused for a while (see PacedAnswers). */
  readonly storeCounts = new PacedAnswers();
  /** Where batches are committed: here, or on a writer thread while a source has a backlog (its SQLite work then runs beside the pipeline). */
  private readonly writer: RetryingWriter;
  readonly pipeline: Pipeline;
  private readonly queue: EnforcementQueue;
  private readonly sources: RoutedSource[];
  /** This node's name: `fleet.node`, or the host name. */
  private readonly node: string;
  /** Decisions made by other nodes (or fleet-wide counting), which the fleet must not publish again. */
  private readonly remoteDecisions = new WeakSet<Decision>();
  readonly fleet: Fleet | null;
  /** Allowlist resolution, kernel-made bans (connection limits) and siege rules. */
  private readonly kernel: KernelDefences;
  private readonly startedAt = Date.now();
  private timers: NodeJS.Timeout[] = [];
  private readonly errors: string[] = [];
  /** The last commit's failure for a reason other than the disk (the writer keeps and retries those, see status). */
  private lastCommitError: string | null = null;
  /** Commit failures are logged once per spell: every commit fails the same way until the disk is freed. */
  private lastLoggedCommitError: string | null = null;
  /** Positions of lines processed but not committed yet (a backlog's batches), one per source key. */
  private readonly uncommitted = new Map<string, Checkpoint>();
  private uncommittedLines = 0;
  private uncommittedSince = 0;
  private backlogCommit: NodeJS.Timeout | null = null;
  /** Per source id: lines handed to the pipeline, and of those the lines whose commit is done. */
  private readonly linesTaken = new Map<string, number>();
  private linesCommitted = new Map<string, number>();
  /** A backlog's decisions handed to the firewall whose commit is not done yet (see commitAndEnforce), in order. */
  private readonly enforcedUncommitted = new Set<Decision[]>();
  /** Commits with decisions that go to the firewall once they are done, not done yet. */
  private enforcedAfterCommit = 0;
  private decisionsLoggable = DECISIONS_LOGGED_PER_SECOND;
  /** `jail\0action` → bans or unbans made this second but not logged one by one. */
  private readonly decisionsUnlogged = new Map<string, number>();

  constructor(private readonly config: Config, private readonly options: DaemonOptions) {
    const log = options.log;
    this.node = config.fleet?.node ?? hostname();
    this.store = Store.open(config.stateDir);
    this.writer = createStateWriter(this.store, log);
    const jails = config.jails.filter((j) => j.enabled);
    if (jails.length === 0) log.warn('no jail is enabled: Portcullis watches nothing (enable one in the config, e.g. `jails: { sshd: { enabled: true } }`)');
    this.kernel = new KernelDefences(config, () => this.pipeline, (ban, reason) => this.recordKernelBan(ban, reason), log);
    this.pipeline = new Pipeline({
      allowlist: config.allowlist ?? [], allowlistResolver: this.kernel.resolver,
      jails, globalIgnore: config.ignoreip, mode: 'live', origin: this.node, onEvent: (e) => this.events.emit('event', e),
      banCounts: (target, jail) => this.store.banCount(target, jail), onNotice: (m) => log.warn(m),
      failureLog: { nextId: this.store.nextFailureId() },
    });
    const assignments = createEnforcers(config, jails, { dryRun: options.dryRun ?? false, log });
    this.kernel.useEnforcers(jails, assignments);
    this.events.on('decision', (d) => this.kernel.onDecision(d));
    this.queue = new EnforcementQueue(assignments, () => this.wantedBans(), log);
    this.sources = buildSources(config, jails, { stdin: options.stdin ?? false, log });
    this.fleet = config.fleet ? new Fleet(config.fleet, this, log) : null;
  }

  /** True once every source is open: lines appended from now on are seen. */
  running = false;

  async start(): Promise<void> {
    const log = this.options.log;
    const now = Date.now();
    // Bans that ended while we were down are lifted first; the rest go back to the pipeline and the firewall.
    // Only what the pipeline and the firewall need: a million bans with their evidence parsed cost ~1 GB here.
    const expired = this.store.bansExpired(now);
    if (expired.length) {
      this.store.commit({ unbans: expired.map((b) => ({ jail: b.jail, target: b.target, time: now, reason: 'bantime expired while the daemon was stopped' })) });
      log.info(`lifted ${expired.length} ban(s) that expired while the daemon was stopped`);
    }
    // Pending failures are kept for the longest window that counts them (long-window detection: days), plus a day.
    const retention = this.pipeline.retention();
    const keepFailures = retention.failures + 86_400_000;
    this.pipeline.restore(this.store.bansInForce(now), this.store.failuresSince(now - keepFailures), retention.history ? this.store.bansSince(now - retention.history) : []);
    await this.kernel.resolveAllowlists();
    await this.queue.start();
    await this.kernel.start().catch((e: Error) => log.error(`kernel defences (allowlist sets, connection limits, siege): ${e.message}`));
    for (const routed of this.sources) {
      await routed.source.start((batch) => this.onBatch(batch, routed), this.store);
    }
    this.timers.push(setInterval(() => this.tick(), 1000));
    this.timers.push(setInterval(() => void this.queue.reconcileAll(), this.options.reconcileInterval ?? 5000));
    // On the writer thread: deleting an hour of a botnet's failures (500,000 rows: 0.6 s) would stall the pipeline.
    this.timers.push(setInterval(() => this.writer.commit({ pruneBefore: Date.now() - keepFailures }, (failure) => {
      if (failure !== null) log.error(failure.message);
    }, true), 3_600_000));
    this.fleet?.start();
    this.running = true;
    this.events.emit('started');
    log.info(`started: ${this.pipeline.jails.size} jail(s) [${[...this.pipeline.jails.keys()].join(', ')}], ${this.sources.length} source(s), state in ${this.store.path}`);
  }

  private onBatch(batch: SourceBatch, routed: RoutedSource): void {
    this.linesTaken.set(routed.source.id, (this.linesTaken.get(routed.source.id) ?? 0) + batch.lines.length);
    for (const line of batch.lines) {
      // Routes are made on first sight of a source (a file matched by a glob appears later).
      if (!this.pipeline.hasRoute(line.source)) this.pipeline.addRoute(line.source, routed.jailsFor(line.source));
      this.pipeline.process(line, line.source);
    }
    for (const c of batch.checkpoints) this.uncommitted.set(c.key, c);
    if (batch.more) {
      const now = Date.now();
      if (this.uncommittedLines === 0) this.uncommittedSince = now;
      this.uncommittedLines += batch.lines.length;
      if (this.uncommittedLines < BACKLOG_COMMIT_LINES && now - this.uncommittedSince < BACKLOG_COMMIT_MS) {
        // The next batch is read at once; the timer only matters if it never comes (the source stopped).
        this.backlogCommit ??= setTimeout(() => this.commitAndEnforce({}, true), BACKLOG_COMMIT_MS);
        return;
      }
    }
    // The batch that ends a backlog carries the backlog's uncommitted lines: a big commit, for the writer thread too.
    this.commitAndEnforce({}, batch.more || this.uncommittedLines > 0);
  }

  /**
   * Commits what the pipeline decided, with the positions of the lines it came from, enforces it, and
   * tells observers (notifiers, fleet, dashboard) once the commit is done: their bans carry evidence the
   * commit reads back. A decision is enforced once its commit is done, so a crash never loses one, except
   * in a backlog's commits (a burst, catching up), whose decisions go to the firewall at once, while the
   * commit runs: a burst's last commit took longer than its nft call. Those are not lost either: they
   * are made from lines whose positions are in the same commit, so a crash before it has the lines read
   * again, and the drift check at start takes out bans the database does not hold.
   */
  private commitAndEnforce(extra: StateChanges = {}, backlog = false): void {
    const out = this.pipeline.take();
    const checkpoints = [...this.uncommitted.values(), ...(extra.checkpoints ?? [])];
    this.uncommitted.clear();
    this.uncommittedLines = 0;
    if (this.backlogCommit) clearTimeout(this.backlogCommit);
    this.backlogCommit = null;
    const changes: StateChanges = { ...extra, checkpoints, ...stateChangesOf(out) };
    const taken = new Map(this.linesTaken);
    // Early only behind no decision still waiting for its commit: the firewall gets decisions in order.
    const early = backlog && out.decisions.length > 0 && this.enforcedAfterCommit === 0;
    if (early) {
      this.enforcedUncommitted.add(out.decisions);
      this.queue.submit(out.decisions);
    } else if (out.decisions.length > 0) {
      this.enforcedAfterCommit++;
    }
    this.writer.commit(changes, (failure) => {
      if (failure === null) {
        // Not for a kept batch: its lines are not committed until the writer saves it (a later commit says so).
        this.linesCommitted = taken;
        this.lastCommitError = null;
        this.lastLoggedCommitError = null;
      } else {
        // Enforced anyway: protecting the host matters more than the record. On a full disk the writer
        // keeps the batch (positions included) and commits it again; drift checks count its bans.
        if (failure.message !== this.lastLoggedCommitError) this.options.log.error(failure.message);
        this.lastLoggedCommitError = failure.message;
        if (!failure.transient) this.lastCommitError = failure.message;
      }
      if (early) {
        this.enforcedUncommitted.delete(out.decisions);
      } else if (out.decisions.length > 0) {
        this.enforcedAfterCommit--;
        this.queue.submit(out.decisions);
      }
      for (const d of out.decisions) this.logDecision(d);
      for (const d of out.decisions) this.events.emit('decision', d);
    }, backlog);
  }

  private logDecision(d: Decision): void {
    if ((d.action === 'ban' || d.action === 'unban') && this.decisionsLoggable-- <= 0) {
      const key = `${d.jail}\0${d.action}`;
      this.decisionsUnlogged.set(key, (this.decisionsUnlogged.get(key) ?? 0) + 1);
      return;
    }
    if (d.action === 'ban') {
      this.options.log.info(`[${d.jail}] ban ${d.target} for ${d.until === null ? 'ever' : formatDuration(Math.round((d.until - Date.now()) / 1000) * 1000)}: ${d.reason}`);
    } else if (d.action === 'unban') {
      this.options.log.info(`[${d.jail}] unban ${d.target}: ${d.reason}`);
    } else if (d.action === 'siege-on' || d.action === 'siege-off') {
      this.options.log.warn(`[${d.jail}] ${d.action === 'siege-on' ? 'SIEGE: entering siege mode' : 'siege mode left'}: ${d.reason}`);
    }
  }

  private tick(): void {
    this.pipeline.expire(Date.now());
    // During a backlog its own commit comes within BACKLOG_COMMIT_MS and takes the bans that ended too;
    // a commit made here would take the backlog's decisions out of it, to be enforced only once on disk.
    if (this.uncommittedLines === 0) this.commitAndEnforce();
    this.logUnloggedDecisions();
    this.reportSourceProblems();
  }

  private logUnloggedDecisions(): void {
    this.decisionsLoggable = DECISIONS_LOGGED_PER_SECOND;
    for (const [key, n] of this.decisionsUnlogged) {
      const [jail, action] = key.split('\0') as [string, string];
      this.options.log.info(`[${jail}] ${n.toLocaleString('en')} more ${action}s in the last second, not logged one by one (\`portcullis banned\` lists the bans in force)`);
    }
    this.decisionsUnlogged.clear();
  }

  private readonly sourceErrors = new Map<string, string | null>();

  /** Logs a source's problem once when it appears (journalctl missing, unreadable file) and when it clears. */
  private reportSourceProblems(): void {
    for (const { source } of this.sources) {
      const error = source.status().error;
      const before = this.sourceErrors.get(source.id) ?? null;
      if (error === before) continue;
      this.sourceErrors.set(source.id, error);
      if (error) this.options.log.warn(`source ${source.id}: ${error}`);
      else this.options.log.info(`source ${source.id}: working again`);
    }
  }

  /**
   * What the firewall should hold: the database's bans in force, the decisions of batches the database
   * could not take yet (a full disk), and a backlog's decisions enforced before their commit is done.
   */
  private wantedBans(): BanEntry[] {
    const now = Date.now();
    const stored = this.store.bansInForce(now);
    const unsaved = this.writer.unsaved();
    if (this.enforcedUncommitted.size === 0 && unsaved.length === 0) return stored;
    // A drift check must not take out a ban the firewall got before the database, nor put back one just lifted.
    const wanted = new Map(stored.map((b) => [banKey(b), b]));
    for (const batch of unsaved) {
      // In the order the store applies a batch: its unbans, then its bans.
      for (const u of batch.unbans ?? []) wanted.delete(banKey(u));
      for (const b of batch.bans ?? []) {
        if (b.until === null || b.until > now) wanted.set(banKey(b), { target: b.target, jail: b.jail, until: b.until });
      }
    }
    for (const decisions of this.enforcedUncommitted) {
      for (const d of decisions) {
        if (d.action === 'ban') wanted.set(banKey(d), { target: d.target, jail: d.jail, until: d.until });
        else if (d.action === 'unban') wanted.delete(banKey(d));
      }
    }
    return [...wanted.values()];
  }

  /** Manual ban from the CLI/API. */
  ban(targetText: string, jail: string | null, durationMs: number | null | undefined, origin: string): Decision {
    const target = canonicalTarget(targetText);
    if (target === null) throw new PortcullisError(`"${targetText}" is not an IPv4/IPv6 address or CIDR`, 2);
    const jailName = jail ?? this.defaultManualJail();
    const cfg = this.pipeline.jails.get(jailName)?.config;
    if (!cfg) throw new PortcullisError(`no enabled jail named "${jailName}"; enabled jails: ${[...this.pipeline.jails.keys()].join(', ') || 'none'}`, 2);
    const now = Date.now();
    const bantime = durationMs === undefined ? cfg.bantime : durationMs;
    const d = this.pipeline.manualBan(target, jailName, bantime === null ? null : now + bantime, `manual ban by ${origin}`, origin, now);
    this.commitAndEnforce();
    return d;
  }

  /** Manual unban; `target` null lifts every ban. */
  unban(targetText: string | null, jail: string | null, origin: string): Decision[] {
    if (targetText === null) this.writer.flush();
    const targets = targetText === null ? this.store.activeTargets() : [canonicalTarget(targetText)];
    if (targets.includes(null)) throw new PortcullisError(`"${targetText}" is not an IPv4/IPv6 address or CIDR`, 2);
    const made: Decision[] = [];
    for (const t of targets) made.push(...this.pipeline.manualUnban(t!, jail, `manual unban by ${origin}`, origin));
    this.commitAndEnforce();
    return made;
  }

  private defaultManualJail(): string {
    const first = this.pipeline.jails.keys().next();
    if (first.done) throw new PortcullisError('no jail is enabled, so there is no firewall set to ban into; enable a jail or pass --jail', 2);
    return first.value;
  }

  /** Why an address is banned or allowed right now: bans, history, pending failures, allowlist entries. */
  explain(addressText: string): Explanation {
    const address = canonicalTarget(addressText);
    if (address === null) throw new PortcullisError(`"${addressText}" is not an IPv4/IPv6 address or CIDR`, 2);
    this.writer.flush();
    const history = this.store.history({ target: address, limit: 20 });
    // A prefix ban (netblock escalation, or a manual CIDR ban) that covers the address bans it too.
    const net = parseNetwork(address)!;
    const covering = this.store.activePrefixBans().filter((b) => b.target !== address && networkCovers(parseNetwork(b.target)!, net));
    const jails = [...this.pipeline.jails.values()].map((j) => ({
      jail: j.config.name,
      allowlistedBy: j.allowlist.match(address),
      failing: j.counter.failuresOf(address),
      maxretry: j.config.maxretry,
      banned: j.active.has(address),
    }));
    return {
      address,
      bans: [...history.filter((b) => b.active), ...covering].map(banJson),
      history: history.filter((b) => !b.active).map(banJson),
      jails,
      banCount: this.store.banCount(address),
      defences: this.pipeline.explainDefences(address),
    };
  }

  status(): StatusReport {
    const { totals, active } = this.storeCounts.get('bans by jail', () => ({ totals: this.store.totalBansByJail(), active: this.store.activeBansByJail() }));
    const jails: JailStatus[] = [];
    for (const [name, j] of this.pipeline.jails) {
      const c = j.config;
      jails.push({
        name, filters: c.filters, maxretry: c.maxretry, findtime: formatDuration(c.findtime), bantime: formatDuration(c.bantime),
        ports: c.ports, protocol: c.protocol,
        failing: this.pipeline.failing(name), failuresTotal: j.stats.failures, ignoredTotal: j.stats.ignored,
        bannedNow: active.get(name) ?? 0, bannedTotal: totals.get(name) ?? 0,
        sources: this.sources.filter((s) => s.jails.includes(name)).map((s) => this.statusOf(s.source)),
        defences: this.pipeline.defenceStatus(name),
      });
    }
    const errors = [...this.errors];
    const waiting = this.writer.failing();
    if (waiting) errors.push(waiting);
    if (this.lastCommitError) errors.push(this.lastCommitError);
    for (const e of this.queue.health()) if (e.lastError) errors.push(`${e.name}: ${e.lastError}`);
    return {
      node: this.node, pid: process.pid, startedAt: new Date(this.startedAt).toISOString(), config: this.config.files, stateDb: this.store.path,
      linesRead: this.pipeline.linesProcessed, linesMatched: this.pipeline.linesMatched, jails, enforcers: this.queue.health(),
      health: Object.fromEntries(this.pipeline.health), errors,
      ...(this.fleet ? { fleet: this.fleet.status() } : {}),
      allowlist: this.kernel.status(),
    };
  }

  /** Where each source stands (positions, lag, lines read), without the ban tables: cheap enough to poll often. */
  sourceStatus(): SourceStatus[] {
    return this.sources.map(({ source }) => this.statusOf(source));
  }

  private statusOf(source: Source): SourceStatus {
    return { ...source.status(), linesCommitted: this.linesCommitted.get(source.id) ?? 0 };
  }

  /** Packets and bytes the firewall stopped per jail (enforcers that count: nftables). */
  enforcerCounters(): ReturnType<EnforcementQueue['counters']> {
    return this.queue.counters();
  }

  /**
   * Commits and enforces decisions made elsewhere (another node of the fleet, fleet-wide
   * counting) like local ones, but marked so that `isRemote` is true for them and the fleet
   * does not publish them back. `checkpoint` (the fleet's stream position) is committed with them.
   */
  applyRemote(decisions: readonly Decision[], checkpoint?: Checkpoint): Decision[] {
    // What local detection decided before stays local (and is published as such).
    this.commitAndEnforce();
    const made: Decision[] = [];
    for (const d of decisions) {
      if (d.action === 'ban') {
        const ban = this.pipeline.manualBan(d.target, d.jail, d.until, d.reason, d.origin, d.time);
        if (d.evidence) ban.evidence = d.evidence;
        made.push(ban);
      } else if (d.action === 'unban') {
        made.push(...this.pipeline.manualUnban(d.target, d.jail, d.reason, d.origin, d.time));
      }
    }
    for (const d of made) this.remoteDecisions.add(d);
    this.commitAndEnforce(checkpoint ? { checkpoints: [checkpoint] } : {});
    return made;
  }

  isRemote(decision: Decision): boolean {
    return this.remoteDecisions.has(decision);
  }

  /** A ban the kernel made by itself (connection limits): recorded, enforced (flush), notified like any other. */
  private recordKernelBan(ban: KernelBan, reason: string): void {
    this.pipeline.manualBan(ban.target, ban.jail, ban.until, reason, 'kernel');
    this.commitAndEnforce();
  }

  /** Resolves when every decision made so far is committed and has reached the enforcers (tests, shutdown). */
  async settled(): Promise<void> {
    await this.writer.idle();
    await this.queue.idle();
  }

  async stop(): Promise<void> {
    this.events.emit('stopping');
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const { source } of this.sources) await source.stop();
    await this.fleet?.stop();
    await this.kernel.stop();
    this.commitAndEnforce();
    await this.writer.close();
    this.logUnloggedDecisions();
    await this.queue.stop({ teardown: this.options.flushOnExit ?? false });
    this.store.close();
    this.options.log.info('stopped');
  }
}
