import { PortcullisError } from '../core/errors.js';
import { parseNetwork, type Network } from '../core/address.js';

/**
 * An enforcer turns decisions into firewall state. Changes arrive in batches
 * and each batch goes to the kernel as one transaction.
 */

export type Verdict = 'drop' | 'reject' | 'throttle';
export type Protocol = 'tcp' | 'udp' | 'all';
/** Cutting a banned offender's open connections (pf's `flush`): none, those to the jail's ports, or all. */
export type FlushScope = 'none' | 'rule' | 'global';

/** What the firewall needs to know about a jail to build its objects. */
export interface JailFirewallSpec {
  jail: string;
  /** Ports to protect; null means every port. */
  ports: number[] | null;
  protocol: Protocol;
  verdict: Verdict;
  /** Rate for `throttle`, e.g. `10/minute`. */
  throttleRate?: string;
  /** Also filter forwarded traffic (routers, containers). */
  forward?: boolean;
  /** After a ban, cut the offender's established connections (default `none`). */
  flush?: FlushScope;
  /**
   * Expire by last reference (ms): while a banned source keeps sending, it stays
   * blocked until it has been quiet this long, even past the ban's own end.
   * Only for `drop` and `reject`; enforcers that cannot do it say so at setup.
   */
  refreshOnHit?: number;
  /** pf-style connection limits the kernel enforces itself (nftables only; src/enforcers/nftables-limits.ts). */
  limits?: ConnectionLimits;
  /** Present when the jail can enter siege mode: the firewall keeps room for its siege rules. */
  siege?: { rateLimit: string; allowlistOnly: boolean };
}

/**
 * Connection limits per source address, like pf's `max-src-conn`, `max-src-conn-rate`
 * and `overload <table>`: a source over a limit is put in the jail's overload set by
 * the kernel itself, without any log line, and the daemon then records the ban.
 */
export interface ConnectionLimits {
  /** Concurrent connections per source; null = not limited. */
  maxSrcConn: number | null;
  /** New connections per source: at most `count` within `seconds`; null = not limited. */
  maxSrcConnRate: { count: number; seconds: number } | null;
  /** How long the kernel bans an offender (ms); null = until lifted. */
  bantime: number | null;
  /** Ports the limits apply to; default the jail's ports. */
  ports?: number[] | null;
}

export interface BanEntry {
  /** Canonical address or CIDR. */
  target: string;
  jail: string;
  /** Epoch ms when the ban ends; null = permanent. */
  until: number | null;
}

export interface EnforcerChanges {
  ban: BanEntry[];
  unban: BanEntry[];
}

export interface ReconcileResult {
  added: number;
  removed: number;
  /** The firewall's bans were replaced by the database's without comparing them (`added` is all of them). */
  reloaded?: boolean;
}

/** Packets and bytes the firewall stopped for one jail since setup. */
export interface JailCounters {
  jail: string;
  packets: number;
  bytes: number;
}

export interface Enforcer {
  readonly name: string;
  /** Creates (or adopts) the firewall objects for these jails. Idempotent. */
  setup(jails: readonly JailFirewallSpec[]): Promise<void>;
  /** Applies bans and unbans together, as one transaction where the firewall allows. */
  apply(changes: EnforcerChanges): Promise<void>;
  /** What the firewall holds now. */
  list(): Promise<BanEntry[]>;
  /** Makes the firewall hold exactly `wanted`: adds what is missing, removes what is unknown. */
  reconcile(wanted: readonly BanEntry[]): Promise<ReconcileResult>;
  /** The same right after setup, where replacing the bans costs less than comparing them (nftables). */
  load?(wanted: readonly BanEntry[]): Promise<ReconcileResult>;
  /** Removes every object the enforcer created (used by `run --flush-on-exit`). */
  teardown(): Promise<void>;
  /** Dropped/rejected traffic per jail, where the firewall counts it. */
  counters?(): Promise<JailCounters[]>;
  /** Ends helper processes the enforcer keeps (the firewall state stays). */
  close?(): void;
}

/** Identity of a ban in the firewall: the same target in another jail is another ban. */
export function banKey(entry: { jail: string; target: string }): string {
  return `${entry.jail}\u0000${entry.target}`;
}

/** What reconcile must change so that `current` becomes `wanted` (membership only, not end times). */
export function reconcilePlan(current: readonly BanEntry[], wanted: readonly BanEntry[]): EnforcerChanges {
  const have = new Set(current.map(banKey));
  const want = new Map(wanted.map((w) => [banKey(w), w]));
  return {
    ban: [...want.values()].filter((w) => !have.has(banKey(w))),
    unban: current.filter((c) => !want.has(banKey(c))),
  };
}

/**
 * Jail names become firewall object names (nft sets, ipsets, pf tables), so they
 * are restricted to what every backend accepts; nothing else ever reaches a rule.
 */
export function checkJailName(jail: string, maxLength = 64): void {
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(jail) || jail.length > maxLength) {
    throw new PortcullisError(
      `jail name ${JSON.stringify(jail)} cannot name firewall objects: use a letter followed by letters, digits, '_' or '-', at most ${maxLength} characters`,
      2,
    );
  }
}

/** The network a ban target denotes; rejects anything that is not an address or CIDR, so no other text reaches a firewall. */
export function banNetwork(entry: { target: string; jail: string }): Network {
  const net = parseNetwork(entry.target);
  if (net === null) throw new PortcullisError(`ban target ${JSON.stringify(entry.target)} in jail ${entry.jail} is not an IP address or CIDR`);
  return net;
}

/** Seconds until `until` (rounded up), null for permanent, 0 when already over. */
export function secondsLeft(until: number | null, now: number): number | null {
  return until === null ? null : Math.max(0, Math.ceil((until - now) / 1000));
}
