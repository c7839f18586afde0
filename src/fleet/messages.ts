import { canonicalTarget } from '../core/address.js';
import type { Decision } from '../core/types.js';

/**
 * What travels between nodes, and the Redis keys it lives under (prefix `P`,
 * default `portcullis`):
 *
 * - `P:decisions` — stream; one entry per published decision, fields
 *   `node` (publisher), `action` (`ban`|`unban`) and `d` (FleetMessage as JSON).
 *   Trimmed with `MAXLEN ~ stream_maxlen`.
 * - `P:bans` — hash, field `JAIL|TARGET` → FleetMessage of the active ban;
 *   `P:bans:until` — sorted set, same members, score = end of the ban in ms
 *   (`+inf` when permanent). Together: the fleet's current bans, read by a node
 *   that starts without a stream position (or finds its position trimmed away).
 * - `P:fail:JAIL:ADDRESS` — sorted set of failures (member `node:seq`, score
 *   = ms) for fleet-wide counting, expiring after findtime.
 * - `P:nodes` — hash, node → `{"at": ms, "pid": n}`: when each node was last seen.
 */

export const MESSAGE_VERSION = 1;
const MAX_REASON = 500;
const MAX_EVIDENCE_LINES = 10;
const MAX_EVIDENCE_LINE = 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export interface FleetMessage {
  v: number;
  /** The node that made (and published) the decision. */
  node: string;
  action: 'ban' | 'unban';
  target: string;
  jail: string;
  time: number;
  until: number | null;
  reason: string;
  /** Who on that node asked for it when not its detectors (`cli`, `api`). */
  by?: string;
  evidence?: string[];
  ports?: number[];
  protocol?: 'tcp' | 'udp' | 'all';
}

export interface FleetKeys {
  stream: string;
  bans: string;
  bansUntil: string;
  nodes: string;
  failures(jail: string, address: string): string;
}

export function fleetKeys(prefix: string): FleetKeys {
  return {
    stream: `${prefix}:decisions`,
    bans: `${prefix}:bans`,
    bansUntil: `${prefix}:bans:until`,
    nodes: `${prefix}:nodes`,
    failures: (jail, address) => `${prefix}:fail:${jail}:${address}`,
  };
}

/** Field of `P:bans` / member of `P:bans:until`. */
export function banField(jail: string, target: string): string {
  return `${jail}|${target}`;
}

export function toMessage(d: Decision, node: string): FleetMessage {
  const m: FleetMessage = {
    v: MESSAGE_VERSION, node, action: d.action as 'ban' | 'unban', target: d.target, jail: d.jail, time: d.time, until: d.until,
    reason: d.reason.slice(0, MAX_REASON),
  };
  if (d.origin !== node) m.by = d.origin;
  if (d.evidence?.length) m.evidence = d.evidence.slice(-MAX_EVIDENCE_LINES).map((l) => l.slice(0, MAX_EVIDENCE_LINE));
  if (d.ports) m.ports = d.ports;
  if (d.protocol) m.protocol = d.protocol;
  return m;
}

/**
 * Checks a message read from Redis. Anyone who can write to Redis can write
 * here, so nothing is taken on trust: the target must be an address or CIDR,
 * names must be names, times numbers; null when the message is unusable.
 */
export function parseMessage(json: string): FleetMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const m = v as Record<string, unknown>;
  if (m.v !== MESSAGE_VERSION || (m.action !== 'ban' && m.action !== 'unban')) return null;
  if (typeof m.node !== 'string' || !NAME.test(m.node) || typeof m.jail !== 'string' || !NAME.test(m.jail)) return null;
  const target = typeof m.target === 'string' ? canonicalTarget(m.target) : null;
  if (target === null || typeof m.time !== 'number' || !Number.isFinite(m.time)) return null;
  if (m.until !== null && (typeof m.until !== 'number' || !Number.isFinite(m.until))) return null;
  const out: FleetMessage = {
    v: MESSAGE_VERSION, node: m.node, action: m.action, target, jail: m.jail, time: m.time, until: m.until as number | null,
    reason: typeof m.reason === 'string' ? m.reason.slice(0, MAX_REASON) : '',
  };
  if (typeof m.by === 'string') out.by = m.by.slice(0, 64);
  if (Array.isArray(m.evidence)) out.evidence = m.evidence.filter((l): l is string => typeof l === 'string').slice(-MAX_EVIDENCE_LINES).map((l) => l.slice(0, MAX_EVIDENCE_LINE));
  if (Array.isArray(m.ports) && m.ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) out.ports = m.ports as number[];
  if (m.protocol === 'tcp' || m.protocol === 'udp' || m.protocol === 'all') out.protocol = m.protocol;
  return out;
}

/** Stream ids `ms-seq` in order. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am !== bm ? am - bm : (as ?? 0) - (bs ?? 0);
}
