import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import AjvModule, { type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, type Document, isMap, isPair, isScalar } from 'yaml';
import { parseNetwork, type Network } from '../core/address.js';
import { DURATION_HELP, parseBantime, parseDuration } from '../core/duration.js';
import { ConfigError, ConfigErrors } from '../core/errors.js';
import { builtinFilters } from '../filters/index.js';
import { BUILTIN_JAILS, DEFAULT_BANTIME, DEFAULT_FINDTIME, DEFAULT_MAXRETRY } from './builtin-jails.js';
import { configSchema } from './schema.js';
import type { CommandEnforcerOptions, CommandTemplate } from '../enforcers/command.js';

export const DEFAULT_CONFIG_PATH = '/etc/portcullis/portcullis.yaml';

export type SourceSpec =
  | { kind: 'file'; paths: string[]; startAtEnd: boolean }
  | { kind: 'journal'; matches: Record<string, string[]> }
  | { kind: 'stdin' };

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
}

export interface Config {
  /** Files the configuration was read from (empty = embedded defaults only). */
  files: string[];
  stateDir: string;
  controlSocket: string;
  http: { listen: string; tokenFile: string | null; token: string | null };
  enforcer: EnforcerName | 'auto';
  maxLineLength: number;
  startAtEnd: boolean;
  ignoreip: Network[];
  jails: JailConfig[];
  /** Templates of the `command` enforcer. */
  command: CommandEnforcerOptions | null;
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
const validate = ajv.compile(configSchema);

/**
 * Loads the main config file plus `conf.d/*.yaml` beside it (in name order;
 * later files override earlier ones key by key). A missing main file at the
 * default path means the embedded defaults.
 */
export function loadConfig(path: string = DEFAULT_CONFIG_PATH, options: { requireFile?: boolean } = {}): Config {
  const files: string[] = [];
  if (existsSync(path)) files.push(path);
  else if (options.requireFile) throw new ConfigError(path, 1, 1, 'the configuration file does not exist; create it or pass --config with an existing file');
  const confd = join(path, '..', 'conf.d');
  if (existsSync(confd)) {
    for (const name of readdirSync(confd).sort()) if (/\.ya?ml$/.test(name)) files.push(join(confd, name));
  }
  return configFromFiles(files.map((f) => ({ file: f, text: readFileSync(f, 'utf8') })));
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
      for (const e of validate.errors ?? []) errors.push(schemaError(loc, e));
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
      const help = f === 'duration' ? DURATION_HELP : f === 'bantime' ? `${DURATION_HELP}, or -1/permanent` : 'an IPv4 or IPv6 address or CIDR such as 192.0.2.0/24 or 2001:db8::/32';
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
      message = `${where}: a source is one of { file: PATH }, { journal: { FIELD: VALUE } } or { stdin: true } (optionally with start_at)`;
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
      if (!builtinFilters.has(f)) fail('filters', `unknown filter "${f}"; built-in filters: ${[...builtinFilters.keys()].join(', ')}`);
    }
    const sourcesRaw = (user.sources as Raw[] | undefined) ?? builtin?.sources;
    if (!sourcesRaw || sourcesRaw.length === 0) {
      if (enabled) fail(null, 'has no "sources:"; add for example `sources: [{ file: /var/log/auth.log }]` or `{ journal: { _SYSTEMD_UNIT: ssh.service } }`');
    }
    const sources: SourceSpec[] = (sourcesRaw ?? []).map((s) => toSourceSpec(s, startAtEnd));
    const findtime = parseDuration((user.findtime ?? defaults.findtime ?? DEFAULT_FINDTIME) as string)!;
    const bantime = parseBantime((user.bantime ?? defaults.bantime ?? DEFAULT_BANTIME) as string)!;
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
    });
  }
  const http = (raw.http ?? {}) as Raw;
  return {
    files,
    stateDir: (raw.state_dir as string | undefined) ?? '/var/lib/portcullis',
    controlSocket: ((raw.control as Raw | undefined)?.socket as string | undefined) ?? '/run/portcullis.sock',
    http: { listen: (http.listen as string | undefined) ?? '127.0.0.1:9470', tokenFile: (http.token_file as string | undefined) ?? null, token: (http.token as string | undefined) ?? null },
    enforcer: (raw.enforcer as Config['enforcer'] | undefined) ?? 'auto',
    maxLineLength: (raw.max_line_length as number | undefined) ?? 16 * 1024,
    startAtEnd,
    ignoreip: ((raw.ignoreip as string[] | undefined) ?? []).map((t) => parseNetwork(t)!),
    jails,
    command: raw.command ? commandOptions(raw.command as Raw) : null,
  };
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
