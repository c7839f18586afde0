/**
 * An enforcer turns decisions into firewall state. Changes arrive in batches
 * and each batch goes to the kernel as one transaction.
 */

export type Verdict = 'drop' | 'reject' | 'throttle';
export type Protocol = 'tcp' | 'udp' | 'all';

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
  /** Removes every object the enforcer created (used by `run --flush-on-exit`). */
  teardown(): Promise<void>;
}
