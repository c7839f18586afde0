import { formatNetwork, networkCovers, type Family, type Network } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';
import { CommandFailedError, ExecRunner, inNetns, type CommandRunner } from './command-runner.js';
import { NftSession, NftSessionLostError } from './nft-session.js';
import {
  banKey, banNetwork, checkJailName, reconcilePlan, secondsLeft,
  type BanEntry, type Enforcer, type EnforcerChanges, type JailCounters, type JailFirewallSpec, type ReconcileResult,
} from './enforcer.js';
import { ConnectionFlusher, flushBanned } from './flush.js';
import { defenceAllowRules, defencePrologue, defenceRules, defenceSetDefinitions, siegeChainStatements, validateDefences } from './nftables-limits.js';

/**
 * nftables enforcer. Portcullis owns exactly one table, `inet portcullis`, and
 * never reads-to-modify or writes anything outside it.
 *
 * Per jail J and family F (4, 6):
 * - `J_vF`      addresses: hash set, `flags timeout`, one element per address with
 *               its own timeout (none when permanent). Hash sets add and delete
 *               10,000 elements in milliseconds and allow `update` from rules.
 * - `J_vF_net`  networks: interval set, `flags interval, timeout`, a CIDR is one
 *               element. Kept apart from addresses because interval sets refuse
 *               overlapping elements (a banned /24 and a banned address inside it)
 *               and nft 1.0.x deletes interval elements in quadratic time (a minute
 *               for 10,000). Nested networks cannot coexist either: the kernel
 *               holds the outermost one, lasting as long as the longest ban it
 *               covers (a wider ban is never shortened; an inner ban is never lost
 *               before its end).
 * - `J_vF_hot`  only with `refreshOnHit`: dynamic set of banned sources that keep
 *               sending. Every blocked packet refreshes the source's entry, so a
 *               persistent attacker stays blocked until it has been quiet for
 *               `refreshOnHit`, past the end of its ban (pf's `expire` by last
 *               reference, done in the kernel). The ban's own element keeps its
 *               end time, so `list()` still matches the database.
 * - `J_vF_rate` only for verdict `throttle`: per-source limiter (dynamic set with a
 *               `limit` per element) applied to new connections from banned sources.
 * - counter `J_blocked`: packets and bytes stopped for the jail (`counters()`).
 *
 * Chains `input` (and `forward` when a jail asks for it) hook at priority -150:
 * after conntrack (-200) so `ct state new` works for throttling, before the
 * usual filter tables (0). Order between tables matters less than it seems: a
 * packet passes every base chain, an `accept` elsewhere does not save it from our
 * `drop`; running first just spares other tables (and their logs) the work.
 *
 * Every batch of changes is one kernel transaction: a line to a waiting `nft -i`
 * (nft-session.ts) when it is small, a `nft -f -` script otherwise, and whenever
 * the co-process is in doubt.
 */

const TABLE = 'portcullis';
/** The scratch set of timeoutProbe(). */
const PROBE_SET = 'timeout_probe';
const FAMILIES: readonly Family[] = [4, 6];
/** Two end times this close are the same ban (the kernel reports whole seconds). */
const UNTIL_TOLERANCE_MS = 2000;
/** Size of the dynamic sets fed from the packet path (hot and rate sets). */
const DYNAMIC_SET_SIZE = 262144;
/**
 * Batches longer than this go to a one-shot `nft -f -`: its start-up cost is small
 * next to theirs, and nft -i keeps every line it read in memory until recycled.
 */
const SESSION_MAX_BATCH_CHARS = 64 * 1024;

export class NftablesEnforcerError extends PortcullisError {
  override name = 'NftablesEnforcerError';
}

export interface NftablesEnforcerOptions {
  /** Run every `nft` (and flush command) inside this network namespace. */
  netns?: string;
  /** Seam for tests; default runs programs for real. */
  runner?: CommandRunner;
  /**
   * Co-process that applies ban batches (see nft-session.ts); default: one, unless
   * `runner` is given (then every batch goes through the runner as `nft -f -`).
   */
  session?: NftSession | null;
  /** Hook priority of our chains (default -150). */
  priority?: number;
  /** Cuts connections of offenders banned in jails with `flush`; default uses the same runner and namespace. */
  flusher?: ConnectionFlusher;
  /** Where problems that do not fail the batch go (failed flushes); default stderr. */
  onWarning?: (message: string) => void;
  /**
   * Whether adding an element that is already in a set gives it the new timeout
   * (Linux 6.10 and later). Default: found out once, at setup (timeoutProbe()).
   */
  reAddSetsTimeout?: boolean;
  now?: () => number;
}

interface SetElement {
  net: Network;
  until: number | null;
}

type Statement = string;

export class NftablesEnforcer implements Enforcer {
  readonly name = 'nftables';
  private readonly runner: CommandRunner;
  private readonly session: NftSession | null;
  private readonly priority: number;
  private readonly flusher: ConnectionFlusher;
  private readonly warn: (message: string) => void;
  private readonly now: () => number;
  private readonly jails = new Map<string, JailFirewallSpec>();
  private reAddSetsTimeout: boolean | null;

  constructor(options: NftablesEnforcerOptions = {}) {
    const base = options.runner ?? new ExecRunner();
    this.runner = inNetns(base, options.netns);
    this.session = options.session !== undefined ? options.session : options.runner ? null : new NftSession({ netns: options.netns });
    this.priority = options.priority ?? -150;
    this.flusher = options.flusher ?? new ConnectionFlusher({ runner: base, netns: options.netns });
    this.warn = options.onWarning ?? ((m) => process.stderr.write(`portcullis: ${m}\n`));
    this.now = options.now ?? Date.now;
    this.reAddSetsTimeout = options.reAddSetsTimeout ?? null;
  }

  async setup(jails: readonly JailFirewallSpec[]): Promise<void> {
    for (const spec of jails) validateSpec(spec);
    try {
      await this.nft(setupScript(jails, await this.describeTable(), this.priority));
    } catch (err) {
      // The quick description infers the counters; should that be wrong (one deleted by hand), the full listing decides.
      if (!(err instanceof CommandFailedError)) throw err;
      await this.nft(setupScript(jails, await this.describeTableFully(), this.priority));
    }
    this.reAddSetsTimeout ??= await this.timeoutProbe();
    this.jails.clear();
    for (const spec of jails) this.jails.set(spec.jail, spec);
  }

  /**
   * Does adding an element already in a set replace its timeout (and drop it for
   * a permanent one)? Older kernels keep the old timeout, so a re-ban there takes
   * an add, a delete and an add again: three times the kernel work for a burst of
   * bans. Tried on a scratch set in our table, removed afterwards.
   */
  private async timeoutProbe(): Promise<boolean> {
    const set = `inet ${TABLE} ${PROBE_SET}`;
    await this.nft(`add set ${set} { type ipv4_addr; flags timeout; }\nflush set ${set}\nadd element ${set} { 192.0.2.1 timeout 1h, 192.0.2.2 timeout 1h }\n`);
    try {
      await this.nft(`add element ${set} { 192.0.2.1 timeout 2h, 192.0.2.2 }\n`);
      const now = this.now();
      const elements = await this.listSet(PROBE_SET, now);
      const until = (address: string) => elements.find((e) => formatNetwork(e.net) === address)?.until;
      const longer = until('192.0.2.1');
      return typeof longer === 'number' && longer - now > 5_400_000 && until('192.0.2.2') === null;
    } finally {
      await this.nft(`delete set ${set}\n`);
    }
  }

  async apply(changes: EnforcerChanges): Promise<void> {
    await this.applyChanges(changes, false);
  }

  /** `absent`: the bans are known to be missing from the kernel (reconcile just listed it), so a plain add does. */
  private async applyChanges(changes: EnforcerChanges, absent: boolean): Promise<void> {
    const now = this.now();
    for (const e of changes.ban) this.spec(e.jail);
    for (const e of changes.unban) this.spec(e.jail);
    // A target both banned and unbanned in one batch ends up banned.
    const banned = changes.unban.length > 0 ? new Set(changes.ban.map(banKey)) : null;
    const unbans: Planned[] = [];
    for (const e of changes.unban) if (!banned!.has(banKey(e))) unbans.push(planned(e));
    const bans: Planned[] = [];
    for (const e of changes.ban) if (secondsLeft(e.until, now) !== 0) bans.push(planned(e));
    if (bans.length === 0 && unbans.length === 0) return;

    const touchesNets = bans.some((e) => e.net !== null) || unbans.some((e) => e.net !== null);
    for (let attempt = 1; ; attempt++) {
      const script = await this.changeScript(bans, unbans, now, absent ? 'absent' : 'unknown');
      try {
        if (script.length > 0) await this.nftBatch(script);
        break;
      } catch (err) {
        // A network element may have expired between listing and deleting it: list again, once.
        if (!touchesNets || attempt >= 2 || !(err instanceof CommandFailedError)) throw err;
      }
    }

    await flushBanned(this.flusher, bans, (jail) => this.spec(jail), this.warn);
  }

  async list(): Promise<BanEntry[]> {
    return this.entriesOf(await this.listJson(['list', 'table', 'inet', TABLE]));
  }

  private entriesOf(items: readonly Record<string, unknown>[]): BanEntry[] {
    const now = this.now();
    const entries: BanEntry[] = [];
    for (const item of items) {
      const set = item.set as NftSet | undefined;
      if (!set) continue;
      const owner = /^(.+)_v(4|6)(_net)?$/.exec(set.name);
      if (!owner) continue;
      const jail = owner[1]!;
      for (const raw of set.elem ?? []) {
        const { value, until } = elementValue(raw, now);
        // A million of these at a drift check: a dotted quad is its own target, without a Network object and its text.
        if (typeof value === 'string' && CANONICAL_IPV4.test(value)) {
          entries.push({ target: value, jail, until });
          continue;
        }
        const net = elementNetwork(raw, value, set.name, this.warn);
        if (net !== null) entries.push({ target: formatNetwork(net), jail, until });
      }
    }
    return entries;
  }

  async reconcile(wanted: readonly BanEntry[]): Promise<ReconcileResult> {
    const now = this.now();
    const live = this.enforceable(wanted, now);
    let items = await this.listJson(['list', 'table', 'inet', TABLE]);
    // Elements alone block nothing: when the table was flushed or its chains edited by hand, rebuild it first.
    const problem = structureProblem(items, [...this.jails.values()]);
    if (problem !== null) {
      this.warn(`table inet ${TABLE} was changed outside Portcullis (${problem}): rebuilding it`);
      await this.setup([...this.jails.values()]);
      items = await this.listJson(['list', 'table', 'inet', TABLE]);
    }
    const plan = reconcilePlan(this.entriesOf(items), withoutNestedNets(live));
    await this.applyChanges(plan, true);
    return { added: plan.ban.length, removed: plan.unban.length };
  }

  /** The bans of `wanted` this enforcer can hold now: jails it set up, not ended. */
  private enforceable(wanted: readonly BanEntry[], now: number): BanEntry[] {
    return wanted.filter((w) => {
      if (!this.jails.has(w.jail)) {
        this.warn(`not enforcing ${w.target}: jail ${w.jail} has no nftables objects (not set up)`);
        return false;
      }
      return secondsLeft(w.until, now) !== 0;
    });
  }

  /**
   * Right after setup (which rebuilt the chains): the ban sets are emptied and filled from `wanted` in
   * one transaction instead of listed and compared. nft 1.0.6 lists a set in time that grows faster than
   * its size (a minute at a million elements), so a restart with the bans still in the kernel cost far
   * more than a start into an empty set; now both cost the same. No connection is cut: these bans are old.
   */
  async load(wanted: readonly BanEntry[]): Promise<ReconcileResult> {
    const now = this.now();
    const live = this.enforceable(wanted, now);
    const flush: Statement[] = [];
    for (const spec of this.jails.values()) {
      for (const family of FAMILIES) flush.push(`flush set inet ${TABLE} ${setName(spec.jail, family, '')}`, `flush set inet ${TABLE} ${setName(spec.jail, family, '_net')}`);
    }
    const bans = withoutNestedNets(live).map(planned);
    await this.nftBatch([...flush, ...(await this.changeScript(bans, [], now, 'emptied'))]);
    return { added: bans.length, removed: 0, reloaded: true };
  }

  async teardown(): Promise<void> {
    this.session?.close();
    try {
      await this.nft(`delete table inet ${TABLE}\n`);
    } catch (err) {
      if (!isMissingObject(err)) throw err;
    }
    this.jails.clear();
  }

  async counters(): Promise<JailCounters[]> {
    const items = await this.listJson(['list', 'counters', 'table', 'inet', TABLE]);
    const out: JailCounters[] = [];
    for (const item of items) {
      const counter = item.counter as { name: string; packets: number; bytes: number } | undefined;
      const m = counter && /^(.+)_blocked$/.exec(counter.name);
      if (counter && m) out.push({ jail: m[1]!, packets: counter.packets, bytes: counter.bytes });
    }
    return out;
  }

  private spec(jail: string): JailFirewallSpec {
    const spec = this.jails.get(jail);
    if (!spec) throw new NftablesEnforcerError(`jail ${jail} has no nftables objects: it is not in the enforcer's setup (is the jail enabled?)`);
    return spec;
  }

  /**
   * `kernel`: what the ban sets hold of `bans`. `absent`: none of them (reconcile just listed the sets), so a
   * plain add does; `emptied`: nothing at all (flushed earlier in the same transaction), so the network sets
   * are not listed either.
   */
  private async changeScript(bans: readonly Planned[], unbans: readonly Planned[], now: number, kernel: 'unknown' | 'absent' | 'emptied'): Promise<Statement[]> {
    const absent = kernel !== 'unknown';
    const script: Statement[] = [];
    const groups = new Map<string, { jail: string; family: Family; hostBans: Planned[]; hostUnbans: string[]; netBans: SetElement[]; netUnbans: Network[] }>();
    const group = (jail: string, family: Family) => {
      const key = `${jail}/${family}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { jail, family, hostBans: [], hostUnbans: [], netBans: [], netUnbans: [] }));
      return g;
    };
    for (const b of bans) {
      const g = group(b.jail, b.family);
      if (b.net === null) g.hostBans.push(b);
      else g.netBans.push({ net: b.net, until: b.until });
    }
    for (const u of unbans) {
      const g = group(u.jail, u.family);
      if (u.net === null) g.hostUnbans.push(u.text);
      else g.netUnbans.push(u.net);
    }

    for (const g of groups.values()) {
      const hosts = setName(g.jail, g.family, '');
      // Adding an element first makes the delete safe when it is absent (a missing
      // element would fail the whole transaction). On kernels where `add` keeps an
      // element's old timeout, bans are deleted before the final add too. Elements
      // known to be absent need neither (a million restored at start: a third of the work).
      const touched = absent || this.reAddSetsTimeout ? g.hostUnbans : [...g.hostUnbans, ...g.hostBans.map((b) => b.text)];
      if (touched.length > 0) script.push(elements('add', hosts, touched), elements('delete', hosts, touched));
      if (g.hostBans.length > 0) script.push(elements('add', hosts, g.hostBans.map((b) => withTimeout(b.text, b.until, now))));

      if (g.netBans.length > 0 || g.netUnbans.length > 0) {
        const name = setName(g.jail, g.family, '_net');
        const current = kernel === 'emptied' ? [] : await this.listSet(name, now);
        const remaining = current.filter((c) => !g.netUnbans.some((u) => sameNet(u, c.net)));
        const desired = nestNets([...remaining, ...g.netBans]);
        const removed = current.filter((c) => !desired.some((d) => sameNet(d.net, c.net) && sameUntil(d.until, c.until)));
        const added = desired.filter((d) => !current.some((c) => sameNet(d.net, c.net) && sameUntil(d.until, c.until)));
        if (removed.length > 0) script.push(elements('delete', name, removed.map((r) => formatNetwork(r.net))));
        if (added.length > 0) script.push(elements('add', name, added.map((a) => elementText(a, now))));
      }

      if (this.spec(g.jail).refreshOnHit !== undefined && (g.hostUnbans.length > 0 || g.netUnbans.length > 0)) {
        const hot = setName(g.jail, g.family, '_hot');
        const inNets = g.netUnbans.length > 0
          ? (await this.listSet(hot, now)).filter((h) => g.netUnbans.some((u) => networkCovers(u, h.net))).map((h) => h.net)
          : [];
        const forget = [...g.hostUnbans, ...inNets.map((n) => formatNetwork(n))];
        if (forget.length > 0) script.push(elements('add', hot, forget), elements('delete', hot, forget));
      }
    }
    return script;
  }

  private async listSet(name: string, now: number): Promise<SetElement[]> {
    const items = await this.listJson(['list', 'set', 'inet', TABLE, name]);
    const set = items.find((i) => i.set)?.set as NftSet | undefined;
    return set ? parseElements(set, now, this.warn) : [];
  }

  /** `nft -j …` output items; empty when our table does not exist (yet). */
  private async listJson(args: string[]): Promise<Record<string, unknown>[]> {
    let stdout: string;
    try {
      ({ stdout } = await this.runner.run('nft', ['-j', ...args]));
    } catch (err) {
      if (isMissingObject(err)) return [];
      throw err;
    }
    const parsed = JSON.parse(stdout) as { nftables?: Record<string, unknown>[] };
    return parsed.nftables ?? [];
  }

  /**
   * What the table holds, without listing it: nft 1.0.6 fetches every set's elements for `list table`,
   * even with -t (a minute at a million bans, twice at each start: once here and once for the drift check
   * that follows), but not for `-t list sets` or `list chains`. Counters cannot be listed that cheaply;
   * each jail's is created with its `J_v4` set, so that is where they are inferred from.
   */
  private async describeTable(): Promise<TableDescription> {
    const description: TableDescription = { sets: new Map(), counters: new Set(), chains: new Set() };
    for (const item of await this.listJson(['-t', 'list', 'sets', 'table', 'inet', TABLE])) {
      const set = item.set as NftSet | undefined;
      if (!set) continue;
      description.sets.set(set.name, setSignature(set.type, set.flags ?? []));
      const jail = /^(.+)_v4$/.exec(set.name)?.[1];
      if (jail !== undefined) description.counters.add(counterName(jail));
    }
    for (const item of await this.listJson(['list', 'chains'])) {
      const chain = item.chain as { name: string; table: string; family: string } | undefined;
      if (chain && chain.table === TABLE && chain.family === 'inet') description.chains.add(chain.name);
    }
    return description;
  }

  /** The same from a full listing of the table (slow with many bans: see describeTable). */
  private async describeTableFully(): Promise<TableDescription> {
    const items = await this.listJson(['-t', 'list', 'table', 'inet', TABLE]);
    const description: TableDescription = { sets: new Map(), counters: new Set(), chains: new Set() };
    for (const item of items) {
      const set = item.set as NftSet | undefined;
      if (set) description.sets.set(set.name, setSignature(set.type, set.flags ?? []));
      const counter = item.counter as { name: string } | undefined;
      if (counter) description.counters.add(counter.name);
      const chain = item.chain as { name: string } | undefined;
      if (chain) description.chains.add(chain.name);
    }
    return description;
  }

  private async nft(script: string): Promise<void> {
    await this.runner.run('nft', ['-f', '-'], { input: script });
  }

  /** One transaction, through the co-process when there is one and the batch is small. */
  private async nftBatch(statements: readonly Statement[]): Promise<void> {
    if (this.session && statements.reduce((n, s) => n + s.length + 2, 0) <= SESSION_MAX_BATCH_CHARS) {
      try {
        return await this.session.run(statements);
      } catch (err) {
        if (!(err instanceof NftSessionLostError)) throw err;
        this.warn(`${err.message}; applying the batch with nft -f - instead`);
      }
    }
    await this.nft(statements.join('\n') + '\n');
  }

  close(): void {
    this.session?.close();
  }
}

interface NftSet {
  name: string;
  type: string;
  flags?: string[];
  elem?: unknown[];
}

export interface TableDescription {
  /** Set name → `type flags` signature. */
  sets: Map<string, string>;
  counters: Set<string>;
  chains: Set<string>;
}

interface SetDefinition {
  name: string;
  type: 'ipv4_addr' | 'ipv6_addr';
  flags: string[];
  size?: number;
}

function setName(jail: string, family: Family, suffix: '' | '_net' | '_hot' | '_rate'): string {
  return `${jail}_v${family}${suffix}`;
}

function counterName(jail: string): string {
  return `${jail}_blocked`;
}

function setDefinitions(spec: JailFirewallSpec): SetDefinition[] {
  const defs: SetDefinition[] = [];
  for (const family of FAMILIES) {
    const type = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
    defs.push({ name: setName(spec.jail, family, ''), type, flags: ['timeout'] });
    defs.push({ name: setName(spec.jail, family, '_net'), type, flags: ['interval', 'timeout'] });
    if (spec.refreshOnHit !== undefined) defs.push({ name: setName(spec.jail, family, '_hot'), type, flags: ['dynamic', 'timeout'], size: DYNAMIC_SET_SIZE });
    if (spec.verdict === 'throttle') defs.push({ name: setName(spec.jail, family, '_rate'), type, flags: ['dynamic', 'timeout'], size: DYNAMIC_SET_SIZE });
  }
  return defs;
}

/**
 * The whole setup as one transaction: objects that already exist with the right
 * shape are adopted with their elements and counter values; chains are rebuilt;
 * objects of jails no longer configured are removed.
 */
export function setupScript(jails: readonly JailFirewallSpec[], existing: TableDescription | null, priority = -150): string {
  const have = existing ?? { sets: new Map<string, string>(), counters: new Set<string>(), chains: new Set<string>() };
  const defs = allSetDefinitions(jails);
  const wantedSets = new Map(defs.map((d) => [d.name, d]));
  const wantsForward = jails.some((j) => j.forward);
  const out: Statement[] = [`add table inet ${TABLE}`];
  const chains = wantsForward ? ['input', 'forward'] : ['input'];
  for (const chain of chains) {
    out.push(`add chain inet ${TABLE} ${chain} { type filter hook ${chain} priority ${priority}; policy accept; }`);
    out.push(`flush chain inet ${TABLE} ${chain}`);
  }
  if (!wantsForward && have.chains.has('forward')) out.push(`flush chain inet ${TABLE} forward`, `delete chain inet ${TABLE} forward`);
  for (const [name, signature] of have.sets) {
    const def = wantedSets.get(name);
    if (!def || signature !== setSignature(def.type, def.flags)) out.push(`delete set inet ${TABLE} ${name}`);
  }
  for (const def of defs) {
    const size = def.size ? ` size ${def.size};` : '';
    out.push(`add set inet ${TABLE} ${def.name} { type ${def.type};${size} flags ${def.flags.join(', ')}; }`);
  }
  const wantedCounters = new Set(jails.map((j) => counterName(j.jail)));
  for (const name of wantedCounters) out.push(`add counter inet ${TABLE} ${name}`);
  for (const name of have.counters) if (!wantedCounters.has(name)) out.push(`delete counter inet ${TABLE} ${name}`);
  const siegeChains = siegeChainStatements(jails, have.chains);
  out.push(...siegeChains.create);
  for (const rule of chainRules(jails, 'input')) out.push(`add rule inet ${TABLE} input ${rule}`);
  if (wantsForward) for (const rule of chainRules(jails, 'forward')) out.push(`add rule inet ${TABLE} forward ${rule}`);
  out.push(...siegeChains.remove);
  return out.join('\n') + '\n';
}

/** Every set of the table: ban sets here, connection-limit and allowlist sets in nftables-limits.ts. */
function allSetDefinitions(jails: readonly JailFirewallSpec[]): SetDefinition[] {
  return [...jails.flatMap(setDefinitions), ...defenceSetDefinitions(jails)];
}

/**
 * `type flags` of a set, for adopting an existing one. `nft -j` does not list the
 * `dynamic` flag, so it is left out on both sides (otherwise dynamic sets would be
 * dropped and recreated, losing their elements, at every setup).
 */
function setSignature(type: string, flags: readonly string[]): string {
  return `${type} ${flags.filter((f) => f !== 'dynamic').sort().join(',')}`;
}

/** The rules of a base chain in order: global allowlist, then per jail its allowlist, bans, connection limits and siege jump. */
function chainRules(jails: readonly JailFirewallSpec[], chain: 'input' | 'forward'): string[] {
  const mine = chain === 'input' ? jails : jails.filter((j) => j.forward);
  return [
    ...defencePrologue(jails),
    ...mine.flatMap((spec) => [...defenceAllowRules(spec, portMatch), ...jailRules(spec), ...defenceRules(spec, portMatch, counterName(spec.jail))]),
  ];
}

/**
 * What is missing from our table compared with what `setupScript` builds for
 * `jails` (a chain, a set, or rules of a chain, counted), or null when it is
 * whole. `items` is `nft -j list table` output, empty when the table is gone.
 */
export function structureProblem(items: readonly Record<string, unknown>[], jails: readonly JailFirewallSpec[]): string | null {
  if (jails.length === 0) return null;
  if (!items.some((i) => i.table)) return 'table missing';
  const sets = new Set(items.flatMap((i) => (i.set ? [(i.set as NftSet).name] : [])));
  for (const def of allSetDefinitions(jails)) if (!sets.has(def.name)) return `set ${def.name} missing`;
  const chains = new Set(items.flatMap((i) => (i.chain ? [(i.chain as { name: string }).name] : [])));
  const rules = new Map<string, number>();
  for (const i of items) {
    const rule = i.rule as { chain: string } | undefined;
    if (rule) rules.set(rule.chain, (rules.get(rule.chain) ?? 0) + 1);
  }
  const wanted: Array<[string, number]> = [['input', chainRules(jails, 'input').length]];
  if (jails.some((j) => j.forward)) wanted.push(['forward', chainRules(jails, 'forward').length]);
  for (const [chain, count] of wanted) {
    if (!chains.has(chain)) return `chain ${chain} missing`;
    if ((rules.get(chain) ?? 0) !== count) return `chain ${chain} has ${rules.get(chain) ?? 0} of its ${count} rules`;
  }
  return null;
}

/** The rules of one jail, without the `add rule` prefix. */
export function jailRules(spec: JailFirewallSpec): string[] {
  const rules: string[] = [];
  const counter = `counter name ${counterName(spec.jail)}`;
  for (const family of FAMILIES) {
    const saddr = family === 4 ? 'ip saddr' : 'ip6 saddr';
    const banSets = [setName(spec.jail, family, ''), setName(spec.jail, family, '_net')];
    if (spec.verdict === 'throttle') {
      const { count, unit, periodSeconds } = parseRate(spec.throttleRate ?? '', spec.jail);
      const limiter = `update @${setName(spec.jail, family, '_rate')} { ${saddr} timeout ${2 * periodSeconds}s limit rate over ${count}/${unit} burst ${count} packets }`;
      for (const set of banSets) rules.push(join('ct state new', portMatch(spec), `${saddr} @${set}`, limiter, counter, 'drop'));
      continue;
    }
    if (spec.refreshOnHit !== undefined) {
      const hot = setName(spec.jail, family, '_hot');
      const refresh = `update @${hot} { ${saddr} timeout ${Math.max(1, Math.ceil(spec.refreshOnHit / 1000))}s }`;
      banSets.push(hot);
      // Refreshing is its own rule so that a full hot set can never let a banned packet through.
      for (const set of banSets) rules.push(join(portMatch(spec), `${saddr} @${set}`, refresh));
    }
    for (const set of banSets) {
      for (const [match, verdict] of verdicts(spec)) rules.push(join(match, `${saddr} @${set}`, counter, verdict));
    }
  }
  return rules;
}

function verdicts(spec: JailFirewallSpec): [string, string][] {
  if (spec.verdict !== 'reject') return [[portMatch(spec), 'drop']];
  const icmp = 'reject with icmpx type admin-prohibited';
  if (spec.protocol === 'tcp') return [[portMatch(spec), 'reject with tcp reset']];
  if (spec.protocol === 'udp') return [[portMatch(spec), icmp]];
  // Both protocols: TCP gets a reset (what a closed port answers), the rest an ICMP error.
  return [[portMatch({ ...spec, protocol: 'tcp' }), 'reject with tcp reset'], [portMatch(spec), icmp]];
}

export function portMatch(spec: Pick<JailFirewallSpec, 'ports' | 'protocol'>): string {
  const ports = spec.ports && spec.ports.length > 0 ? `{ ${spec.ports.join(', ')} }` : null;
  if (spec.protocol === 'all') return ports ? `meta l4proto { tcp, udp } th dport ${ports}` : '';
  return ports ? `${spec.protocol} dport ${ports}` : `meta l4proto ${spec.protocol}`;
}

function join(...parts: string[]): string {
  return parts.filter((p) => p.length > 0).join(' ');
}

const RATE_UNITS: Record<string, [string, number]> = {
  s: ['second', 1], second: ['second', 1], m: ['minute', 60], minute: ['minute', 60],
  h: ['hour', 3600], hour: ['hour', 3600], d: ['day', 86400], day: ['day', 86400],
};

function parseRate(text: string, jail: string): { count: number; unit: string; periodSeconds: number } {
  const m = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/.exec(text);
  const unit = m ? RATE_UNITS[m[2]!] : undefined;
  if (!m || !unit || Number(m[1]) < 1) {
    throw new NftablesEnforcerError(`jail ${jail}: throttle rate ${JSON.stringify(text)} is not a rate: write it as N/second, N/minute, N/hour or N/day (e.g. 10/minute)`);
  }
  return { count: Number(m[1]), unit: unit[0], periodSeconds: unit[1] };
}

function validateSpec(spec: JailFirewallSpec): void {
  // nft set names get suffixes such as `_v6_rate`; keep the whole name well under nft's limit.
  checkJailName(spec.jail, 200);
  for (const port of spec.ports ?? []) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new NftablesEnforcerError(`jail ${spec.jail}: port ${port} is not a port number (1-65535)`);
  }
  if (spec.verdict === 'throttle') parseRate(spec.throttleRate ?? '', spec.jail);
  if (spec.refreshOnHit !== undefined && spec.verdict === 'throttle') {
    throw new NftablesEnforcerError(`jail ${spec.jail}: refresh_on_hit needs action drop or reject (throttled sources are let through, so there is nothing to refresh on)`);
  }
  validateDefences(spec);
}

function isHost(net: Network): boolean {
  return net.prefix === (net.family === 4 ? 32 : 128);
}

function sameNet(a: Network, b: Network): boolean {
  return a.family === b.family && a.prefix === b.prefix && a.base === b.base;
}

function sameUntil(a: number | null, b: number | null): boolean {
  return a === null || b === null ? a === b : Math.abs(a - b) <= UNTIL_TOLERANCE_MS;
}

function laterUntil(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.max(a, b);
}

/** CIDRs either nest or are disjoint: keep the outermost, lasting as long as the longest ban inside it. */
function nestNets(elements: readonly SetElement[]): SetElement[] {
  const sorted = [...elements].sort((a, b) => a.net.prefix - b.net.prefix);
  const kept: SetElement[] = [];
  for (const e of sorted) {
    const outer = kept.find((k) => networkCovers(k.net, e.net));
    if (outer) outer.until = laterUntil(outer.until, e.until);
    else kept.push({ net: e.net, until: e.until });
  }
  return kept;
}

/** The wanted bans as the kernel can hold them: a network inside another wanted network of the same jail is folded into it. */
function withoutNestedNets(wanted: readonly BanEntry[]): BanEntry[] {
  const byGroup = new Map<string, (BanEntry & { net: Network })[]>();
  const out: BanEntry[] = [];
  for (const w of wanted) {
    const net = banNetwork(w);
    if (isHost(net)) {
      out.push(w);
      continue;
    }
    const key = `${w.jail}/${net.family}`;
    byGroup.set(key, [...(byGroup.get(key) ?? []), { ...w, net }]);
  }
  for (const [key, entries] of byGroup) {
    const jail = key.slice(0, key.lastIndexOf('/'));
    for (const e of nestNets(entries)) out.push({ target: formatNetwork(e.net), jail, until: e.until });
  }
  return out;
}

function elementText(e: SetElement, now: number): string {
  return withTimeout(formatNetwork(e.net), e.until, now);
}

function withTimeout(text: string, until: number | null, now: number): string {
  const seconds = secondsLeft(until, now);
  return seconds === null ? text : `${text} timeout ${seconds}s`;
}

/**
 * A change as the script needs it. A host is only its canonical text, and a
 * dotted quad already is one: a burst of 100,000 bans skips parsing each address
 * into a number and printing it back.
 */
interface Planned {
  target: string;
  jail: string;
  until: number | null;
  family: Family;
  text: string;
  /** null for a single address. */
  net: Network | null;
}

const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

function planned(e: BanEntry): Planned {
  if (CANONICAL_IPV4.test(e.target)) return { target: e.target, jail: e.jail, until: e.until, family: 4, text: e.target, net: null };
  const net = banNetwork(e);
  return { target: e.target, jail: e.jail, until: e.until, family: net.family, text: formatNetwork(net), net: isHost(net) ? null : net };
}

function elements(verb: 'add' | 'delete', set: string, items: readonly string[]): Statement {
  return `${verb} element inet ${TABLE} ${set} { ${items.join(', ')} }`;
}

/** Elements of `nft -j list set` output: plain strings, `{prefix}` objects, or `{elem: {val, timeout, expires}}`. */
function parseElements(set: NftSet, now: number, warn: (m: string) => void): SetElement[] {
  const out: SetElement[] = [];
  for (const raw of set.elem ?? []) {
    const { value, until } = elementValue(raw, now);
    const net = elementNetwork(raw, value, set.name, warn);
    if (net !== null) out.push({ net, until });
  }
  return out;
}

/** An element's value (string or `{prefix}`) and when it expires (null: never). */
function elementValue(raw: unknown, now: number): { value: unknown; until: number | null } {
  if (!isObject(raw) || !isObject(raw.elem)) return { value: raw, until: null };
  const elem = raw.elem;
  const until = typeof elem.expires === 'number' ? now + elem.expires * 1000 : typeof elem.timeout === 'number' ? now + elem.timeout * 1000 : null;
  return { value: elem.val, until };
}

/** The network an element's value names; null, with a warning, when it is not an address or CIDR. */
function elementNetwork(raw: unknown, value: unknown, setName: string, warn: (m: string) => void): Network | null {
  let text: string | null = null;
  if (typeof value === 'string') text = value;
  else if (isObject(value) && isObject(value.prefix)) text = `${String(value.prefix.addr)}/${String(value.prefix.len)}`;
  const net = text === null ? null : parseNetworkOrNull(text);
  if (net === null) warn(`ignoring element ${JSON.stringify(raw)} of set ${setName}: not an address or CIDR`);
  return net;
}

function parseNetworkOrNull(text: string): Network | null {
  try {
    return banNetwork({ target: text, jail: '' });
  } catch {
    return null;
  }
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null;
}

function isMissingObject(err: unknown): boolean {
  return err instanceof CommandFailedError && /No such file or directory/.test(err.stderr);
}
