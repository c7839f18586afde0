import { EventEmitter } from 'node:events';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { canonicalAddress, formatNetwork, networkCovers, parseIPv4, parseIPv6, parseNetwork, type Network } from '../core/address.js';
import { DnsClient, DnsError, type DnsLookup } from './dns.js';
import { expandSpf, foldNested } from './spf.js';

/**
 * Addresses that must never be banned, throttled or escalated into a subnet ban,
 * and that keep access during a siege. Loopback and the host's own addresses are
 * always in it: locking out the machine itself is never the right answer.
 *
 * Entries (config `allowlist:` globally and per jail, plus `ignoreip`):
 * - addresses and CIDRs;
 * - `host: NAME`: the name's A and AAAA records, resolved again when their TTL ends;
 * - `spf: DOMAIN`: the networks allowed to send the domain's mail (src/policy/spf.ts),
 *   resolved again when the first TTL of the records used ends;
 * - `file: PATH`: one address or CIDR per line (`#` comments), read again when it changes.
 *
 * Names are resolved by one AllowlistResolver per daemon, shared by every jail's
 * Allowlist. A failed refresh (DNS down) keeps the last good answer and retries;
 * a name that does not exist (or publishes no SPF record) allows nothing and is
 * reported in `status`.
 */

export type AllowlistEntry =
  | { kind: 'network'; network: Network }
  | { kind: 'host'; name: string }
  | { kind: 'spf'; domain: string }
  | { kind: 'file'; path: string };

export type DynamicEntry = Exclude<AllowlistEntry, { kind: 'network' }>;

export function entryLabel(entry: AllowlistEntry): string {
  switch (entry.kind) {
    case 'network':
      return formatNetwork(entry.network);
    case 'host':
      return `host:${entry.name}`;
    case 'spf':
      return `spf:${entry.domain}`;
    case 'file':
      return `file:${entry.path}`;
  }
}

/** One allowed network and why it is allowed (shown by `explain`). */
export interface AllowedNetwork {
  network: Network;
  label: string;
}

export interface AllowlistSourceStatus {
  entry: string;
  networks: number;
  /** ISO time of the last successful resolution or read; null before the first. */
  resolvedAt: string | null;
  /** ISO time of the next refresh (null for files, which are watched). */
  refreshAt: string | null;
  /** What is wrong (permerror, missing file, DNS failure…), or null. */
  problem: string | null;
  notes: string[];
}

export interface AllowlistResolverOptions {
  /** DNS servers (`host:port`); default the system's. Ignored when `dns` is given. */
  servers?: readonly string[];
  /** Per DNS query attempt (default 2 s). */
  dnsTimeoutMs?: number;
  dns?: DnsLookup;
  /** Never refresh sooner than this after a resolution, whatever the TTL (default 30 s). */
  minRefreshMs?: number;
  /** Refresh at least this often (default 1 day). */
  maxRefreshMs?: number;
  /** After a temporary failure, retry this soon (default 60 s). */
  retryMs?: number;
  /** How often watched files are checked for changes (default 2 s). */
  fileCheckMs?: number;
  /** Problems and changes worth a log line. */
  log?: (level: 'info' | 'warn', message: string) => void;
  now?: () => number;
}

interface SourceState {
  entry: DynamicEntry;
  label: string;
  networks: AllowedNetwork[];
  resolvedAt: number | null;
  refreshAt: number | null;
  problem: string | null;
  notes: string[];
  timer: NodeJS.Timeout | null;
  running: Promise<void> | null;
}

/** Resolves and refreshes the dynamic entries of every allowlist; emits `change` when any resolved set changes. */
export class AllowlistResolver extends EventEmitter<{ change: [] }> {
  /** Increases with every change of any source's networks. */
  version = 0;
  private readonly sources = new Map<string, SourceState>();
  private readonly dns: DnsLookup | null;
  private readonly servers: readonly string[] | undefined;
  private started = false;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: AllowlistResolverOptions = {}) {
    super();
    this.dns = options.dns ?? null;
    this.servers = options.servers;
    this.now = options.now ?? Date.now;
  }

  /** Registers an entry (once per distinct entry); resolved at `start()`, or at once when already started. */
  register(entry: DynamicEntry): void {
    const label = entryLabel(entry);
    if (this.sources.has(label)) return;
    const state: SourceState = { entry, label, networks: [], resolvedAt: null, refreshAt: null, problem: null, notes: [], timer: null, running: null };
    this.sources.set(label, state);
    if (this.started && !this.stopped) void this.begin(state);
  }

  networksOf(entry: DynamicEntry): readonly AllowedNetwork[] {
    return this.sources.get(entryLabel(entry))?.networks ?? [];
  }

  /** Resolves every registered entry once (in parallel), then keeps them fresh. */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all([...this.sources.values()].map((s) => this.begin(s)));
  }

  /** Resolves or re-reads everything now, whatever the TTLs say. */
  async refreshAll(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => this.refresh(s)));
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.sources.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      if (s.entry.kind === 'file') unwatchFile(s.entry.path);
    }
  }

  status(): AllowlistSourceStatus[] {
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    return [...this.sources.values()].map((s) => ({
      entry: s.label, networks: s.networks.length, resolvedAt: iso(s.resolvedAt), refreshAt: iso(s.refreshAt), problem: s.problem, notes: s.notes,
    }));
  }

  private begin(state: SourceState): Promise<void> {
    if (state.entry.kind === 'file') {
      const path = state.entry.path;
      watchFile(path, { interval: this.options.fileCheckMs ?? 2000, persistent: false }, (current: Stats, previous: Stats) => {
        if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size || current.ino !== previous.ino) void this.refresh(state);
      });
    }
    return this.refresh(state);
  }

  private refresh(state: SourceState): Promise<void> {
    // One resolution at a time per source; a request during one waits for it.
    if (state.running) return state.running;
    state.running = this.resolve(state).finally(() => (state.running = null));
    return state.running;
  }

  private async resolve(state: SourceState): Promise<void> {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    const entry = state.entry;
    let result: { networks: AllowedNetwork[]; ttl: number | null; problem: string | null; notes: string[]; keepOld: boolean };
    try {
      result = entry.kind === 'file' ? readAllowFile(entry.path, state.label) : entry.kind === 'host' ? await this.resolveHost(entry.name, state.label) : await this.resolveSpf(entry.domain, state.label);
    } catch (err) {
      result = { networks: [], ttl: null, problem: (err as Error).message, notes: [], keepOld: true };
    }
    if (this.stopped) return;
    const now = this.now();
    const hadProblem = state.problem;
    state.problem = result.problem;
    state.notes = result.notes;
    if (result.problem && result.problem !== hadProblem) this.options.log?.('warn', `allowlist ${state.label}: ${result.problem}${result.keepOld && state.resolvedAt !== null ? ' (keeping the last good answer)' : ''}`);
    if (!result.keepOld || state.resolvedAt === null) {
      if (!result.keepOld) state.resolvedAt = now;
      const before = state.networks.map((n) => n.label).join(',');
      state.networks = result.networks;
      if (state.networks.map((n) => n.label).join(',') !== before) {
        this.version++;
        if (state.resolvedAt !== null) this.options.log?.('info', `allowlist ${state.label}: ${state.networks.length} network(s)${state.networks.length ? `: ${state.networks.slice(0, 8).map((n) => formatNetwork(n.network)).join(', ')}${state.networks.length > 8 ? ', …' : ''}` : ''}`);
        this.emit('change');
      }
    }
    if (entry.kind === 'file') {
      state.refreshAt = null;
      return;
    }
    const min = this.options.minRefreshMs ?? 30_000;
    const max = this.options.maxRefreshMs ?? 86_400_000;
    const delay = result.keepOld ? this.options.retryMs ?? 60_000 : Math.min(max, Math.max(min, (result.ttl ?? 0) * 1000));
    state.refreshAt = now + delay;
    state.timer = setTimeout(() => void this.refresh(state), delay);
    state.timer.unref();
  }

  private lookup(): DnsLookup {
    // Made on first use: a configuration without names to resolve needs no DNS server at all.
    return this.dns ?? (this.cachedClient ??= new DnsClient({ ...(this.servers?.length ? { servers: this.servers } : {}), ...(this.options.dnsTimeoutMs ? { timeoutMs: this.options.dnsTimeoutMs } : {}) }));
  }
  private cachedClient: DnsClient | undefined;

  private async resolveHost(name: string, label: string) {
    const answers = [];
    for (const type of ['A', 'AAAA'] as const) {
      try {
        answers.push(await this.lookup().query(name, type));
      } catch (err) {
        if (err instanceof DnsError) return { networks: [], ttl: null, problem: err.message, notes: [], keepOld: true };
        throw err;
      }
    }
    const networks = answers.flatMap((a) => a.records).map((r) => parseNetwork(r)!).map((network) => ({ network, label: `${label} (${formatNetwork(network)})` }));
    const ttl = Math.min(...answers.map((a) => a.ttl));
    const problem = networks.length > 0 ? null : answers[0]!.status === 'nxdomain' ? `${name} does not exist (NXDOMAIN)` : `${name} has no A or AAAA records`;
    return { networks, ttl, problem, notes: [], keepOld: false };
  }

  private async resolveSpf(domain: string, label: string) {
    const spf = await expandSpf(domain, this.lookup());
    const networks = spf.networks.map((network) => ({ network, label: `${label} (${formatNetwork(network)})` }));
    const problem = spf.problem ? `${spf.problem.kind}: ${spf.problem.message}${spf.problem.kind === 'none' ? '' : ` — allowlisting the ${networks.length} network(s) resolved before it`}` : null;
    // A temporary DNS failure keeps what we had; a permanent error is the domain's own answer.
    return { networks, ttl: Number.isFinite(spf.ttl) ? spf.ttl : null, problem, notes: spf.notes, keepOld: spf.problem?.kind === 'temperror' };
  }
}

/** Reads an allowlist file: one address or CIDR per line, `#` starts a comment. */
function readAllowFile(path: string, label: string): { networks: AllowedNetwork[]; ttl: null; problem: string | null; notes: string[]; keepOld: boolean } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { networks: [], ttl: null, problem: code === 'ENOENT' ? `${path} does not exist (create it, or remove the entry)` : `cannot read ${path}: ${(err as Error).message}`, notes: [], keepOld: false };
  }
  const networks: AllowedNetwork[] = [];
  const bad: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const network = parseNetwork(line);
    if (network === null) bad.push(`${path}:${i + 1}: ${JSON.stringify(line)} is not an IP address or CIDR`);
    else networks.push({ network, label: `${label}:${i + 1} (${formatNetwork(network)})` });
  });
  return { networks, ttl: null, problem: bad.length ? `${bad.slice(0, 5).join('; ')}${bad.length > 5 ? `; and ${bad.length - 5} more` : ''} (those lines are ignored)` : null, notes: [], keepOld: false };
}

export interface AllowlistOptions {
  /** Also allow the host's own addresses (default true). */
  includeHost?: boolean;
  /** `allowlist:` entries; addresses/CIDRs among them join `networks`, the others are resolved by `resolver`. */
  entries?: readonly AllowlistEntry[];
  /** Resolves host, spf and file entries; without one they allow nothing. */
  resolver?: AllowlistResolver;
}

const LOOPBACK = [parseNetwork('127.0.0.0/8')!, parseNetwork('::1')!];

export class Allowlist {
  private readonly fixed: AllowedNetwork[] = [];
  private readonly hostAddresses = new Set<string>();
  private readonly dynamic: DynamicEntry[] = [];
  private readonly resolver: AllowlistResolver | undefined;
  private index: NetworkIndex | null = null;
  private indexVersion = -1;

  constructor(networks: readonly Network[], options: AllowlistOptions = {}) {
    for (const n of [...LOOPBACK, ...networks]) this.fixed.push({ network: n, label: formatNetwork(n) });
    for (const e of options.entries ?? []) {
      if (e.kind === 'network') this.fixed.push({ network: e.network, label: formatNetwork(e.network) });
      else this.dynamic.push(e);
    }
    this.resolver = options.resolver;
    for (const e of this.dynamic) this.resolver?.register(e);
    if (options.includeHost ?? true) {
      for (const list of Object.values(networkInterfaces())) {
        for (const i of list ?? []) {
          const a = canonicalAddress(i.address);
          if (a) this.hostAddresses.add(a);
        }
      }
    }
  }

  /** The entry that covers `address` (for `explain`), or null. */
  match(address: string): string | null {
    if (this.hostAddresses.has(address)) return `${address} (an address of this host)`;
    return this.currentIndex().lookup(address);
  }

  /**
   * The entry that a ban of `network` would hit, or null: an allowlisted network
   * inside it, or one containing it. Subnet escalation asks before banning a prefix.
   */
  coversAllowed(network: Network | string): string | null {
    const net = typeof network === 'string' ? parseNetwork(network) : network;
    if (net === null) return null;
    for (const a of this.hostAddresses) if (networkCovers(net, parseNetwork(a)!)) return `${a} (an address of this host)`;
    for (const a of this.allowed()) if (networkCovers(net, a.network) || networkCovers(a.network, net)) return a.label;
    return null;
  }

  /** Every network allowed now (loopback, host addresses, fixed and resolved entries), nested ones folded: what the firewall's allow sets hold. */
  networks(): Network[] {
    return foldNested([...this.allowed().map((a) => a.network), ...[...this.hostAddresses].map((a) => parseNetwork(a)!)]);
  }

  private allowed(): AllowedNetwork[] {
    const out = [...this.fixed];
    if (this.resolver) for (const e of this.dynamic) out.push(...this.resolver.networksOf(e));
    return out;
  }

  private currentIndex(): NetworkIndex {
    const version = this.resolver?.version ?? 0;
    if (this.index === null || version !== this.indexVersion) {
      this.index = new NetworkIndex(this.allowed());
      this.indexVersion = version;
    }
    return this.index;
  }
}

/**
 * Lookup by prefix length, shortest first: one map probe per distinct length.
 * Every failure is checked here, so neither family uses BigInt on that path: IPv4 works
 * on 32-bit numbers, IPv6 on four 32-bit words found through a hash and compared.
 */
class NetworkIndex {
  private readonly v4: Array<{ mask: number; bases: Map<number, string> }> = [];
  private readonly v6: Array<{ mask: Uint32Array; bases: Map<number, V6Base[]> }> = [];

  constructor(networks: readonly AllowedNetwork[]) {
    const grouped: Record<4 | 6, Map<number, Map<bigint, string>>> = { 4: new Map(), 6: new Map() };
    for (const { network, label } of networks) {
      const byPrefix = grouped[network.family];
      let bases = byPrefix.get(network.prefix);
      if (!bases) byPrefix.set(network.prefix, (bases = new Map()));
      if (!bases.has(network.base)) bases.set(network.base, label);
    }
    // Fixed entries were added first, and shorter prefixes are tried first: the widest, earliest entry names the match.
    for (const prefix of [...grouped[4].keys()].sort((a, b) => a - b)) {
      const bases = new Map<number, string>();
      for (const [base, label] of grouped[4].get(prefix)!) bases.set(Number(base), label);
      this.v4.push({ mask: prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0, bases });
    }
    for (const prefix of [...grouped[6].keys()].sort((a, b) => a - b)) {
      const mask = new Uint32Array(4);
      for (let i = 0; i < 4; i++) {
        const bits = Math.min(32, Math.max(0, prefix - 32 * i));
        mask[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      }
      const bases = new Map<number, V6Base[]>();
      for (const [base, label] of grouped[6].get(prefix)!) {
        const words = new Uint32Array(4);
        for (let i = 0; i < 4; i++) words[i] = Number((base >> BigInt(96 - 32 * i)) & 0xffffffffn);
        const key = hashWords(words[0]!, words[1]!, words[2]!, words[3]!);
        const list = bases.get(key);
        if (list) list.push({ words, label });
        else bases.set(key, [{ words, label }]);
      }
      this.v6.push({ mask, bases });
    }
  }

  lookup(address: string): string | null {
    const v4 = parseIPv4(address, 0, address.length);
    if (v4 >= 0) {
      for (const { mask, bases } of this.v4) {
        const label = bases.get((v4 & mask) >>> 0);
        if (label !== undefined) return label;
      }
      return null;
    }
    if (this.v6.length === 0 || !parseIPv6(address, GROUPS)) return null;
    const g = GROUPS;
    const a0 = (g[0]! << 16) | g[1]!;
    const a1 = (g[2]! << 16) | g[3]!;
    const a2 = (g[4]! << 16) | g[5]!;
    const a3 = (g[6]! << 16) | g[7]!;
    for (const { mask, bases } of this.v6) {
      const w0 = (a0 & mask[0]!) >>> 0;
      const w1 = (a1 & mask[1]!) >>> 0;
      const w2 = (a2 & mask[2]!) >>> 0;
      const w3 = (a3 & mask[3]!) >>> 0;
      const list = bases.get(hashWords(w0, w1, w2, w3));
      if (list === undefined) continue;
      for (const { words, label } of list) if (words[0] === w0 && words[1] === w1 && words[2] === w2 && words[3] === w3) return label;
    }
    return null;
  }
}

interface V6Base {
  words: Uint32Array;
  label: string;
}

/** Scratch groups for IPv6 lookups (single-threaded, never held across calls). */
const GROUPS = new Uint16Array(8);

function hashWords(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0 ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ w1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ w2, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ w3, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
