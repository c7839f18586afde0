import { canonicalAddress, formatNetwork, type Family, type Network } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';
import type { Decision } from '../core/types.js';
import { CommandFailedError, ExecRunner, inNetns, type CommandRunner } from './command-runner.js';
import type { JailFirewallSpec } from './enforcer.js';

/**
 * The kernel-side defences in our nftables table, beside the ban sets of
 * nftables.ts: connection limits (pf's max-src-conn / max-src-conn-rate /
 * overload), siege rules, and the allowlist's accept rules.
 *
 * Objects (per jail J with `limits` or `siege`, family F):
 * - `allow_vF`     interval set: the global allowlist (loopback, this host, `ignoreip`,
 *                  global `allowlist:` entries resolved). `ip saddr @allow_v4 accept`
 *                  is the first rule of the chain, ahead of every ban.
 * - `J_vF_allow`   interval set: the jail's own allowlist entries; accepted on the
 *                  jail's ports ahead of the jail's bans.
 * - `J_vF_over`    the overload set: the kernel adds a source that broke a limit,
 *                  with the overload ban time; blocked on the jail's ports. The daemon
 *                  lists it every second (the kernel sends no netlink event for elements
 *                  added from the packet path, so `nft monitor` cannot see them), records
 *                  the ban (origin `kernel`), which also puts it in the ban set `J_vF`
 *                  and cuts the offender's connections (`flush`), and deletes it from
 *                  here when the ban is lifted.
 * - `J_vF_conn`    `ct count` per source (concurrent connections, max_src_conn).
 * - `J_vF_connrate` per-source token bucket of new connections (max_src_conn_rate).
 * - chain `J_siege` (jails with `siege:`): empty outside a siege; during one it holds
 *                  a `limit` on new connections to the jail's ports (all sources not
 *                  allowlisted together), or a plain drop with `allowlist_only`.
 *
 * Kernel bans go to a set of their own, not straight into `J_vF`: the daemon's
 * reconcile would otherwise remove an element it has not recorded yet.
 */

const TABLE = 'portcullis';
const FAMILIES: readonly Family[] = [4, 6];
const DYNAMIC_SET_SIZE = 262144;
export const GLOBAL_ALLOW = 'allow';

export class NftablesDefenceError extends PortcullisError {
  override name = 'NftablesDefenceError';
}

export interface DefenceSetDefinition {
  name: string;
  type: 'ipv4_addr' | 'ipv6_addr';
  flags: string[];
  size?: number;
}

/** Jails that need the objects of this file. */
export function hasDefences(spec: JailFirewallSpec): boolean {
  return spec.limits !== undefined || spec.siege !== undefined;
}

export function overloadSet(jail: string, family: Family): string {
  return `${jail}_v${family}_over`;
}

export function allowSet(jail: string | null, family: Family): string {
  return jail === null ? `${GLOBAL_ALLOW}_v${family}` : `${jail}_v${family}_allow`;
}

export function siegeChain(jail: string): string {
  return `${jail}_siege`;
}

function addrType(family: Family): 'ipv4_addr' | 'ipv6_addr' {
  return family === 4 ? 'ipv4_addr' : 'ipv6_addr';
}

function saddr(family: Family): string {
  return family === 4 ? 'ip saddr' : 'ip6 saddr';
}

export function defenceSetDefinitions(jails: readonly JailFirewallSpec[]): DefenceSetDefinition[] {
  const withDefences = jails.filter(hasDefences);
  if (withDefences.length === 0) return [];
  const defs: DefenceSetDefinition[] = FAMILIES.map((f) => ({ name: allowSet(null, f), type: addrType(f), flags: ['interval'] }));
  for (const spec of withDefences) {
    for (const f of FAMILIES) {
      defs.push({ name: allowSet(spec.jail, f), type: addrType(f), flags: ['interval'] });
      if (!spec.limits) continue;
      defs.push({ name: overloadSet(spec.jail, f), type: addrType(f), flags: ['dynamic', 'timeout'], size: DYNAMIC_SET_SIZE });
      if (spec.limits.maxSrcConn !== null) defs.push({ name: `${spec.jail}_v${f}_conn`, type: addrType(f), flags: ['dynamic'], size: DYNAMIC_SET_SIZE });
      if (spec.limits.maxSrcConnRate !== null) defs.push({ name: `${spec.jail}_v${f}_connrate`, type: addrType(f), flags: ['dynamic', 'timeout'], size: DYNAMIC_SET_SIZE });
    }
  }
  return defs;
}

/** Rules at the very top of the chain: the global allowlist is accepted before any ban. */
export function defencePrologue(jails: readonly JailFirewallSpec[]): string[] {
  if (!jails.some(hasDefences)) return [];
  return FAMILIES.map((f) => `${saddr(f)} @${allowSet(null, f)} accept`);
}

/** The jail's own allowlist, accepted on its ports ahead of its bans. */
export function defenceAllowRules(spec: JailFirewallSpec, portMatch: (spec: Pick<JailFirewallSpec, 'ports' | 'protocol'>) => string): string[] {
  if (!hasDefences(spec)) return [];
  return FAMILIES.map((f) => join(portMatch(spec), `${saddr(f)} @${allowSet(spec.jail, f)}`, 'accept'));
}

/** After the jail's ban rules: overload blocking, the limits themselves, then the jump to the siege chain. */
export function defenceRules(spec: JailFirewallSpec, portMatch: (spec: Pick<JailFirewallSpec, 'ports' | 'protocol'>) => string, counter: string): string[] {
  const rules: string[] = [];
  const limits = spec.limits;
  if (limits) {
    const ports = portMatch({ ports: limits.ports ?? spec.ports, protocol: spec.protocol });
    const verdict = spec.verdict === 'reject' && spec.protocol === 'tcp' ? 'reject with tcp reset' : spec.verdict === 'reject' ? 'reject with icmpx type admin-prohibited' : 'drop';
    for (const f of FAMILIES) {
      const over = overloadSet(spec.jail, f);
      const timeout = limits.bantime === null ? '' : ` timeout ${Math.max(1, Math.ceil(limits.bantime / 1000))}s`;
      const overload = `add @${over} { ${saddr(f)}${timeout} }`;
      rules.push(join(ports, `${saddr(f)} @${over}`, `counter name ${counter}`, verdict));
      if (limits.maxSrcConn !== null) {
        rules.push(join(ports, 'ct state new', `add @${spec.jail}_v${f}_conn { ${saddr(f)} ct count over ${limits.maxSrcConn} }`, overload, `counter name ${counter}`, verdict));
      }
      if (limits.maxSrcConnRate !== null) {
        const { count, seconds } = limits.maxSrcConnRate;
        // The per-source bucket must outlive a full refill, or a slow offender would start each burst afresh.
        const bucket = `update @${spec.jail}_v${f}_connrate { ${saddr(f)} timeout ${2 * seconds}s limit rate over ${nftRate(count, seconds)} burst ${count} packets }`;
        rules.push(join(ports, 'ct state new', bucket, overload, `counter name ${counter}`, verdict));
      }
    }
  }
  if (spec.siege) rules.push(`jump ${siegeChain(spec.jail)}`);
  return rules;
}

/** The siege chains (created, never flushed by setup, so a siege survives a re-setup) and chains of jails gone. */
export function siegeChainStatements(jails: readonly JailFirewallSpec[], existingChains: ReadonlySet<string>): { create: string[]; remove: string[] } {
  const wanted = new Set(jails.filter((j) => j.siege).map((j) => siegeChain(j.jail)));
  return {
    create: [...wanted].map((c) => `add chain inet ${TABLE} ${c}`),
    remove: [...existingChains].filter((c) => c.endsWith('_siege') && !wanted.has(c)).flatMap((c) => [`flush chain inet ${TABLE} ${c}`, `delete chain inet ${TABLE} ${c}`]),
  };
}

/**
 * `count` per `seconds` as an nft rate: the smallest unit that makes it a whole
 * number (15/5s = 3/second, 5/3s = 100/minute); a rate no unit makes whole is
 * rounded up per day, which never lets through fewer connections than asked for.
 */
export function nftRate(count: number, seconds: number): string {
  for (const [unit, length] of [['second', 1], ['minute', 60], ['hour', 3600]] as const) {
    if ((count * length) % seconds === 0) return `${(count * length) / seconds}/${unit}`;
  }
  return `${Math.ceil((count * 86400) / seconds)}/day`;
}

const RATE_UNITS: Record<string, string> = { s: 'second', second: 'second', m: 'minute', minute: 'minute', h: 'hour', hour: 'hour', d: 'day', day: 'day' };

function siegeRate(text: string, jail: string): { count: number; unit: string } {
  const m = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/.exec(text);
  const unit = m ? RATE_UNITS[m[2]!] : undefined;
  if (!m || !unit || Number(m[1]) < 1) throw new NftablesDefenceError(`jail ${jail}: siege rate_limit ${JSON.stringify(text)} is not a rate: write it as N/second, N/minute, N/hour or N/day (e.g. 10/minute)`);
  return { count: Number(m[1]), unit };
}

export function validateDefences(spec: JailFirewallSpec): void {
  if (spec.jail === GLOBAL_ALLOW && hasDefences(spec)) {
    throw new NftablesDefenceError(`jail name "${GLOBAL_ALLOW}" clashes with the global allowlist sets (allow_v4, allow_v6) of connection limits and siege; rename the jail`);
  }
  if (spec.siege) siegeRate(spec.siege.rateLimit, spec.jail);
  const l = spec.limits;
  if (l?.maxSrcConn !== undefined && l.maxSrcConn !== null && (!Number.isInteger(l.maxSrcConn) || l.maxSrcConn < 1)) {
    throw new NftablesDefenceError(`jail ${spec.jail}: max_src_conn ${l.maxSrcConn} must be a whole number of connections, at least 1`);
  }
}

/** The siege chain's rules for a `siege-on` decision (ports and protocol from the decision, else the jail's). */
export function siegeRules(spec: JailFirewallSpec, decision: Pick<Decision, 'ports' | 'protocol' | 'siege'>, portMatch: (spec: Pick<JailFirewallSpec, 'ports' | 'protocol'>) => string): string[] {
  const settings = decision.siege ?? spec.siege;
  if (!settings) return [];
  const ports = portMatch({ ports: decision.ports ?? spec.ports, protocol: decision.protocol ?? spec.protocol });
  const refuse = spec.verdict === 'reject' && (decision.protocol ?? spec.protocol) === 'tcp' ? 'reject with tcp reset' : 'drop';
  if (settings.allowlistOnly) return [join(ports, 'ct state new', 'counter', refuse)];
  const { count, unit } = siegeRate(settings.rateLimit, spec.jail);
  // One bucket for every source not allowlisted together: the iptables `limit` match of the seed.
  return [join(ports, 'ct state new', `limit rate over ${count}/${unit} burst ${count} packets`, 'counter', refuse)];
}

function join(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join(' ');
}

export interface KernelBan {
  jail: string;
  target: string;
  /** Epoch ms when the kernel lets it go; null = never. */
  until: number | null;
}

export interface NftablesDefencesOptions {
  netns?: string;
  runner?: CommandRunner;
  /** How often the overload sets are listed (default 1 s). */
  pollMs?: number;
  /** A source the kernel put in an overload set that the daemon has not recorded yet. */
  onKernelBan: (ban: KernelBan) => void;
  /** True when (jail, target) already has an active ban in the database: such elements are known. */
  isRecorded: (jail: string, target: string) => boolean;
  warn?: (message: string) => void;
  now?: () => number;
}

/**
 * The runtime half: keeps the allow sets equal to the resolved allowlists,
 * applies siege decisions, and turns kernel-made overload entries into recorded
 * bans. The table and chains are created by the nftables enforcer's setup.
 */
export class NftablesDefences {
  private readonly runner: CommandRunner;
  private readonly jails = new Map<string, JailFirewallSpec>();
  private readonly warn: (message: string) => void;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;

  constructor(jails: readonly JailFirewallSpec[], private readonly options: NftablesDefencesOptions, private readonly portMatch: (spec: Pick<JailFirewallSpec, 'ports' | 'protocol'>) => string) {
    for (const j of jails) if (hasDefences(j)) this.jails.set(j.jail, j);
    this.runner = inNetns(options.runner ?? new ExecRunner(), options.netns);
    this.warn = options.warn ?? ((m) => process.stderr.write(`portcullis: ${m}\n`));
    this.now = options.now ?? Date.now;
  }

  get active(): boolean {
    return this.jails.size > 0;
  }

  /** Lifts any siege left from before (the detectors start outside a siege) and starts watching the overload sets. */
  async start(): Promise<void> {
    if (!this.active) return;
    const sieges = [...this.jails.values()].filter((j) => j.siege).map((j) => `flush chain inet ${TABLE} ${siegeChain(j.jail)}`);
    if (sieges.length > 0) await this.nft(sieges);
    this.timer = setInterval(() => void this.poll(), this.options.pollMs ?? 1000);
    this.timer.unref();
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.polling ?? Promise.resolve();
  }

  /** Makes the allow sets hold exactly these networks (global, and per jail for the jails given). */
  async syncAllowlists(global: readonly Network[], perJail: ReadonlyMap<string, readonly Network[]>): Promise<void> {
    if (!this.active) return;
    const script: string[] = [];
    const fill = (set: (f: Family) => string, nets: readonly Network[]): void => {
      for (const f of FAMILIES) {
        script.push(`flush set inet ${TABLE} ${set(f)}`);
        const mine = nets.filter((n) => n.family === f).map(formatNetwork);
        if (mine.length > 0) script.push(`add element inet ${TABLE} ${set(f)} { ${mine.join(', ')} }`);
      }
    };
    fill((f) => allowSet(null, f), global);
    for (const jail of this.jails.keys()) fill((f) => allowSet(jail, f), perJail.get(jail) ?? []);
    await this.nft(script);
  }

  /** Applies `siege-on` / `siege-off` for a jail set up with `siege`; other decisions are ignored. */
  async onDecision(d: Decision): Promise<void> {
    const spec = this.jails.get(d.jail);
    if (!spec) return;
    if ((d.action === 'siege-on' || d.action === 'siege-off') && spec.siege) {
      const chain = siegeChain(spec.jail);
      const rules = d.action === 'siege-on' ? siegeRules(spec, d, this.portMatch) : [];
      await this.nft([`add chain inet ${TABLE} ${chain}`, `flush chain inet ${TABLE} ${chain}`, ...rules.map((r) => `add rule inet ${TABLE} ${chain} ${r}`)]);
    } else if (d.action === 'unban' && spec.limits && !d.target.includes('/')) {
      // A lifted ban must leave the overload set too, or the kernel would go on blocking it (the kernel bans addresses only).
      const family: Family = d.target.includes(':') ? 6 : 4;
      const set = overloadSet(spec.jail, family);
      await this.nft([`add element inet ${TABLE} ${set} { ${d.target} }`, `delete element inet ${TABLE} ${set} { ${d.target} }`]);
    }
  }

  /** Lists the overload sets once and reports elements not recorded yet. */
  poll(): Promise<void> {
    if (this.polling) return this.polling;
    this.polling = this.pollOnce()
      .catch((err: Error) => this.warn(`could not read the overload sets: ${err.message}`))
      .finally(() => (this.polling = null));
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    for (const spec of this.jails.values()) {
      if (!spec.limits) continue;
      for (const f of FAMILIES) {
        for (const ban of await this.listOverload(spec.jail, f)) {
          if (!this.options.isRecorded(ban.jail, ban.target)) this.options.onKernelBan(ban);
        }
      }
    }
  }

  private async listOverload(jail: string, family: Family): Promise<KernelBan[]> {
    let stdout: string;
    try {
      ({ stdout } = await this.runner.run('nft', ['-j', 'list', 'set', 'inet', TABLE, overloadSet(jail, family)]));
    } catch (err) {
      // Not set up yet (or being rebuilt): nothing to report this round.
      if (err instanceof CommandFailedError && /No such file or directory/.test(err.stderr)) return [];
      throw err;
    }
    const items = (JSON.parse(stdout) as { nftables?: Array<{ set?: { elem?: unknown[] } }> }).nftables ?? [];
    const now = this.now();
    const out: KernelBan[] = [];
    for (const raw of items.find((i) => i.set)?.set?.elem ?? []) {
      const elem = typeof raw === 'object' && raw !== null && 'elem' in raw ? (raw as { elem: { val: unknown; expires?: number } }).elem : null;
      const value = elem ? elem.val : raw;
      const target = typeof value === 'string' ? canonicalAddress(value) : null;
      if (target === null) continue;
      const until = elem && typeof elem.expires === 'number' ? now + elem.expires * 1000 : null;
      out.push({ jail, target, until });
    }
    return out;
  }

  private async nft(statements: readonly string[]): Promise<void> {
    if (statements.length === 0) return;
    await this.runner.run('nft', ['-f', '-'], { input: statements.join('\n') + '\n' });
  }
}

