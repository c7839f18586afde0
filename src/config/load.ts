import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import AjvModule, { type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, type Document, isMap, isPair, isScalar } from 'yaml';
import { parseNetwork, type Network } from '../core/address.js';
import { DURATION_HELP, parseBantime, parseDuration } from '../core/duration.js';
import { ConfigError, ConfigErrors } from '../core/errors.js';
import { builtinFilters } from '../filters/index.js';
import { createFail2banFilter, isFail2banFilterSpec } from '../fail2ban/fail2ban-filter.js';
import { BUILTIN_JAILS, RECIDIVE_JAIL, DEFAULT_BANTIME, DEFAULT_FINDTIME, DEFAULT_MAXRETRY } from './builtin-jails.js';
import { configSchema } from './schema.js';
import { configFiles, DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET, DEFAULT_STATE_DIR } from './files.js';
import { allowlistOf, dnsOf, limitsOf, type DnsOptions } from './network-defences.js';
import type { AllowlistEntry } from '../policy/allowlist.js';
import type { ConnectionLimits } from '../enforcers/enforcer.js';
import { bantimeOf, escalationOf, parsePercent, parseRate, PERCENT_HELP, RATE_HELP, siegeOf, slowOf } from './defences.js';
import type { EscalationStep } from '../detectors/escalation.js';
import type { SiegeConfig } from '../detectors/siege.js';
import type { LongWindowConfig } from '../detectors/spray.js';
import type { BantimeGrowth } from '../policy/bantime.js';
import type { CommandEnforcerOptions, CommandTemplate } from '../enforcers/command.js';
import { DEFAULT_PREFIX, DEFAULT_STREAM_MAXLEN, FLEET_JAIL, isRedisUrl, type FleetOptions } from '../fleet/options.js';
import { DEFAULT_JOURNAL_WAKE_MS, JOURNAL_WAKE_HELP, parseJournalWake } from '../sources/journal-waker.js';
import { LISTEN_HELP as SYSLOG_LISTEN_HELP, parseListen as parseSyslogListen } from '../sources/syslog.js';
import { parseListen } from '../control/listen.js';
import { NOTICE_KINDS, type NoticeKind, type NotifyOptions } from '../notifiers/notifier.js';
import { renderTemplate, sampleNotice } from '../notifiers/webhook.js';


export type SourceSpec =
  | { kind: 'file'; paths: string[]; startAtEnd: boolean }
  | { kind: 'journal'; matches: Record<string, string[]> }
  | { kind: 'stdin' }
  /** A syslog receiver; jails naming the same `listen` share it, each taking the lines of its own `allow`ed senders. */
  | { kind: 'syslog'; listen: string; allow: Network[]; tls: { cert: string; key: string; ca: string | null } | null };

export type EnforcerName = 'nftables' | 'iptables' | 'pf' | 'command' | 'dry-run';

export interface JailConfig {
  name: string;
  enabled: boolean;
  sources: SourceSpec[];
  filters: string[];
  /** Extra envelope programs offered to this jail's filters. */
  programs: string[];
  maxretry: number;
  findtime: number;
  /** Milliseconds, or null for permanent. */
  bantime: number | null;
  ignoreip: Network[];
  ports: number[] | null;
  protocol: 'tcp' | 'udp' | 'all';
  action: 'drop' | 'reject' | 'throttle';
  /** Enforcers for this jail; empty = the global default. */
  enforcers: EnforcerName[];
  /** Cut a banned offender's open connections: none, those to the jail's ports, or all. */
  flush: 'none' | 'rule' | 'global';
  /** Also filter forwarded traffic (a router forwarding ports to LAN hosts or containers). */
  forward: boolean;
  /** Repeat offenders: how `bantime` grows with the target's earlier bans; null/absent = fixed. */
  bantimeGrowth?: BantimeGrowth | null;
  /** Netblock escalation steps (first, then optionally a wider one); null/absent = off. */
  escalate?: EscalationStep[] | null;
  /** Siege mode against distributed attacks; null/absent = off. */
  siege?: SiegeConfig | null;
  /** Slow and distributed brute force over a long window; null/absent = off. */
  slow?: LongWindowConfig | null;
  /** The jail's own `allowlist:` entries (on top of the global ones and `ignoreip`). */
  allowlist?: AllowlistEntry[];
  /** Connection limits the kernel enforces (nftables); null/absent = none. */
  limits?: ConnectionLimits | null;
}

export interface Config {
  /** Files the configuration was read from (empty = embedded defaults only). */
  files: string[];
  stateDir: string;
  controlSocket: string;
  http: { enabled: boolean; listen: string; tokenFile: string | null; token: string | null; certFile: string | null; keyFile: string | null };
  /** E-mail and webhook alerts. */
  notify: NotifyOptions;
  enforcer: EnforcerName | 'auto';
  maxLineLength: number;
  /** Poll interval of the journal waker while the journal is busy; null = off (entries arrive on journald's 250 ms timer). */
  journalWakeMs: number | null;
  startAtEnd: boolean;
  ignoreip: Network[];
  jails: JailConfig[];
  /** Templates of the `command` enforcer. */
  command: CommandEnforcerOptions | null;
  /** Sharing decisions with other nodes through Redis; null when not configured. */
  fleet: FleetOptions | null;
  /** Global `allowlist:` entries (addresses, host:, spf:, file:). */
  allowlist?: AllowlistEntry[];
  /** Resolver for allowlist host names and SPF domains. */
  dns?: DnsOptions;
}

/** Where a value came from, for `file:line:column` messages. */
interface Located {
  file: string;
  doc: Document;
  lines: LineCounter;
}

const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: false, verbose: true });
ajv.addFormat('duration', { validate: (v: string | number) => parseDuration(v) !== null, type: 'string' });
ajv.addFormat('bantime', { validate: (v: string | number) => parseBantime(v) !== undefined, type: 'string' });
ajv.addFormat('target', (v: string) => parseNetwork(v) !== null);
ajv.addFormat('syslog-listen', (v: string) => parseSyslogListen(v) !== null);
ajv.addFormat('redis-url', (v: string) => isRedisUrl(v));
ajv.addFormat('listen', (v: string) => parseListen(v) !== null);
ajv.addFormat('rate', (v: string) => parseRate(v) !== null);
ajv.addFormat('journal-wake', (v: string) => parseJournalWake(v) !== undefined);
ajv.addFormat('percent', { validate: (v: string | number) => parsePercent(v) !== null, type: 'string' });
const validate = ajv.compile(configSchema);

/**
 * Loads the main config file plus `conf.d/*.yaml` beside it (see configFiles);
 * a missing main file at the default path means the embedded defaults.
 */
export function loadConfig(path: string = DEFAULT_CONFIG_PATH, options: { requireFile?: boolean } = {}): Config {
  return configFromFiles(configFiles(path, options).map((f) => ({ file: f, text: readFileSync(f, 'utf8') })));
}

/** Builds the configuration from YAML texts (exposed for tests and `check`). */
export function configFromFiles(inputs: Array<{ file: string; text: string }>): Config {
  const errors: ConfigError[] = [];
  const merged: Record<string, unknown> = {};
  const origin = new Map<string, Located>(); // "jails.sshd" → where it was last set
  for (const { file, text } of inputs) {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      errors.push(new ConfigError(file, pos.line, pos.col, `YAML syntax: ${e.message.split('\n')[0]}`));
    }
    if (doc.errors.length) continue;
    const data: unknown = doc.toJS() ?? {};
    const loc: Located = { file, doc, lines };
    if (!validate(data)) {
      // `if` only says which branch (e.g. plain bantime or growth rule) failed; that branch's own errors say how.
      for (const e of validate.errors ?? []) if (e.keyword !== 'if') errors.push(schemaError(loc, e));
      continue;
    }
    mergeInto(merged, data as Record<string, unknown>, loc, origin, '');
  }
  if (errors.length) throw new ConfigErrors(dedupe(errors));
  const config = buildConfig(inputs.map((i) => i.file), merged, origin, errors);
  if (errors.length) throw new ConfigErrors(dedupe(errors));
  return config;
}

function mergeInto(target: Record<string, unknown>, src: Record<string, unknown>, loc: Located, origin: Map<string, Located>, prefix: string): void {
  for (const [k, v] of Object.entries(src)) {
    const key = prefix ? `${prefix}.${k}` : k;
    origin.set(key, loc);
    const existing = target[k];
    // Jails and maps merge key by key across files; lists and scalars are replaced.
    if (v && typeof v === 'object' && !Array.isArray(v) && existing && typeof existing === 'object' && !Array.isArray(existing)) {
      mergeInto(existing as Record<string, unknown>, v as Record<string, unknown>, loc, origin, key);
    } else {
      target[k] = v && typeof v === 'object' && !Array.isArray(v) ? structuredClone(v) : v;
      if (v && typeof v === 'object' && !Array.isArray(v)) recordOrigins(v as Record<string, unknown>, loc, origin, key);
    }
  }
}

function recordOrigins(v: Record<string, unknown>, loc: Located, origin: Map<string, Located>, prefix: string): void {
  for (const [k, child] of Object.entries(v)) {
    origin.set(`${prefix}.${k}`, loc);
    if (child && typeof child === 'object' && !Array.isArray(child)) recordOrigins(child as Record<string, unknown>, loc, origin, `${prefix}.${k}`);
  }
}

function position(loc: Located, path: Array<string | number>, wantKey = false): { line: number; col: number } {
  // Walk down as far as the path exists; point at the key when asked (unknown keys, missing values).
  let node: unknown = loc.doc.contents;
  let offset = 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      offset = (isScalar(pair.key) && pair.key.range ? pair.key.range[0] : offset);
      if (wantKey && seg === path[path.length - 1]) return loc.lines.linePos(offset);
      node = pair.value;
      const r = (node as { range?: [number, number, number] } | null)?.range;
      if (r) offset = r[0];
    } else if (node && typeof node === 'object' && 'items' in node && typeof seg === 'number') {
      node = (node as { items: unknown[] }).items[seg];
      const r = (node as { range?: [number, number, number] } | null)?.range;
      if (r) offset = r[0];
    } else {
      break;
    }
  }
  return loc.lines.linePos(offset);
}

function pathOf(instancePath: string): Array<string | number> {
  if (!instancePath) return [];
  return instancePath.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describePath(path: Array<string | number>): string {
  if (path.length === 0) return 'the top level';
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

function schemaError(loc: Located, e: ErrorObject): ConfigError {
  const path = pathOf(e.instancePath);
  const where = describePath(path);
  let message: string;
  let pos = position(loc, path);
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = allowedKeys(e.schemaPath);
      pos = position(loc, [...path, extra], true);
      message = `unknown key "${extra}" in ${where}${suggest(extra, allowed)}; allowed keys: ${allowed.join(', ')}`;
      break;
    }
    case 'enum':
      message = `${where}: ${JSON.stringify(e.data)} is not allowed; use one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
      break;
    case 'format': {
      const f = (e.params as { format: string }).format;
      const help = f === 'rate' ? RATE_HELP : f === 'percent' ? PERCENT_HELP : f === 'syslog-listen' ? SYSLOG_LISTEN_HELP : f === 'redis-url' ? 'a Redis URL such as redis://127.0.0.1:6379 or rediss://user:password@redis.example.org:6380' : f === 'duration' ? DURATION_HELP : f === 'bantime' ? `${DURATION_HELP}, or -1/permanent` : f === 'listen' ? 'HOST:PORT such as 127.0.0.1:9470, [::1]:9470 or :9470' : f === 'journal-wake' ? JOURNAL_WAKE_HELP : 'an IPv4 or IPv6 address or CIDR such as 192.0.2.0/24 or 2001:db8::/32';
      message = `${where}: ${JSON.stringify(e.data)} is not valid; expected ${help}`;
      break;
    }
    case 'type':
      message = `${where}: expected ${(e.params as { type: string | string[] }).type} but found ${Array.isArray(e.data) ? 'a list' : e.data === null ? 'nothing' : typeof e.data}`;
      break;
    case 'propertyNames':
      message = `${where}: invalid name; names use letters, digits, "_", "-", "." (journal fields: upper-case like _SYSTEMD_UNIT), at most 31 characters`;
      break;
    case 'pattern': {
      const name = String(e.data);
      pos = position(loc, [...path.slice(0, -1), name], true);
      message = `"${name}" is not a valid name here; names use letters, digits, "_", "-", "." (journal fields: upper-case like _SYSTEMD_UNIT), at most 31 characters`;
      break;
    }
    case 'minimum':
    case 'maximum':
      message = `${where}: ${JSON.stringify(e.data)} is out of range; it must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${(e.params as { limit: number }).limit}`;
      break;
    case 'minProperties':
    case 'maxProperties':
      message = `${where}: a source is one of { file: PATH }, { journal: { FIELD: VALUE } }, { syslog: { listen: URL, allow: [ADDRESSES] } } or { stdin: true } (optionally with start_at)`;
      break;
    case 'anyOf':
      message = `${where}: ${JSON.stringify(e.data)} is not valid; expected ${e.schemaPath.includes('enforcer') ? 'an enforcer name (nftables, iptables, pf, command, dry-run) or a list of them' : 'a string or a list of strings'}`;
      break;
    default:
      message = `${where}: ${e.message ?? 'invalid value'}`;
  }
  return new ConfigError(loc.file, pos.line, pos.col, message);
}

function allowedKeys(schemaPath: string): string[] {
  // Resolve the schema object the error refers to ("#/properties/jails/additionalProperties/additionalProperties").
  let node: unknown = configSchema;
  for (const seg of schemaPath.replace(/^#\//, '').split('/').slice(0, -1)) node = (node as Record<string, unknown>)[seg];
  const props = (node as { properties?: Record<string, unknown> }).properties ?? {};
  return Object.keys(props);
}

function suggest(word: string, candidates: string[]): string {
  let best = '';
  let bestDist = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDist) { best = c; bestDist = d; }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

function dedupe(errors: ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  return errors.filter((e) => (seen.has(e.message) ? false : (seen.add(e.message), true)));
}

type Raw = Record<string, unknown>;

function buildConfig(files: string[], raw: Raw, origin: Map<string, Located>, errors: ConfigError[]): Config {
  const defaults = (raw.defaults ?? {}) as Raw;
  const startAtEnd = (raw.start_at ?? 'end') === 'end';
  const jailsRaw = (raw.jails ?? {}) as Record<string, Raw>;
  const names = new Set([...Object.keys(BUILTIN_JAILS), ...Object.keys(jailsRaw)]);
  const jails: JailConfig[] = [];
  const defaultsAt = origin.get('defaults.bantime');
  if (defaultsAt) {
    bantimeOf(defaults.bantime, (path, message) => {
      const pos = position(defaultsAt, ['defaults', ...path], true);
      errors.push(new ConfigError(defaultsAt.file, pos.line, pos.col, `defaults.${path.join('.')}: ${message}`));
    });
  }
  for (const name of names) {
    const user = jailsRaw[name] ?? {};
    const builtin = BUILTIN_JAILS[name];
    const loc = origin.get(`jails.${name}`);
    const fail = (key: string | null, message: string): void => {
      if (!loc) return;
      const pos = key ? position(loc, ['jails', name, key], true) : position(loc, ['jails', name], true);
      errors.push(new ConfigError(loc.file, pos.line, pos.col, `jail "${name}": ${message}`));
    };
    const filters = (user.filters as string[] | undefined) ?? builtin?.filters;
    const enabled = (user.enabled as boolean | undefined) ?? builtin?.enabled ?? true;
    if (!filters) {
      fail(null, `is not a built-in jail, so it needs "filters:" (built-in filters: ${[...builtinFilters.keys()].join(', ')})`);
      continue;
    }
    for (const f of filters) {
      if (builtinFilters.has(f)) continue;
      if (!isFail2banFilterSpec(f)) {
        fail('filters', `unknown filter "${f}"; built-in filters: ${[...builtinFilters.keys()].join(', ')}; or a fail2ban filter as fail2ban:NAME[option=value] or /path/to/filter.conf[option=value]`);
        continue;
      }
      // Loaded now so a missing file or an untranslatable regex stops `check` and the daemon at start.
      if (enabled) {
        try {
          createFail2banFilter(f);
        } catch (e) {
          fail('filters', `fail2ban filter "${f}": ${(e as Error).message}`);
        }
      }
    }
    const sourcesRaw = (user.sources as Raw[] | undefined) ?? builtin?.sources;
    const failAt = (path: string[], message: string): void => {
      const at = origin.get(`jails.${name}.${path[0]}`) ?? loc;
      if (!at) return;
      const pos = position(at, ['jails', name, ...path], true);
      errors.push(new ConfigError(at.file, pos.line, pos.col, `jail "${name}": ${path.join('.')}: ${message}`));
    };
    if (name === RECIDIVE_JAIL) {
      for (const key of ['filters', 'sources', 'siege', 'slow']) {
        if (user[key] !== undefined) fail(key, `the recidive jail reads no logs (it counts the other jails' bans), so "${key}:" does not apply; remove it`);
      }
    } else if (!sourcesRaw || sourcesRaw.length === 0) {
      if (enabled) fail(null, 'has no "sources:"; add for example `sources: [{ file: /var/log/auth.log }]` or `{ journal: { _SYSTEMD_UNIT: ssh.service } }`');
    }
    const sources: SourceSpec[] = (sourcesRaw ?? []).map((s) => toSourceSpec(s, startAtEnd));
    const findtime = parseDuration((user.findtime ?? builtin?.findtime ?? defaults.findtime ?? DEFAULT_FINDTIME) as string)!;
    const ownBantime = user.bantime ?? builtin?.bantime;
    // A growth rule in `defaults:` was checked once, where it is written.
    const { bantime, growth: bantimeGrowth } = bantimeOf(ownBantime ?? defaults.bantime ?? DEFAULT_BANTIME, ownBantime === undefined ? () => {} : failAt);
    jails.push({
      name,
      enabled,
      sources,
      filters,
      programs: (user.programs as string[] | undefined) ?? [],
      maxretry: (user.maxretry ?? defaults.maxretry ?? builtin?.maxretry ?? DEFAULT_MAXRETRY) as number,
      findtime,
      bantime,
      ignoreip: ((user.ignoreip as string[] | undefined) ?? []).map((t) => parseNetwork(t)!),
      ports: (user.ports as number[] | undefined) ?? builtin?.ports ?? null,
      protocol: (user.protocol as JailConfig['protocol'] | undefined) ?? builtin?.protocol ?? 'tcp',
      action: (user.action as JailConfig['action'] | undefined) ?? 'drop',
      enforcers: user.enforcer === undefined ? [] : ([] as EnforcerName[]).concat(user.enforcer as EnforcerName | EnforcerName[]),
      flush: (user.flush as JailConfig['flush'] | undefined) ?? 'none',
      forward: (user.forward as boolean | undefined) ?? false,
      bantimeGrowth,
      escalate: escalationOf(user.escalate, failAt),
      siege: siegeOf(user.siege, failAt),
      slow: slowOf(user.slow, failAt),
      allowlist: allowlistOf(user.allowlist, dirname(origin.get(`jails.${name}.allowlist`)?.file ?? '.'), (path, message) => failAt(path.map(String), message), ['allowlist']),
      limits: limitsOf(user.limits, (path, message) => failAt(path.map(String), message)),
    });
  }
  checkSyslogReceivers(jails, origin, errors);
  const http = (raw.http ?? {}) as Raw;
  return {
    files,
    stateDir: (raw.state_dir as string | undefined) ?? DEFAULT_STATE_DIR,
    controlSocket: ((raw.control as Raw | undefined)?.socket as string | undefined) ?? DEFAULT_CONTROL_SOCKET,
    http: {
      enabled: (http.enabled as boolean | undefined) ?? true,
      listen: (http.listen as string | undefined) ?? '127.0.0.1:9470',
      tokenFile: (http.token_file as string | undefined) ?? null,
      token: (http.token as string | undefined) ?? null,
      certFile: (http.cert_file as string | undefined) ?? null,
      keyFile: (http.key_file as string | undefined) ?? null,
    },
    notify: notifyOptions((raw.notify ?? {}) as Raw, origin, errors),
    enforcer: (raw.enforcer as Config['enforcer'] | undefined) ?? 'auto',
    maxLineLength: (raw.max_line_length as number | undefined) ?? 16 * 1024,
    journalWakeMs: raw.journal_wake === undefined ? DEFAULT_JOURNAL_WAKE_MS : parseJournalWake(raw.journal_wake as string)!,
    startAtEnd,
    ignoreip: ((raw.ignoreip as string[] | undefined) ?? []).map((t) => parseNetwork(t)!),
    jails,
    command: raw.command ? commandOptions(raw.command as Raw) : null,
    fleet: raw.fleet ? fleetOptions(raw.fleet as Raw, jails, origin, errors) : null,
    allowlist: allowlistOf(raw.allowlist, dirname(origin.get('allowlist')?.file ?? '.'), topLevelFail(origin, errors), ['allowlist']),
    dns: dnsOf(raw.dns, topLevelFail(origin, errors)),
  };
}

/** Reports a problem at a top-level key's value (`allowlist`, `dns`), for `file:line:column` messages. */
function topLevelFail(origin: Map<string, Located>, errors: ConfigError[]): (path: Array<string | number>, message: string) => void {
  return (path, message) => {
    const loc = origin.get(String(path[0]));
    if (!loc) return;
    const pos = position(loc, path, typeof path[path.length - 1] === 'string');
    errors.push(new ConfigError(loc.file, pos.line, pos.col, `${path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[')}: ${message}`));
  };
}

/** Jails sharing a syslog receiver (same `listen`) must agree on its TLS settings. */
function checkSyslogReceivers(jails: readonly JailConfig[], origin: Map<string, Located>, errors: ConfigError[]): void {
  const first = new Map<string, { jail: string; tls: string }>();
  for (const jail of jails) {
    jail.sources.forEach((spec, i) => {
      if (spec.kind !== 'syslog') return;
      const loc = origin.get(`jails.${jail.name}`);
      const fail = (message: string): void => {
        if (!loc) return;
        const pos = position(loc, ['jails', jail.name, 'sources', i, 'syslog'], false);
        errors.push(new ConfigError(loc.file, pos.line, pos.col, `jail "${jail.name}": syslog source ${spec.listen}: ${message}`));
      };
      const tls = spec.listen.startsWith('tls:') !== (spec.tls !== null);
      if (tls) fail(spec.tls === null ? 'tls:// needs `tls: { cert: FILE, key: FILE }` (and `ca: FILE` to require client certificates)' : '`tls:` settings need a tls:// listen address');
      const key = JSON.stringify(spec.tls);
      const seen = first.get(spec.listen);
      if (!jail.enabled) return;
      if (seen === undefined) first.set(spec.listen, { jail: jail.name, tls: key });
      else if (seen.tls !== key) fail(`jail "${seen.jail}" listens on the same address with other tls: settings; one receiver serves both, so give them the same cert, key and ca`);
    });
  }
}

/** `fleet:` with defaults; also adds the jail remote bans are enforced in (FLEET_JAIL). */
function fleetOptions(f: Raw, jails: JailConfig[], origin: Map<string, Located>, errors: ConfigError[]): FleetOptions {
  const fail = (key: string, message: string): void => {
    const loc = origin.get('fleet');
    if (!loc) return;
    const pos = position(loc, ['fleet', key], true);
    errors.push(new ConfigError(loc.file, pos.line, pos.col, `fleet.${key}: ${message}`));
  };
  const enabled = jails.filter((j) => j.enabled).map((j) => j.name);
  const known = (key: string, names: string[] | undefined, must: 'exist' | 'be enabled'): void => {
    for (const n of names ?? []) {
      if (!(must === 'exist' ? jails.some((j) => j.name === n) : enabled.includes(n))) {
        fail(key, `no ${must === 'exist' ? '' : 'enabled '}jail named "${n}"; ${must === 'exist' ? 'jails' : 'enabled jails'}: ${(must === 'exist' ? jails.map((j) => j.name) : enabled).join(', ') || 'none'}`);
      }
    }
  };
  if (jails.some((j) => j.name === FLEET_JAIL)) fail('redis', `a jail is named "${FLEET_JAIL}", the name of the jail remote bans are enforced in; rename that jail`);
  const share = (f.share as FleetOptions['share'] | undefined) ?? 'all';
  if (Array.isArray(share)) known('share', share, 'exist');
  known('count', f.count as string[] | undefined, 'be enabled');
  let password = (f.password as string | undefined) ?? null;
  if (f.password_file !== undefined) {
    try {
      password = readFileSync(f.password_file as string, 'utf8').trim();
    } catch (err) {
      fail('password_file', `cannot read ${f.password_file as string}: ${(err as Error).message}`);
    }
  }
  const tls = f.tls as Raw | undefined;
  const apply = (f.apply ?? {}) as Raw;
  const ports = (apply.ports as number[] | undefined) ?? null;
  // Remote bans bring their own end time; findtime and bantime only matter for a manual `ban --jail fleet`.
  jails.push({
    name: FLEET_JAIL, enabled: true, sources: [], filters: [], programs: [], maxretry: 1, ignoreip: [],
    findtime: parseDuration(DEFAULT_FINDTIME)!, bantime: parseBantime(DEFAULT_BANTIME)!,
    ports, protocol: 'all', action: 'drop', enforcers: [], flush: 'none', forward: false,
  });
  return {
    redis: f.redis as string,
    node: (f.node as string | undefined) ?? hostname(),
    share,
    apply: { jails: (apply.jails as string[] | undefined) ?? null, ports },
    trust: (f.trust as string[] | undefined) ?? null,
    count: (f.count as string[] | undefined) ?? [],
    username: (f.username as string | undefined) ?? null,
    password,
    tls: tls ? { ca: (tls.ca as string | undefined) ?? null, cert: (tls.cert as string | undefined) ?? null, key: (tls.key as string | undefined) ?? null, servername: (tls.servername as string | undefined) ?? null } : null,
    prefix: (f.prefix as string | undefined) ?? DEFAULT_PREFIX,
    streamMaxlen: (f.stream_maxlen as number | undefined) ?? DEFAULT_STREAM_MAXLEN,
  };
}

/** `notify:` with defaults; secrets read from their files, webhook templates checked by rendering a sample. */
function notifyOptions(n: Raw, origin: Map<string, Located>, errors: ConfigError[]): NotifyOptions {
  const fail = (path: Array<string | number>, message: string): void => {
    const loc = origin.get('notify');
    if (!loc) return;
    const pos = position(loc, ['notify', ...path], true);
    errors.push(new ConfigError(loc.file, pos.line, pos.col, `notify.${describePath(path)}: ${message}`));
  };
  const kinds = (v: unknown, fallback: NoticeKind[]): NoticeKind[] => (v as NoticeKind[] | undefined) ?? fallback;
  let email: NotifyOptions['email'] = null;
  const e = n.email as Raw | undefined;
  if (e) {
    const smtp = e.smtp as Raw;
    const tls = (smtp.tls as 'starttls' | 'implicit' | 'none' | undefined) ?? 'starttls';
    let password = (smtp.password as string | undefined) ?? null;
    if (smtp.password_file !== undefined) {
      try {
        password = readFileSync(smtp.password_file as string, 'utf8').trim();
      } catch (err) {
        fail(['email', 'smtp', 'password_file'], `cannot read ${smtp.password_file as string}: ${(err as Error).message}`);
      }
    }
    if (password !== null && smtp.user === undefined) fail(['email', 'smtp'], 'a password needs a "user:" to log in with');
    email = {
      to: ([] as string[]).concat(e.to as string | string[]),
      from: (e.from as string | undefined) ?? `portcullis@${hostname()}`,
      smtp: {
        host: smtp.host as string,
        port: (smtp.port as number | undefined) ?? (tls === 'implicit' ? 465 : 587),
        tls,
        user: (smtp.user as string | undefined) ?? null,
        password,
        caFile: (smtp.ca_file as string | undefined) ?? null,
        verify: (smtp.verify as boolean | undefined) ?? true,
      },
      on: kinds(e.on, ['start', 'stop', 'ban', 'siege']),
      bans: (e.bans as 'each' | 'digest' | undefined) ?? 'each',
      digestEveryMs: parseDuration((e.digest_every ?? '10m') as string)!,
      maxPerHour: (e.max_per_hour as number | undefined) ?? 20,
      maxLines: (e.max_lines as number | undefined) ?? 10,
      subjectPrefix: (e.subject_prefix as string | undefined) ?? '[Portcullis]',
    };
  }
  const webhooks = ((n.webhooks as Raw[] | undefined) ?? []).map((w, i) => {
    if (!/^https?:\/\/[^/\s]+/.test(w.url as string)) fail(['webhooks', i, 'url'], `${JSON.stringify(w.url)} is not an http:// or https:// URL`);
    const template = (w.template as string | undefined) ?? null;
    if (template !== null) {
      try {
        JSON.parse(renderTemplate(template, sampleNotice()));
      } catch (err) {
        fail(['webhooks', i, 'template'], `is not JSON once its placeholders are filled in (${(err as Error).message}); write placeholders inside strings, e.g. '{"text": "{summary}"}'`);
      }
    }
    return {
      url: w.url as string,
      on: kinds(w.on, NOTICE_KINDS.filter((k) => k !== 'unban')),
      template,
      headers: (w.headers as Record<string, string> | undefined) ?? {},
      retries: (w.retries as number | undefined) ?? 5,
      backoffMs: parseDuration((w.backoff ?? '1s') as string)!,
      timeoutMs: parseDuration((w.timeout ?? '10s') as string)!,
      maxQueue: (w.max_queue as number | undefined) ?? 10_000,
    };
  });
  return { email, webhooks };
}

function commandOptions(c: Raw): CommandEnforcerOptions {
  return {
    ban: c.ban as CommandTemplate,
    unban: c.unban as CommandTemplate,
    ...(c.setup_jail ? { setupJail: c.setup_jail as CommandTemplate } : {}),
    ...(c.teardown_jail ? { teardownJail: c.teardown_jail as CommandTemplate } : {}),
    ...(c.timeout !== undefined ? { timeoutMs: parseDuration(c.timeout as string)! } : {}),
  };
}

function toSourceSpec(s: Raw, globalStartAtEnd: boolean): SourceSpec {
  if (s.file !== undefined) {
    const startAtEnd = s.start_at === undefined ? globalStartAtEnd : s.start_at === 'end';
    return { kind: 'file', paths: ([] as string[]).concat(s.file as string | string[]), startAtEnd };
  }
  if (s.journal !== undefined) {
    const matches: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(s.journal as Record<string, string | string[]>)) matches[k] = ([] as string[]).concat(v);
    return { kind: 'journal', matches };
  }
  if (s.syslog !== undefined) {
    const spec = s.syslog as { listen: string; allow: string[]; tls?: { cert: string; key: string; ca?: string } };
    return {
      kind: 'syslog',
      listen: parseSyslogListen(spec.listen)!.url,
      allow: spec.allow.map((t) => parseNetwork(t)!),
      tls: spec.tls ? { cert: spec.tls.cert, key: spec.tls.key, ca: spec.tls.ca ?? null } : null,
    };
  }
  return { kind: 'stdin' };
}

/** The configuration used by `replay` and `test-filter` without --config: every built-in jail enabled. */
export function replayDefaults(): Config {
  const config = configFromFiles([]);
  for (const jail of config.jails) jail.enabled = true;
  return config;
}

export function describeConfigSource(config: Config): string {
  return config.files.length ? config.files.map((f) => basename(f)).join(', ') : 'embedded defaults';
}
