import { formatNetwork } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';
import { CommandFailedError, ExecRunner, type CommandRunner } from './command-runner.js';
import {
  banKey, banNetwork, checkJailName, reconcilePlan, secondsLeft,
  type BanEntry, type Enforcer, type EnforcerChanges, type JailFirewallSpec, type ReconcileResult,
} from './enforcer.js';

/**
 * pf enforcer (OpenBSD, FreeBSD): one table per jail, `portcullis_<jail>`.
 *
 * Portcullis only fills tables; the rules that use them belong in pf.conf, where
 * the admin keeps control of rule order (`portcullis print-pf-rules` prints them,
 * see `pfRules`). pf tables hold no per-entry timeout, so ban ends are kept here
 * in memory and `expire()` removes what is due; after a restart the daemon's
 * reconcile brings back the end times from the database. `list()` therefore
 * reports `until` only for entries this process added.
 *
 * Adds and deletes are batched: one `pfctl -T add`/`-T delete` per jail and batch,
 * addresses as arguments (pfctl applies each command as one table transaction).
 * `flush` (any scope) kills the offender's states with `pfctl -k ADDR`: pf
 * cannot narrow that to the jail's ports, so `rule` behaves like `global`.
 */

export class PfEnforcerError extends PortcullisError {
  override name = 'PfEnforcerError';
}

export interface PfEnforcerOptions {
  runner?: CommandRunner;
  now?: () => number;
  /** Most addresses per pfctl invocation (argument lists are bounded by ARG_MAX). */
  batchSize?: number;
}

export function pfTableName(jail: string): string {
  return `portcullis_${jail}`;
}

export class PfEnforcer implements Enforcer {
  readonly name = 'pf';
  private readonly runner: CommandRunner;
  private readonly now: () => number;
  private readonly batchSize: number;
  private readonly jails = new Map<string, JailFirewallSpec>();
  /** End time of each ban this process added (pf tables cannot hold one). */
  private readonly untils = new Map<string, number | null>();

  constructor(options: PfEnforcerOptions = {}) {
    this.runner = options.runner ?? new ExecRunner();
    this.now = options.now ?? Date.now;
    this.batchSize = options.batchSize ?? 1000;
  }

  /** Tables are declared `persist` in pf.conf; `pfctl -T show` on each checks they are there. */
  async setup(jails: readonly JailFirewallSpec[]): Promise<void> {
    for (const spec of jails) checkJailName(spec.jail, 31 - 'portcullis_'.length);
    for (const spec of jails) {
      try {
        await this.runner.run('pfctl', ['-t', pfTableName(spec.jail), '-T', 'show']);
      } catch (err) {
        if (!(err instanceof CommandFailedError)) throw err;
        throw new PfEnforcerError(
          `pf table <${pfTableName(spec.jail)}> is missing: add the output of \`portcullis print-pf-rules\` to /etc/pf.conf and run \`pfctl -f /etc/pf.conf\` (${err.stderr.trim()})`,
        );
      }
    }
    this.jails.clear();
    for (const spec of jails) this.jails.set(spec.jail, spec);
  }

  async apply(changes: EnforcerChanges): Promise<void> {
    const now = this.now();
    const banned = new Set(changes.ban.map(banKey));
    const unbans = changes.unban.filter((u) => !banned.has(banKey(u)));
    const bans = changes.ban.filter((b) => secondsLeft(b.until, now) !== 0);
    for (const [jail, targets] of byJail(unbans, (j) => this.spec(j))) await this.pfctl(jail, 'delete', targets);
    for (const [jail, targets] of byJail(bans, (j) => this.spec(j))) await this.pfctl(jail, 'add', targets);
    // pf's own flush: kill the states of every newly banned source in jails that ask for it.
    for (const b of bans) {
      const flush = this.spec(b.jail).flush;
      if (flush && flush !== 'none') await this.runner.run('pfctl', ['-k', formatNetwork(banNetwork(b))]);
    }
    for (const u of unbans) this.untils.delete(banKey(u));
    for (const b of bans) this.untils.set(banKey({ jail: b.jail, target: formatNetwork(banNetwork(b)) }), b.until);
  }

  async list(): Promise<BanEntry[]> {
    const entries: BanEntry[] = [];
    for (const jail of this.jails.keys()) {
      const { stdout } = await this.runner.run('pfctl', ['-t', pfTableName(jail), '-T', 'show']);
      for (const line of stdout.split('\n')) {
        const text = line.trim();
        if (text === '') continue;
        const target = formatNetwork(banNetwork({ target: text, jail }));
        entries.push({ target, jail, until: this.untils.get(banKey({ jail, target })) ?? null });
      }
    }
    return entries;
  }

  async reconcile(wanted: readonly BanEntry[]): Promise<ReconcileResult> {
    const now = this.now();
    const live = wanted.filter((w) => this.jails.has(w.jail) && secondsLeft(w.until, now) !== 0);
    const plan = reconcilePlan(await this.list(), live);
    await this.apply(plan);
    for (const w of live) this.untils.set(banKey({ jail: w.jail, target: formatNetwork(banNetwork(w)) }), w.until);
    return { added: plan.ban.length, removed: plan.unban.length };
  }

  /** Removes the bans whose end has come (pf cannot time entries out by itself). */
  async expire(): Promise<number> {
    const now = this.now();
    const due: BanEntry[] = [];
    for (const [key, until] of this.untils) {
      if (until === null || until > now) continue;
      const [jail, target] = key.split('\u0000') as [string, string];
      due.push({ jail, target, until });
    }
    if (due.length > 0) await this.apply({ ban: [], unban: due });
    return due.length;
  }

  /** Empties our tables; the tables themselves and their rules belong to pf.conf. */
  async teardown(): Promise<void> {
    for (const jail of this.jails.keys()) await this.runner.run('pfctl', ['-t', pfTableName(jail), '-T', 'flush']);
    this.untils.clear();
  }

  private spec(jail: string): JailFirewallSpec {
    const spec = this.jails.get(jail);
    if (!spec) throw new PfEnforcerError(`jail ${jail} has no pf table: it is not in the enforcer's setup (is the jail enabled?)`);
    return spec;
  }

  private async pfctl(jail: string, verb: 'add' | 'delete', targets: string[]): Promise<void> {
    for (let i = 0; i < targets.length; i += this.batchSize) {
      await this.runner.run('pfctl', ['-t', pfTableName(jail), '-T', verb, ...targets.slice(i, i + this.batchSize)]);
    }
  }
}

function byJail(entries: readonly BanEntry[], check: (jail: string) => unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of entries) {
    check(e.jail);
    const target = formatNetwork(banNetwork(e));
    out.set(e.jail, [...(out.get(e.jail) ?? []), target]);
  }
  return out;
}

/**
 * The pf.conf snippet for `portcullis print-pf-rules`: a persistent table per
 * jail and a `block quick` rule per jail (ports and protocol respected), to be
 * placed early in the ruleset. `throttle` becomes a pass rule with
 * `max-src-conn-rate` for members of the table.
 */
export function pfRules(jails: readonly JailFirewallSpec[]): string {
  const lines = ['# Portcullis: tables are filled by the daemon (pfctl -t portcullis_<jail> -T add).', '# Put these lines before your pass rules.'];
  for (const spec of jails) lines.push(`table <${pfTableName(spec.jail)}> persist`);
  for (const spec of jails) {
    const table = `<${pfTableName(spec.jail)}>`;
    const action = spec.verdict === 'reject' ? 'block return' : 'block drop';
    const protos = spec.protocol === 'all' ? (spec.ports ? 'proto { tcp, udp } ' : '') : `proto ${spec.protocol} `;
    const ports = spec.ports && spec.ports.length > 0 ? ` port ${spec.ports.length === 1 ? spec.ports[0] : `{ ${spec.ports.join(', ')} }`}` : '';
    if (spec.verdict === 'throttle') {
      const rate = /^(\d+)\/(second|minute|hour|day|s|m|h|d)$/.exec(spec.throttleRate ?? '');
      if (!rate) throw new PfEnforcerError(`jail ${spec.jail}: throttle rate ${JSON.stringify(spec.throttleRate ?? '')} is not a rate: write it as N/second, N/minute, N/hour or N/day`);
      const seconds = { s: 1, m: 60, h: 3600, d: 86400 }[rate[2]![0] as 's' | 'm' | 'h' | 'd'];
      lines.push(`pass in quick ${protos}from ${table} to any${ports} keep state (max-src-conn-rate ${rate[1]}/${seconds})`);
      continue;
    }
    lines.push(`${action} in quick ${protos}from ${table} to any${ports}`);
  }
  return lines.join('\n') + '\n';
}
