import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseNetwork } from '../core/address.js';
import { ConfigStack, Fail2banConfigError } from './config-stack.js';
import { readFilter, type FilterDefinition } from './filter-reader.js';
import { extractOptions, OptionSyntaxError, splitWithOptions, splitWords } from './options.js';

/**
 * Reads fail2ban's jails (`jail.conf`, `jail.d/*.conf`, `jail.local`,
 * `jail.d/*.local`, with their includes such as `paths-debian.conf`) and
 * describes each enabled jail in Portcullis' terms, with everything that
 * cannot be carried over listed as a note.
 */

export type EnforcerName = 'nftables' | 'iptables' | 'pf';

export interface ImportedJail {
  name: string;
  enabled: boolean;
  /** `/…/filter.d/NAME.conf[options]`, ready for `filters:`. */
  filter: string | null;
  definition: FilterDefinition | null;
  sources: Array<{ file: string[] } | { journal: Record<string, string[]> }>;
  maxretry: number | null;
  findtime: string | null;
  bantime: string | null;
  ignoreip: string[];
  ports: number[] | null;
  protocol: 'tcp' | 'udp' | 'all' | null;
  enforcer: EnforcerName | null;
  /** Things Portcullis does differently or not at all, for the admin to review. */
  notes: string[];
  /** Actions we have no equivalent for (the jail needs --accept-unknown-actions). */
  unknownActions: string[];
}

export interface JailsImport {
  dir: string;
  files: string[];
  jails: ImportedJail[];
  problems: string[];
}

const ACTION_MAP: Array<[RegExp, EnforcerName | 'mail' | 'none']> = [
  [/^nftables/, 'nftables'],
  [/^iptables/, 'iptables'],
  [/^pf$/, 'pf'],
  [/^(sendmail|mail)/, 'mail'],
  [/^dummy$/, 'none'],
];

export function readJails(dir: string): JailsImport {
  const root = resolve(dir);
  const stack = new ConfigStack();
  if (!stack.readResource(join(root, 'jail'))) throw new Fail2banConfigError(join(root, 'jail.conf'), 0, `no jail.conf or jail.local in ${root}`);
  stack.setDefault('fail2ban_version', '1.0.2');
  stack.setDefault('fail2ban_confpath', root);
  const out: JailsImport = { dir: root, files: [...stack.files], jails: [], problems: stack.problems.map((p) => p.message) };
  for (const section of stack.sectionNames()) {
    if (section === 'Definition') continue;
    try {
      out.jails.push(readJail(stack, section, root));
    } catch (e) {
      out.problems.push(`[${section}]: ${(e as Error).message}`);
    }
  }
  return out;
}

function bool(v: string | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  return /^(1|yes|true|on)$/i.test(v.trim());
}

function readJail(stack: ConfigStack, name: string, root: string): ImportedJail {
  const get = (o: string): string | undefined => stack.tryGet(name, o);
  const jail: ImportedJail = {
    name, enabled: bool(get('enabled'), false), filter: null, definition: null, sources: [], maxretry: null, findtime: null,
    bantime: null, ignoreip: [], ports: null, protocol: null, enforcer: null, notes: [], unknownActions: [],
  };
  if (!jail.enabled) return jail;
  const backend = (get('backend') ?? 'auto').trim();
  const filterText = get('filter') ?? '';
  const jailOptions = new Map<string, string>();
  for (const o of ['usedns', 'prefregex', 'ignoreregex', 'failregex', 'maxlines', 'datepattern', 'journalmatch', 'logtimezone', 'logencoding']) {
    if (!stack.ownOptions(name).includes(o)) continue;
    const v = get(o);
    if (v !== undefined) jailOptions.set(o, v);
  }
  if (filterText.trim()) {
    let spec: { name: string; options: Map<string, string> };
    try {
      spec = extractOptions(filterText);
    } catch (e) {
      throw new Error(`filter = ${filterText}: ${(e as OptionSyntaxError).message}`);
    }
    const def = readFilter(spec, { fail2banDir: root, backend, jailOptions });
    jail.definition = def;
    const opts = new Map(spec.options);
    // Jail options fail2ban applies to the filter travel as filter options.
    for (const o of ['datepattern', 'maxlines', 'logtimezone', 'usedns'] as const) if (jailOptions.has(o)) opts.set(o, jailOptions.get(o)!);
    if (backend.startsWith('systemd') && !opts.has('logtype')) opts.set('logtype', 'journal');
    for (const o of ['failregex', 'ignoreregex', 'prefregex', 'journalmatch']) {
      if (jailOptions.has(o)) jail.notes.push(`${o} set in the jail itself is not carried over (put it in a filter.d/*.local file instead)`);
    }
    const file = existsSync(join(root, 'filter.d', `${spec.name}.conf`)) ? join(root, 'filter.d', `${spec.name}.conf`) : join(root, 'filter.d', `${spec.name}.local`);
    jail.filter = `${file}${opts.size ? `[${[...opts].map(([k, v]) => `${k}=${quote(v)}`).join(', ')}]` : ''}`;
  } else {
    jail.notes.push('no filter: the jail has nothing to match and is left disabled');
    jail.enabled = false;
  }
  if (backend.startsWith('systemd')) {
    const groups = jail.definition?.journalmatch ?? [];
    const matches: Record<string, string[]> = {};
    const first = splitJournalGroups(groups)[0] ?? [];
    for (const m of first) {
      const eq = m.indexOf('=');
      if (eq > 0) (matches[m.slice(0, eq)] ??= []).push(m.slice(eq + 1));
    }
    if (splitJournalGroups(groups).length > 1) jail.notes.push(`journalmatch ${groups.map((g) => g.join(' ')).join(' | ')}: only the first alternative (${first.join(' ')}) is carried over`);
    if (Object.keys(matches).length === 0) jail.notes.push('backend = systemd without journalmatch: reading the whole journal');
    jail.sources.push({ journal: matches });
  } else {
    if (!/^(auto|polling|pyinotify|gamin)$/.test(backend)) jail.notes.push(`backend = ${backend} is read as files`);
    const lines = (get('logpath') ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
    if (lines.some((l) => /\stail$/.test(l))) jail.notes.push('logpath "tail" markers are dropped (Portcullis reads new lines from the end on first start anyway)');
    const paths = lines.map((l) => l.replace(/\s+(tail|head)$/, ''));
    if (paths.length === 0) jail.notes.push('no logpath');
    jail.sources.push({ file: paths });
  }
  const maxretry = get('maxretry');
  if (maxretry !== undefined) jail.maxretry = Number(maxretry);
  jail.findtime = seconds(get('findtime'), jail, 'findtime');
  jail.bantime = seconds(get('bantime'), jail, 'bantime');
  if (bool(get('bantime.increment'), false)) {
    const parts = ['factor', 'formula', 'multipliers', 'maxtime', 'rndtime', 'overalljails'].map((k) => [k, get(`bantime.${k}`)]).filter(([, v]) => v);
    jail.notes.push(`bantime.increment (${parts.map(([k, v]) => `${k}=${v}`).join(', ') || 'defaults'}) is not carried over: bans use the fixed bantime`);
  }
  for (const entry of splitWords(get('ignoreip'))) addIgnore(jail, entry);
  if (!bool(get('ignoreself'), true)) jail.notes.push('ignoreself = false is not carried over: Portcullis never bans the host\'s own addresses');
  const ignorecommand = get('ignorecommand')?.trim();
  if (ignorecommand) jail.notes.push(`ignorecommand (${ignorecommand}) is not supported; allowlist the addresses instead`);
  const port = get('port');
  if (port !== undefined) jail.ports = ports(port, jail);
  const protocol = get('protocol')?.trim();
  if (protocol === 'tcp' || protocol === 'udp' || protocol === 'all') jail.protocol = protocol;
  else if (protocol) jail.notes.push(`protocol = ${protocol} is not supported (tcp, udp, all)`);
  mapActions(get('action') ?? '', jail);
  const usedns = jail.definition?.usedns ?? 'warn';
  if (usedns === 'yes') jail.notes.push('usedns = yes: host names in log lines are never resolved and banned (an attacker controls reverse DNS)');
  return jail;
}

function quote(v: string): string {
  return /[,\]"]/.test(v) ? `'${v}'` : /'/.test(v) ? `"${v}"` : v;
}

function splitJournalGroups(groups: string[][]): string[][] {
  const out: string[][] = [];
  for (const g of groups) {
    let cur: string[] = [];
    for (const w of g) {
      if (w === '+') { out.push(cur); cur = []; } else cur.push(w);
    }
    out.push(cur);
  }
  return out.filter((g) => g.length);
}

/** fail2ban durations (`10m`, `1h 30m`, `3600`, `-1`) in Portcullis' syntax. */
function seconds(v: string | undefined, jail: ImportedJail, what: string): string | null {
  if (v === undefined) return null;
  const s = v.trim().toLowerCase();
  if (s === '-1') return '-1';
  if (/^\d+$/.test(s)) return `${s}s`;
  const units: Record<string, number> = { s: 1, sec: 1, second: 1, seconds: 1, m: 60, mi: 60, min: 60, minute: 60, minutes: 60, h: 3600, hour: 3600, hours: 3600, d: 86400, day: 86400, days: 86400, w: 604800, week: 604800, weeks: 604800, mo: 2629800, mon: 2629800, month: 2629800, months: 2629800, y: 31557600, year: 31557600, years: 31557600 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)\s*([a-z]*)/g;
  let m: RegExpExecArray | null;
  let consumed = '';
  while ((m = re.exec(s)) !== null) {
    const unit = m[2] || 's';
    if (!(unit in units)) break;
    total += Number(m[1]) * units[unit]!;
    consumed += m[0];
  }
  if (consumed.replace(/\s/g, '') !== s.replace(/[\s+]/g, '')) {
    jail.notes.push(`${what} = ${v} is an expression Portcullis cannot read; using the default`);
    return null;
  }
  return `${Math.round(total)}s`;
}

function addIgnore(jail: ImportedJail, entry: string): void {
  if (entry.startsWith('file:')) {
    const path = entry.slice(5);
    try {
      for (const w of splitWords(readFileSync(path, 'utf8').replace(/#.*$/gm, ''))) addIgnore(jail, w);
      jail.notes.push(`ignoreip ${entry}: its current entries were copied (later changes to the file are not followed)`);
    } catch {
      jail.notes.push(`ignoreip ${entry}: cannot read the file`);
    }
    return;
  }
  if (parseNetwork(entry) !== null) jail.ignoreip.push(entry);
  else jail.notes.push(`ignoreip ${entry}: host names are not carried over; add it to allowlist: [{ host: ${entry} }]`);
}

function ports(text: string, jail: ImportedJail): number[] | null {
  const out: number[] = [];
  let services: Map<string, number> | null = null;
  for (const p of splitWords(text)) {
    const range = /^(\d+):(\d+)$/.exec(p);
    if (range) {
      const lo = Number(range[1]), hi = Number(range[2]);
      if (lo <= 1 && hi >= 65535) return null;
      if (hi - lo > 64) { jail.notes.push(`port range ${p} is too wide to list: the ban covers all ports`); return null; }
      for (let i = Math.max(lo, 1); i <= hi; i++) out.push(i);
    } else if (/^\d+$/.test(p)) {
      out.push(Number(p));
    } else {
      services ??= readServices();
      const n = services.get(p);
      if (n === undefined) { jail.notes.push(`port ${p} is not a known service name: the ban covers all ports`); return null; }
      out.push(n);
    }
  }
  return out.length ? [...new Set(out)] : null;
}

function readServices(): Map<string, number> {
  const map = new Map<string, number>();
  try {
    for (const line of readFileSync('/etc/services', 'utf8').split('\n')) {
      const m = /^([\w-]+)\s+(\d+)\/(tcp|udp)((?:\s+[\w-]+)*)/.exec(line);
      if (!m) continue;
      for (const n of [m[1]!, ...m[4]!.trim().split(/\s+/).filter(Boolean)]) if (!map.has(n)) map.set(n, Number(m[2]));
    }
  } catch {
    // No /etc/services: only numeric ports.
  }
  for (const [n, p] of [['ssh', 22], ['http', 80], ['https', 443], ['smtp', 25], ['submission', 587], ['imap', 143], ['imaps', 993], ['pop3', 110], ['pop3s', 995]] as const) if (!map.has(n)) map.set(n, p);
  return map;
}

function mapActions(text: string, jail: ImportedJail): void {
  for (const entry of splitWithOptions(text)) {
    let name: string;
    try {
      name = extractOptions(entry).name;
    } catch {
      jail.notes.push(`action ${entry}: cannot be read`);
      continue;
    }
    const hit = ACTION_MAP.find(([re]) => re.test(name));
    if (!hit) {
      jail.unknownActions.push(name);
      continue;
    }
    const target = hit[1];
    if (target === 'mail') jail.notes.push(`action ${name} (e-mail) is not carried over: Portcullis' e-mail notifier is not available yet`);
    else if (target === 'none') continue;
    else if (jail.enforcer === null) jail.enforcer = target;
    else if (jail.enforcer !== target) jail.notes.push(`action ${name}: a second firewall (${target}) is not carried over; the jail uses ${jail.enforcer}`);
  }
}

