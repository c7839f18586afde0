/**
 * The `fleet:` section of the configuration, as the loader hands it over:
 *
 * ```yaml
 * fleet:
 *   redis: redis://127.0.0.1:6379     # rediss:// for TLS; user:password@ in the URL or below
 *   node: web1                        # this node's name (default: the host name)
 *   share: all                        # all | none | [jails] whose decisions are published
 *   apply: { jails: [sshd], ports: [22, 443] }   # which remote decisions to apply, and on which ports
 *   trust: [web2, vpn1]               # apply decisions from these nodes only (default: every node)
 *   count: [sshd]                     # jails whose failures are summed across the fleet within findtime
 * ```
 */
export interface FleetOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  redis: string;
  node: string;
  /** Which local decisions are published. */
  share: 'all' | 'none' | string[];
  /** Remote decisions applied: only for these jails (null = all); only on these ports (null = as the remote jail, or all). */
  apply: { jails: string[] | null; ports: number[] | null };
  /** Nodes whose decisions are applied; null = every node. */
  trust: string[] | null;
  /** Jails with fleet-wide failure counting. */
  count: string[];
  username: string | null;
  password: string | null;
  /** TLS towards Redis (also implied by `rediss://`): CA, client certificate and key files. */
  tls: { ca: string | null; cert: string | null; key: string | null; servername: string | null } | null;
  /** Prefix of every Redis key. */
  prefix: string;
  /** Approximate length the decision stream is trimmed to. */
  streamMaxlen: number;
}

/**
 * The jail remote bans are enforced in when the local node has no jail of that
 * name, or when `apply.ports` narrows them: its ports are `apply.ports` (all
 * ports when absent), on TCP and UDP.
 */
export const FLEET_JAIL = 'fleet';

export const DEFAULT_PREFIX = 'portcullis';
export const DEFAULT_STREAM_MAXLEN = 100_000;

/** True for `redis://` and `rediss://` URLs with a host. */
export function isRedisUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
  } catch {
    return false;
  }
}
