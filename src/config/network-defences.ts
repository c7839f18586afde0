import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseNetwork } from '../core/address.js';
import { parseBantime, parseDuration } from '../core/duration.js';
import type { ConnectionLimits } from '../enforcers/enforcer.js';
import { parseDnsServer } from '../policy/dns.js';
import type { AllowlistEntry } from '../policy/allowlist.js';
import { isDomainName } from '../policy/spf.js';

/**
 * Config keys of the kernel-side defences: `allowlist:` (global and per jail),
 * `dns:` and a jail's `limits:`. The schema fragments check shapes (so unknown
 * keys get "did you mean"); the functions here check values and report at the
 * entry's own `file:line:column`.
 */

type Raw = Record<string, unknown>;
export type Fail = (path: Array<string | number>, message: string) => void;

const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;

/** Entries are checked one by one in `allowlistOf`, which can say exactly what is wrong with each. */
export const allowlistSchema = { type: 'array', items: { type: ['string', 'object'] } } as const;

export const dnsSchema = {
  type: 'object',
  properties: {
    servers: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
    timeout: { type: ['string', 'number'], format: 'duration' },
  },
  additionalProperties: false,
} as const;

export const limitsSchema = {
  type: 'object',
  properties: {
    max_src_conn: { type: 'integer', minimum: 1, maximum: 1000000 },
    max_src_conn_rate: { type: ['string', 'integer'] },
    overload: {
      type: 'object',
      properties: { bantime: { type: ['string', 'number'], format: 'bantime' } },
      additionalProperties: false,
    },
    ports: { type: 'array', items: port, minItems: 1 },
  },
  additionalProperties: false,
} as const;

export const ENTRY_HELP = 'an address or CIDR, `host: NAME`, `spf: DOMAIN` (or a list of domains) or `file: PATH`';
export const CONNECTION_RATE_HELP = 'N/PERIOD: at most N new connections per source within PERIOD, such as 15/5s (pf writes 15/5), 100/1m or 10/minute';

/** Parses `allowlist:` entries; relative `file:` paths are relative to the config file's directory. */
export function allowlistOf(value: unknown, baseDir: string, fail: Fail, path: Array<string | number>): AllowlistEntry[] {
  if (value === undefined) return [];
  const entries: AllowlistEntry[] = [];
  (value as unknown[]).forEach((item, i) => {
    const at = [...path, i];
    if (typeof item === 'string') {
      const network = parseNetwork(item);
      if (network === null) fail(at, `${JSON.stringify(item)} is not an address or CIDR; an entry is ${ENTRY_HELP}`);
      else entries.push({ kind: 'network', network });
      return;
    }
    const keys = Object.keys(item as Raw);
    if (keys.length !== 1 || !['host', 'spf', 'file'].includes(keys[0]!)) {
      fail(at, `${keys.length === 1 ? `unknown entry kind "${keys[0]}"` : `an entry has one key, found ${keys.length}`}; an entry is ${ENTRY_HELP}`);
      return;
    }
    const kind = keys[0] as 'host' | 'spf' | 'file';
    const raw = (item as Raw)[kind];
    const values = Array.isArray(raw) ? raw : [raw];
    for (const v of values) {
      if (typeof v !== 'string' || v.length === 0) {
        fail([...at, kind], `expected ${kind === 'file' ? 'a path' : 'a domain name or a list of them'}, found ${JSON.stringify(v)}`);
        continue;
      }
      if (kind === 'file') {
        const file = isAbsolute(v) ? v : resolve(baseDir, v);
        if (!existsSync(file)) fail([...at, kind], `${file} does not exist; create it (one address or CIDR per line, # comments) or remove the entry`);
        entries.push({ kind: 'file', path: file });
      } else if (!isDomainName(v)) {
        fail([...at, kind], `${JSON.stringify(v)} is not a domain name${parseNetwork(v) ? ' (write addresses as plain entries, without host:)' : ''}`);
      } else {
        entries.push(kind === 'host' ? { kind: 'host', name: v.toLowerCase().replace(/\.$/, '') } : { kind: 'spf', domain: v.toLowerCase().replace(/\.$/, '') });
      }
    }
  });
  return entries;
}

export interface DnsOptions {
  /** Empty: the system's resolvers. */
  servers: string[];
  timeoutMs: number;
}

export function dnsOf(value: unknown, fail: Fail): DnsOptions {
  const r = (value ?? {}) as Raw;
  const servers = (r.servers as string[] | undefined) ?? [];
  servers.forEach((s, i) => {
    if (parseDnsServer(s) === null) fail(['dns', 'servers', i], `${JSON.stringify(s)} is not a DNS server; write an IP address with an optional port, such as 127.0.0.1:5353, 192.0.2.53 or [2001:db8::53]:53`);
  });
  return { servers, timeoutMs: r.timeout === undefined ? 2000 : parseDuration(r.timeout as string)! };
}

/** `limits:` of a jail; null when absent. */
export function limitsOf(value: unknown, fail: Fail): ConnectionLimits | null {
  if (value === undefined) return null;
  const r = value as Raw;
  let rate: ConnectionLimits['maxSrcConnRate'] = null;
  if (r.max_src_conn_rate !== undefined) {
    rate = parseConnectionRate(String(r.max_src_conn_rate));
    if (rate === null) fail(['limits', 'max_src_conn_rate'], `${JSON.stringify(r.max_src_conn_rate)} is not a connection rate; expected ${CONNECTION_RATE_HELP}`);
  }
  const maxSrcConn = (r.max_src_conn as number | undefined) ?? null;
  if (maxSrcConn === null && r.max_src_conn_rate === undefined) fail(['limits'], 'set max_src_conn, max_src_conn_rate or both (e.g. `limits: { max_src_conn: 100, max_src_conn_rate: 15/5s }`)');
  const overload = (r.overload ?? {}) as Raw;
  return {
    maxSrcConn,
    maxSrcConnRate: rate,
    bantime: overload.bantime === undefined ? 86_400_000 : parseBantime(overload.bantime as string)!,
    ...(r.ports ? { ports: r.ports as number[] } : {}),
  };
}

const PERIOD_UNITS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600, d: 86400, day: 86400 };

/** `15/5s`, `15/5` (pf: seconds), `10/minute`, `100/1m30s` → count and period in seconds; null when not a rate. */
export function parseConnectionRate(text: string): { count: number; seconds: number } | null {
  const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(text);
  if (!m || Number(m[1]) < 1) return null;
  const period = m[2]!;
  let seconds: number | null;
  if (/^\d+$/.test(period)) seconds = Number(period);
  else if (PERIOD_UNITS[period] !== undefined) seconds = PERIOD_UNITS[period]!;
  else {
    const ms = parseDuration(period);
    seconds = ms === null || ms % 1000 !== 0 ? null : ms / 1000;
  }
  if (seconds === null || seconds < 1 || seconds > 86400) return null;
  return { count: Number(m[1]), seconds };
}
