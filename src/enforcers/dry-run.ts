import { formatNetwork } from '../core/address.js';
import {
  banKey, banNetwork, reconcilePlan, secondsLeft,
  type BanEntry, type Enforcer, type EnforcerChanges, type JailFirewallSpec, type ReconcileResult,
} from './enforcer.js';

/**
 * Changes nothing: says what it would do and remembers it, so `list` and
 * `reconcile` behave like a real firewall (used by `replay`, by
 * `enforcer: dry-run`, and when trying a configuration on a live host).
 */

/** Bans of one batch logged one by one; a larger batch (a flood) is logged as these and a count. */
const BANS_LOGGED_PER_BATCH = 10;

export interface DryRunEnforcerOptions {
  /** Where the "would …" lines go; default stderr. */
  log?: (line: string) => void;
  now?: () => number;
}

export class DryRunEnforcer implements Enforcer {
  readonly name = 'dry-run';
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private readonly bans = new Map<string, BanEntry>();

  constructor(options: DryRunEnforcerOptions = {}) {
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.now = options.now ?? Date.now;
  }

  async setup(jails: readonly JailFirewallSpec[]): Promise<void> {
    for (const j of jails) {
      const ports = j.ports && j.ports.length > 0 ? `port ${j.ports.join(',')}` : 'all ports';
      this.log(`dry-run: would set up jail ${j.jail}: ${j.verdict} ${j.protocol} ${ports}${j.flush && j.flush !== 'none' ? `, flush ${j.flush}` : ''}`);
    }
  }

  async apply(changes: EnforcerChanges): Promise<void> {
    const now = this.now();
    const banned = new Set(changes.ban.map(banKey));
    for (const u of changes.unban) {
      if (banned.has(banKey(u))) continue;
      const target = formatNetwork(banNetwork(u));
      this.log(`dry-run: would unban ${target} in jail ${u.jail}`);
      this.bans.delete(banKey({ jail: u.jail, target }));
    }
    let logged = 0;
    for (const b of changes.ban) {
      if (secondsLeft(b.until, now) === 0) continue;
      const entry = { ...b, target: formatNetwork(banNetwork(b)) };
      if (logged++ < BANS_LOGGED_PER_BATCH) this.log(`dry-run: would ban ${entry.target} in jail ${b.jail} ${b.until === null ? 'permanently' : `until ${new Date(b.until).toISOString()}`}`);
      this.bans.set(banKey(entry), entry);
    }
    if (logged > BANS_LOGGED_PER_BATCH) this.log(`dry-run: would ban ${(logged - BANS_LOGGED_PER_BATCH).toLocaleString('en')} more addresses in this batch (not logged one by one)`);
  }

  async list(): Promise<BanEntry[]> {
    const now = this.now();
    for (const [key, entry] of this.bans) if (entry.until !== null && entry.until <= now) this.bans.delete(key);
    return [...this.bans.values()];
  }

  async reconcile(wanted: readonly BanEntry[]): Promise<ReconcileResult> {
    const plan = reconcilePlan(await this.list(), wanted);
    await this.apply(plan);
    return { added: plan.ban.length, removed: plan.unban.length };
  }

  async teardown(): Promise<void> {
    if (this.bans.size > 0) this.log(`dry-run: would remove ${this.bans.size} ban(s) and every firewall object`);
    this.bans.clear();
  }
}
