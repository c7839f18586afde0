import { formatNetwork, type Family } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';
import { CommandFailedError, ExecRunner, inNetns, type CommandRunner } from './command-runner.js';
import {
  banKey, banNetwork, checkJailName, reconcilePlan, secondsLeft,
  type BanEntry, type Enforcer, type EnforcerChanges, type JailCounters, type JailFirewallSpec, type ReconcileResult,
} from './enforcer.js';
import { ConnectionFlusher, flushBanned } from './flush.js';

/**
 * iptables + ipset enforcer, for hosts without nftables.
 *
 * Per jail J: ipsets `portcullis_J_v4` and `portcullis_J_v6` (`hash:net`, so an
 * address and a CIDR are each one entry, nested networks allowed; `timeout 0`
 * default so permanent bans are possible, per-entry timeouts for the rest).
 * Rules live in our own chain `PORTCULLIS` (iptables and ip6tables, table
 * `filter`) jumped to from the top of INPUT (and FORWARD when a jail asks):
 * one rule per jail and family (two when a jail covers both tcp and udp on
 * given ports), never one per address. The chain is rewritten atomically with
 * `iptables-restore --noflush`; bans go in with one `ipset -exist restore` per
 * batch (`-exist` makes re-adding refresh the timeout and deleting an absent
 * entry harmless). ipset applies a restore line by line, so unlike nftables a
 * batch is not all-or-nothing at the kernel level.
 */

const CHAIN = 'PORTCULLIS';
const PREFIX = 'portcullis_';
const IPSET_NAME_MAX = 31;
const MAX_ELEMENTS = 1_048_576;

export class IpsetEnforcerError extends PortcullisError {
  override name = 'IpsetEnforcerError';
}

export interface IpsetEnforcerOptions {
  /** Run every command inside this network namespace (`ip netns exec NAME`). */
  netns?: string;
  runner?: CommandRunner;
  flusher?: ConnectionFlusher;
  onWarning?: (message: string) => void;
  now?: () => number;
}

export class IpsetEnforcer implements Enforcer {
  readonly name = 'iptables';
  private readonly runner: CommandRunner;
  private readonly flusher: ConnectionFlusher;
  private readonly warn: (message: string) => void;
  private readonly now: () => number;
  private readonly jails = new Map<string, JailFirewallSpec>();

  constructor(options: IpsetEnforcerOptions = {}) {
    const base = options.runner ?? new ExecRunner();
    this.runner = inNetns(base, options.netns);
    this.flusher = options.flusher ?? new ConnectionFlusher({ runner: base, netns: options.netns });
    this.warn = options.onWarning ?? ((m) => process.stderr.write(`portcullis: ${m}\n`));
    this.now = options.now ?? Date.now;
  }

  async setup(jails: readonly JailFirewallSpec[]): Promise<void> {
    for (const spec of jails) validateSpec(spec);
    const create = jails.flatMap((j) =>
      ([4, 6] as const).map((f) => `create ${ipsetName(j.jail, f)} hash:net family ${f === 4 ? 'inet' : 'inet6'} timeout 0 maxelem ${MAX_ELEMENTS}`),
    );
    if (create.length > 0) await this.runner.run('ipset', ['-exist', 'restore'], { input: create.join('\n') + '\n' });
    const forward = jails.some((j) => j.forward);
    for (const family of [4, 6] as const) {
      const tool = family === 4 ? 'iptables' : 'ip6tables';
      await this.runner.run(`${tool}-restore`, ['--noflush'], { input: chainScript(jails, family) });
      for (const hook of ['INPUT', 'FORWARD']) {
        const jumps = await this.hasJump(tool, hook);
        if ((hook === 'INPUT' || forward) && !jumps) await this.runner.run(tool, ['-w', '-I', hook, '1', '-j', CHAIN]);
        if (hook === 'FORWARD' && !forward && jumps) await this.removeJumps(tool, hook);
      }
    }
    const wanted = new Set(jails.flatMap((j) => [ipsetName(j.jail, 4), ipsetName(j.jail, 6)]));
    for (const name of await this.ourSets()) if (!wanted.has(name)) await this.runner.run('ipset', ['destroy', name]);
    this.jails.clear();
    for (const spec of jails) this.jails.set(spec.jail, spec);
  }

  async apply(changes: EnforcerChanges): Promise<void> {
    const now = this.now();
    const banned = new Set(changes.ban.map(banKey));
    const lines: string[] = [];
    for (const u of changes.unban) {
      if (banned.has(banKey(u))) continue;
      const net = banNetwork(u);
      this.spec(u.jail);
      lines.push(`del ${ipsetName(u.jail, net.family)} ${formatNetwork(net)}`);
    }
    const bans = changes.ban.filter((b) => secondsLeft(b.until, now) !== 0);
    for (const b of bans) {
      const net = banNetwork(b);
      this.spec(b.jail);
      lines.push(`add ${ipsetName(b.jail, net.family)} ${formatNetwork(net)} timeout ${secondsLeft(b.until, now) ?? 0}`);
    }
    if (lines.length === 0) return;
    await this.runner.run('ipset', ['-exist', 'restore'], { input: lines.join('\n') + '\n' });
    await flushBanned(this.flusher, bans, (jail) => this.spec(jail), this.warn);
  }

  async list(): Promise<BanEntry[]> {
    const { stdout } = await this.runner.run('ipset', ['save']);
    const now = this.now();
    const entries: BanEntry[] = [];
    for (const line of stdout.split('\n')) {
      const m = /^add (\S+) (\S+)(?: timeout (\d+))?/.exec(line);
      const owner = m && /^portcullis_(.+)_v[46]$/.exec(m[1]!);
      if (!m || !owner) continue;
      const seconds = m[3] === undefined ? 0 : Number(m[3]);
      entries.push({ target: formatNetwork(banNetwork({ target: m[2]!, jail: owner[1]! })), jail: owner[1]!, until: seconds === 0 ? null : now + seconds * 1000 });
    }
    return entries;
  }

  async reconcile(wanted: readonly BanEntry[]): Promise<ReconcileResult> {
    const now = this.now();
    const live = wanted.filter((w) => {
      if (!this.jails.has(w.jail)) {
        this.warn(`not enforcing ${w.target}: jail ${w.jail} has no ipset (not set up)`);
        return false;
      }
      return secondsLeft(w.until, now) !== 0;
    });
    // Entries alone block nothing: when our chain, its jump or a set was removed by hand, rebuild first.
    const problem = await this.structureProblem();
    if (problem !== null) {
      this.warn(`the iptables/ipset objects of Portcullis were changed outside it (${problem}): rebuilding them`);
      await this.setup([...this.jails.values()]);
    }
    const plan = reconcilePlan(await this.list(), live);
    await this.apply(plan);
    return { added: plan.ban.length, removed: plan.unban.length };
  }

  /** What is missing compared with what `setup` builds (a set, the chain's rules, a jump), or null. */
  private async structureProblem(): Promise<string | null> {
    const jails = [...this.jails.values()];
    if (jails.length === 0) return null;
    const sets = new Set(await this.ourSets());
    for (const j of jails) for (const f of [4, 6] as const) if (!sets.has(ipsetName(j.jail, f))) return `ipset ${ipsetName(j.jail, f)} missing`;
    for (const family of [4, 6] as const) {
      const tool = family === 4 ? 'iptables' : 'ip6tables';
      const { stdout } = await this.runner.run(tool, ['-w', '-S', CHAIN], { okExitCodes: [0, 1] });
      const have = stdout.split('\n').filter((l) => l.startsWith(`-A ${CHAIN} `)).length;
      const want = jails.reduce((n, j) => n + jailRules(j, family).length, 0);
      if (have !== want) return `${tool} chain ${CHAIN} has ${have} of its ${want} rules`;
      for (const hook of jails.some((j) => j.forward) ? ['INPUT', 'FORWARD'] : ['INPUT']) {
        if (!(await this.hasJump(tool, hook))) return `${tool} ${hook} does not jump to ${CHAIN}`;
      }
    }
    return null;
  }

  async teardown(): Promise<void> {
    for (const tool of ['iptables', 'ip6tables']) {
      for (const hook of ['INPUT', 'FORWARD']) await this.removeJumps(tool, hook);
      await this.runner.run(tool, ['-w', '-F', CHAIN], { okExitCodes: [0, 1] });
      await this.runner.run(tool, ['-w', '-X', CHAIN], { okExitCodes: [0, 1] });
    }
    for (const name of await this.ourSets()) await this.runner.run('ipset', ['destroy', name]);
    this.jails.clear();
  }

  async counters(): Promise<JailCounters[]> {
    const totals = new Map<string, JailCounters>();
    for (const tool of ['iptables', 'ip6tables']) {
      let stdout = '';
      try {
        ({ stdout } = await this.runner.run(tool, ['-w', '-L', CHAIN, '-n', '-v', '-x']));
      } catch (err) {
        if (err instanceof CommandFailedError) continue;
        throw err;
      }
      for (const line of stdout.split('\n')) {
        const m = /^\s*(\d+)\s+(\d+)\s.*\/\* portcullis:(\S+) \*\//.exec(line);
        if (!m) continue;
        const c = totals.get(m[3]!) ?? { jail: m[3]!, packets: 0, bytes: 0 };
        c.packets += Number(m[1]);
        c.bytes += Number(m[2]);
        totals.set(m[3]!, c);
      }
    }
    return [...totals.values()];
  }

  private spec(jail: string): JailFirewallSpec {
    const spec = this.jails.get(jail);
    if (!spec) throw new IpsetEnforcerError(`jail ${jail} has no ipset: it is not in the enforcer's setup (is the jail enabled?)`);
    return spec;
  }

  private async hasJump(tool: string, hook: string): Promise<boolean> {
    const { exitCode } = await this.runner.run(tool, ['-w', '-C', hook, '-j', CHAIN], { okExitCodes: [0, 1, 2] });
    return exitCode === 0;
  }

  private async removeJumps(tool: string, hook: string): Promise<void> {
    while (await this.hasJump(tool, hook)) await this.runner.run(tool, ['-w', '-D', hook, '-j', CHAIN]);
  }

  private async ourSets(): Promise<string[]> {
    const { stdout } = await this.runner.run('ipset', ['list', '-n']);
    return stdout.split('\n').filter((n) => n.startsWith(PREFIX));
  }
}

export function ipsetName(jail: string, family: Family): string {
  return `${PREFIX}${jail}_v${family}`;
}

function validateSpec(spec: JailFirewallSpec): void {
  checkJailName(spec.jail, IPSET_NAME_MAX - PREFIX.length - 3);
  for (const port of spec.ports ?? []) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new IpsetEnforcerError(`jail ${spec.jail}: port ${port} is not a port number (1-65535)`);
  }
  if (spec.refreshOnHit !== undefined) {
    throw new IpsetEnforcerError(`jail ${spec.jail}: refresh_on_hit needs the nftables enforcer (ipset cannot refresh a ban from a rule without rewriting its end); remove it or use enforcer: nftables`);
  }
  if (spec.verdict === 'throttle') parseHashlimitRate(spec);
}

/** `iptables-restore --noflush` input rewriting our chain for one family (declaring `:PORTCULLIS` flushes it). */
export function chainScript(jails: readonly JailFirewallSpec[], family: Family): string {
  const lines = ['*filter', `:${CHAIN} - [0:0]`];
  for (const spec of jails) for (const rule of jailRules(spec, family)) lines.push(`-A ${CHAIN} ${rule}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/** iptables rule bodies for one jail and family: one per protocol, every banned address matched through the ipset. */
export function jailRules(spec: JailFirewallSpec, family: Family): string[] {
  const protocols: ('tcp' | 'udp' | null)[] = spec.protocol === 'all' ? (spec.ports ? ['tcp', 'udp'] : [null]) : [spec.protocol];
  const match = `-m set --match-set ${ipsetName(spec.jail, family)} src`;
  const comment = `-m comment --comment portcullis:${spec.jail}`;
  return protocols.map((proto) => {
    const parts: string[] = [];
    if (proto) parts.push(`-p ${proto}`);
    if (proto && spec.ports) parts.push(`-m multiport --dports ${spec.ports.join(',')}`);
    parts.push(match, comment);
    if (spec.verdict === 'throttle') {
      const { rate, burst } = parseHashlimitRate(spec);
      parts.push(`-m conntrack --ctstate NEW -m hashlimit --hashlimit-above ${rate} --hashlimit-burst ${burst} --hashlimit-mode srcip --hashlimit-name pc_${spec.jail}_${family}`, '-j DROP');
    } else if (spec.verdict === 'reject') {
      parts.push(proto === 'tcp' ? '-j REJECT --reject-with tcp-reset' : `-j REJECT --reject-with ${family === 4 ? 'icmp-admin-prohibited' : 'icmp6-adm-prohibited'}`);
    } else {
      parts.push('-j DROP');
    }
    return parts.join(' ');
  });
}

function parseHashlimitRate(spec: JailFirewallSpec): { rate: string; burst: number } {
  const m = /^\s*(\d+)\s*\/\s*(s|second|m|minute|h|hour|d|day)\s*$/.exec(spec.throttleRate ?? '');
  if (!m || Number(m[1]) < 1) {
    throw new IpsetEnforcerError(`jail ${spec.jail}: throttle rate ${JSON.stringify(spec.throttleRate ?? '')} is not a rate: write it as N/second, N/minute, N/hour or N/day`);
  }
  const unit = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[m[2]![0] as 's' | 'm' | 'h' | 'd'];
  return { rate: `${m[1]}/${unit}`, burst: Number(m[1]) };
}
