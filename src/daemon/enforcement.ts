import type { Decision } from '../core/types.js';
import type { Logger } from '../core/log.js';
import type { BanEntry, Enforcer, JailCounters, JailFirewallSpec } from '../enforcers/enforcer.js';

/**
 * Hands decisions to the enforcers in batches, one worker per enforcer, so
 * that bans arriving together reach the kernel as one transaction. Decisions
 * arrive once committed, or a backlog's while their commit runs; when an enforcer fails
 * (nft missing, kernel error) the changes stay queued, the failure is shown
 * in `status`, and the worker retries with backoff, re-synchronising the
 * firewall from the database and the decisions not committed yet.
 */

export interface EnforcerHealth {
  name: string;
  ready: boolean;
  pending: number;
  applied: number;
  /** Failures since start (each retry that fails counts). */
  errors: number;
  lastError: string | null;
  lastErrorAt: number | null;
}

interface Slot {
  enforcer: Enforcer;
  jails: JailFirewallSpec[];
  pending: PendingChanges;
  ready: boolean;
  busy: boolean;
  applied: number;
  errors: number;
  lastError: string | null;
  lastErrorAt: number | null;
  retryDelay: number;
  timer: NodeJS.Timeout | null;
  /** A drift check is under way (with a million bans it lasts longer than the interval between checks). */
  reconciling: boolean;
  /**
   * During a drift check, the changes applied meanwhile: the check compares the firewall with the bans
   * wanted when it began, so it takes out a ban applied after that. They are applied again after it.
   */
  appliedDuringCheck: PendingChanges | null;
  /** When the last drift check ended and how long it took (ms). */
  lastReconcileEnd: number;
  lastReconcileMs: number;
  /** The last read of the enforcer's counters, and the read under way. */
  counters: CounterSample | null;
  countersReading: Promise<CounterSample | null> | null;
}

interface PendingChange {
  action: 'ban' | 'unban';
  entry: BanEntry;
}

/**
 * The latest wanted change per jail and target (a ban then an unban of the same target cancel out).
 * Two lookups by strings whose hashes V8 keeps: a `jail|target` key was built and hashed for every ban
 * (4 % of the pipeline's thread in a 100,000-ban burst).
 */
class PendingChanges {
  private readonly byJail = new Map<string, Map<string, PendingChange>>();
  size = 0;

  set(change: PendingChange): void {
    let targets = this.byJail.get(change.entry.jail);
    if (targets === undefined) this.byJail.set(change.entry.jail, (targets = new Map()));
    const before = targets.size;
    targets.set(change.entry.target, change);
    this.size += targets.size - before;
  }

  /** Adds every change of `newer`, over what this holds. */
  keepNewer(newer: PendingChanges): void {
    for (const targets of newer.byJail.values()) for (const change of targets.values()) this.set(change);
  }

  /** Adds the changes of `older` that this holds nothing newer for. */
  keepOlder(older: PendingChanges): void {
    for (const targets of older.byJail.values()) {
      for (const change of targets.values()) if (this.byJail.get(change.entry.jail)?.has(change.entry.target) !== true) this.set(change);
    }
  }

  split(): { ban: BanEntry[]; unban: BanEntry[] } {
    const ban: BanEntry[] = [];
    const unban: BanEntry[] = [];
    for (const targets of this.byJail.values()) for (const c of targets.values()) (c.action === 'ban' ? ban : unban).push(c.entry);
    return { ban, unban };
  }
}

interface CounterSample {
  counters: JailCounters[];
  /** When the read ended (ms). */
  at: number;
  tookMs: number;
}

/** Counters per jail, from the enforcer's read at `sampledAt` (ms): reads are paced, so it may be minutes old. */
export type SampledCounters = JailCounters & { enforcer: string; sampledAt: number };

/**
 * Drift checks list the whole firewall: 35 s of nft CPU time for a million
 * elements. After a check that took T, the next waits at least this many T, so
 * they never take more than a small share of the machine. Reading the counters
 * costs as much with nft 1.0.6, which fetches every set's elements for any
 * listing (`list counters` took 63 s at a million bans here): it is paced alike.
 */
const RECONCILE_PAUSE_FACTOR = 20;
/** Drift checks that take at least this long are logged. */
const SLOW_RECONCILE_MS = 1000;

export class EnforcementQueue {
  private readonly slots: Slot[] = [];
  private readonly byJail = new Map<string, Slot[]>();
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    assignments: ReadonlyArray<{ enforcer: Enforcer; jails: JailFirewallSpec[] }>,
    private readonly wanted: () => BanEntry[],
    private readonly log: Logger,
  ) {
    for (const a of assignments) {
      const slot: Slot = { enforcer: a.enforcer, jails: a.jails, pending: new PendingChanges(), ready: false, busy: false, applied: 0, errors: 0, lastError: null, lastErrorAt: null, retryDelay: 1000, timer: null, reconciling: false, appliedDuringCheck: null, lastReconcileEnd: 0, lastReconcileMs: 0, counters: null, countersReading: null };
      this.slots.push(slot);
      for (const j of a.jails) {
        const list = this.byJail.get(j.jail) ?? [];
        list.push(slot);
        this.byJail.set(j.jail, list);
      }
    }
  }

  /** Sets up every enforcer and loads the database's active bans into it. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.prepare(s)));
  }

  private async prepare(slot: Slot): Promise<void> {
    try {
      await slot.enforcer.setup(slot.jails);
      const jails = new Set(slot.jails.map((j) => j.jail));
      const wanted = this.wanted().filter((b) => jails.has(b.jail));
      const result = slot.enforcer.load ? await slot.enforcer.load(wanted) : await slot.enforcer.reconcile(wanted);
      slot.ready = true;
      slot.lastError = null;
      slot.retryDelay = 1000;
      if (result.added || result.removed) {
        this.log.info(`${slot.enforcer.name}: ${result.reloaded ? `loaded ${result.added} ban(s) from the database` : `reconciled with the database (${result.added} added, ${result.removed} removed)`}`);
      }
      this.kick(slot);
    } catch (e) {
      this.fail(slot, e as Error);
    }
  }

  submit(decisions: readonly Decision[]): void {
    for (const d of decisions) {
      if (d.action !== 'ban' && d.action !== 'unban') continue;
      const entry = { target: d.target, jail: d.jail, until: d.until };
      for (const slot of this.byJail.get(d.jail) ?? []) slot.pending.set({ action: d.action, entry });
    }
    for (const slot of this.slots) this.kick(slot);
  }

  private kick(slot: Slot): void {
    if (this.stopped || !slot.ready || slot.busy || slot.timer || slot.pending.size === 0) {
      this.notifyIdle();
      return;
    }
    slot.busy = true;
    // Take everything queued so far as one batch; more decisions queue up while it runs.
    const batch = slot.pending;
    slot.pending = new PendingChanges();
    if (slot.appliedDuringCheck !== null) slot.appliedDuringCheck.keepNewer(batch);
    const { ban, unban } = batch.split();
    slot.enforcer.apply({ ban, unban }).then(
      () => {
        slot.busy = false;
        slot.applied += ban.length + unban.length;
        if (slot.lastError) this.log.info(`${slot.enforcer.name}: working again`);
        slot.lastError = null;
        slot.retryDelay = 1000;
        this.kick(slot);
      },
      (e: Error) => {
        slot.busy = false;
        // Put the batch back under anything newer that arrived meanwhile.
        slot.pending.keepOlder(batch);
        this.fail(slot, e);
      },
    );
  }

  private fail(slot: Slot, e: Error): void {
    slot.ready = false;
    slot.errors++;
    slot.lastError = e.message;
    slot.lastErrorAt = Date.now();
    this.log.error(`${slot.enforcer.name}: ${e.message} — bans are kept in the database; retrying in ${Math.round(slot.retryDelay / 1000)}s`);
    if (this.stopped) return this.notifyIdle();
    slot.timer = setTimeout(() => {
      slot.timer = null;
      // After a failure the firewall's state is unknown: set up and reconcile from the database again.
      void this.prepare(slot);
    }, slot.retryDelay);
    slot.timer.unref();
    slot.retryDelay = Math.min(slot.retryDelay * 2, 30_000);
    this.notifyIdle();
  }

  /** Re-synchronises every ready enforcer with the database (drift repair). */
  async reconcileAll(): Promise<void> {
    for (const slot of this.slots) {
      if (!slot.ready || slot.busy || slot.reconciling) continue;
      if (Date.now() - slot.lastReconcileEnd < slot.lastReconcileMs * RECONCILE_PAUSE_FACTOR) continue;
      const jails = new Set(slot.jails.map((j) => j.jail));
      const started = Date.now();
      const first = slot.lastReconcileEnd === 0;
      slot.reconciling = true;
      slot.appliedDuringCheck = new PendingChanges();
      try {
        const r = await slot.enforcer.reconcile(this.wanted().filter((b) => jails.has(b.jail)));
        if (r.added || r.removed) this.log.warn(`${slot.enforcer.name}: firewall had drifted from the database; restored (${r.added} re-added, ${r.removed} removed)`);
      } catch (e) {
        this.fail(slot, e as Error);
      } finally {
        slot.reconciling = false;
        // Again whatever was applied while the check ran, unless something newer waits.
        const again = slot.appliedDuringCheck;
        slot.appliedDuringCheck = null;
        if (again !== null && again.size > 0) {
          slot.pending.keepOlder(again);
          this.kick(slot);
        }
        slot.lastReconcileEnd = Date.now();
        slot.lastReconcileMs = slot.lastReconcileEnd - started;
        // A long check is CPU the admin will see in top: say what it was and when the next comes. The first
        // after start is said in any case: it is when the firewall has been checked against the database.
        const took = `${slot.enforcer.name}: drift check took ${(slot.lastReconcileMs / 1000).toFixed(1)} s`;
        if (slot.lastReconcileMs >= SLOW_RECONCILE_MS) {
          this.log.info(`${took}; the next in ${Math.round((slot.lastReconcileMs * RECONCILE_PAUSE_FACTOR) / 60_000)} min or later`);
        } else if (first) {
          this.log.info(`${took} (the first since start)`);
        }
      }
    }
  }

  /** Resolves when every queue is empty or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.slots.every((s) => !s.busy && (s.pending.size === 0 || !s.ready));
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  health(): EnforcerHealth[] {
    return this.slots.map((s) => ({ name: s.enforcer.name, ready: s.ready, pending: s.pending.size, applied: s.applied, errors: s.errors, lastError: s.lastError, lastErrorAt: s.lastErrorAt }));
  }

  /**
   * Traffic stopped per jail, from the enforcers that count it (nftables); one that never answered is
   * left out. Callers share a read under way, and after a read that took T the last one is reused for
   * RECONCILE_PAUSE_FACTOR × T, and while a drift check lists the firewall anyway: the dashboard asks
   * every 15 s and Prometheus at each scrape, which at a million bans kept a core busy.
   */
  async counters(): Promise<SampledCounters[]> {
    const out: SampledCounters[] = [];
    for (const s of this.slots) {
      if (!s.ready || !s.enforcer.counters) continue;
      const sample = await this.countersOf(s, s.enforcer.counters.bind(s.enforcer));
      for (const c of sample?.counters ?? []) out.push({ ...c, enforcer: s.enforcer.name, sampledAt: sample!.at });
    }
    return out;
  }

  private countersOf(slot: Slot, read: () => Promise<JailCounters[]>): Promise<CounterSample | null> {
    if (slot.countersReading !== null) return slot.countersReading;
    const last = slot.counters;
    if (last !== null && (slot.reconciling || Date.now() - last.at < last.tookMs * RECONCILE_PAUSE_FACTOR)) return Promise.resolve(last);
    const started = Date.now();
    const reading = read().then(
      (counters): CounterSample => (slot.counters = { counters, at: Date.now(), tookMs: Date.now() - started }),
      (e: Error) => {
        this.log.debug(`${slot.enforcer.name}: cannot read counters: ${e.message}`);
        return slot.counters;
      },
    );
    slot.countersReading = reading;
    void reading.finally(() => {
      slot.countersReading = null;
    });
    return reading;
  }

  async stop(options: { teardown: boolean }): Promise<void> {
    await this.idle();
    this.stopped = true;
    for (const s of this.slots) if (s.timer) clearTimeout(s.timer);
    if (options.teardown) for (const s of this.slots) await s.enforcer.teardown().catch((e: Error) => this.log.error(`${s.enforcer.name}: teardown failed: ${e.message}`));
    for (const s of this.slots) s.enforcer.close?.();
  }
}
