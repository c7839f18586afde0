import { basename, dirname, join, resolve } from 'node:path';
import { ConfigStack, Fail2banConfigError, MissingOption } from './config-stack.js';
import { OptionSyntaxError, extractOptions, substituteTags } from './options.js';

/**
 * Reads a fail2ban filter (`filter.d/NAME.conf` with its `.local`, `.d/`
 * and includes) the way fail2ban's FilterReader does: `[Definition]` options
 * interpolated with the filter's options (`sshd[mode=aggressive]`) taking
 * precedence, `[Init]` options as defaults for them, then `<tag>`
 * substitution (`<mdre-<mode>>`, `<lt_<logtype>/__prefix_line>`, `<known/…>`).
 */

/** A regex of the filter with where it was written, for error messages. */
export interface SourcedRegex {
  regex: string;
  file: string;
  line: number;
}

export interface FilterDefinition {
  /** The name the filter was asked for (`sshd`, or a path). */
  name: string;
  /** The main file (`…/filter.d/sshd.conf`). */
  file: string;
  /** Every file read, in merge order. */
  files: string[];
  options: Map<string, string>;
  failregex: SourcedRegex[];
  ignoreregex: SourcedRegex[];
  prefregex: SourcedRegex | null;
  datepattern: SourcedRegex | null;
  maxlines: number;
  usedns: string;
  journalmatch: string[][];
  logtype: string;
  /** Not fail2ban filter options but jail ones, accepted here so a native config can carry them. */
  logtimezone: string | null;
  logencoding: string | null;
}

export const FILTER_OPTIONS = ['usedns', 'prefregex', 'ignoreregex', 'failregex', 'maxlines', 'datepattern', 'journalmatch'] as const;

export const DEFAULT_FAIL2BAN_DIR = '/etc/fail2ban';

/** `sshd`, `sshd[mode=aggressive]`, `/path/to/filter.d/sshd.conf[mode=…]`. */
export interface FilterSpec {
  /** The filter name or path as written. */
  name: string;
  options: Map<string, string>;
}

export function parseFilterSpec(text: string): FilterSpec {
  const { name, options } = extractOptions(text);
  return { name, options };
}

/** Where a filter spec's files are: a bare name lives in `DIR/filter.d/`. */
export function filterBase(name: string, fail2banDir: string): string {
  if (name.includes('/')) {
    const abs = resolve(name);
    return abs.replace(/\.(conf|local)$/, '');
  }
  return join(fail2banDir, 'filter.d', name.replace(/\.(conf|local)$/, ''));
}

export interface ReadFilterOptions {
  fail2banDir?: string;
  /** Options of the jail using the filter (they win over the filter's own). */
  jailOptions?: ReadonlyMap<string, string>;
  /** Sets `logtype` from the backend when neither the jail nor the filter does (fail2ban's applyAutoOptions). */
  backend?: string;
}

export function readFilter(spec: FilterSpec, opts: ReadFilterOptions = {}): FilterDefinition {
  const base = filterBase(spec.name, opts.fail2banDir ?? DEFAULT_FAIL2BAN_DIR);
  const stack = new ConfigStack();
  if (!stack.readResource(base)) {
    throw new Fail2banConfigError(`${base}.conf`, 0, `no fail2ban filter "${spec.name}": neither ${basename(base)}.conf nor ${basename(base)}.local exists in ${dirname(base)}`);
  }
  for (const p of stack.problems) throw p;
  const file = stack.files.find((f) => f.startsWith(base)) ?? `${base}.conf`;
  return definitionFrom(stack, spec, file, opts);
}

function definitionFrom(stack: ConfigStack, spec: FilterSpec, file: string, opts: ReadFilterOptions): FilterDefinition {
  const init = new Map<string, string>();
  for (const [k, v] of spec.options) init.set(k.toLowerCase(), v);
  if (opts.backend !== undefined && !init.has('logtype') && !stack.ownOptions('Definition').includes('logtype')) {
    init.set('logtype', opts.backend.startsWith('systemd') ? 'journal' : 'file');
  }
  // Variables for interpolation: the jail's options, then the filter's own options.
  const vars = new Map<string, string>(opts.jailOptions ?? []);
  for (const [k, v] of init) vars.set(k, v);
  const where = (option: string): { file: string; line: number } => {
    const loc = stack.locate('Definition', option);
    return { file: loc?.file ?? file, line: loc?.line ?? 0 };
  };
  const definition = new Map<string, string>();
  for (const name of FILTER_OPTIONS) {
    if (opts.jailOptions?.has(name)) continue;
    try {
      definition.set(name, stack.get('Definition', name, vars));
    } catch (e) {
      if (e instanceof MissingOption) continue;
      throw e;
    }
  }
  if (stack.hasSection('Init')) {
    for (const name of stack.ownOptions('Init')) {
      const value = stack.get('Init', name);
      if (!name.startsWith('known/')) init.set(`known/${name}`, value);
      if (!init.has(name)) init.set(name, value);
    }
  }
  const combined = new Map<string, string>([...definition, ...init]);
  const ignore = new Set<string>();
  for (const k of combined.keys()) {
    const cond = /^(\w+)\?/.exec(k);
    if (cond) ignore.add(cond[1]!);
  }
  const cache = new Map<string, string | undefined>();
  const lookup = (name: string): string | undefined => {
    if (cache.has(name)) return cache.get(name);
    let v: string | undefined;
    try {
      v = stack.getEx('Definition', name, vars);
    } catch (e) {
      if (!(e instanceof MissingOption) && !(e instanceof Fail2banConfigError)) throw e;
    }
    cache.set(name, v);
    return v;
  };
  let resolved: Map<string, string>;
  try {
    resolved = substituteTags(combined, lookup, ignore);
  } catch (e) {
    if (e instanceof OptionSyntaxError) throw new Fail2banConfigError(file, 0, e.message);
    throw e;
  }
  const regexLines = (option: string): SourcedRegex[] => {
    const value = resolved.get(option);
    if (value === undefined) return [];
    return value.split('\n').filter((r) => r !== '').map((regex) => ({ regex, ...sourceOf(stack, regex, where(option)) }));
  };
  const single = (option: string): SourcedRegex | null => {
    const value = resolved.get(option);
    return value ? { regex: value, ...where(option) } : null;
  };
  const maxlinesText = resolved.get('maxlines');
  const maxlines = maxlinesText === undefined || maxlinesText === '' ? 1 : Number(maxlinesText);
  if (!Number.isInteger(maxlines) || maxlines < 1) {
    throw new Fail2banConfigError(where('maxlines').file, where('maxlines').line, `maxlines must be a whole number of at least 1, not ${JSON.stringify(maxlinesText)}`);
  }
  const journalmatch = (resolved.get('journalmatch') ?? '').split('\n').map((s) => s.trim()).filter(Boolean).map(shellWords);
  const logtype = init.get('logtype') ?? lookup('logtype') ?? 'file';
  return {
    name: spec.name,
    file,
    files: [...stack.files],
    options: new Map(spec.options),
    failregex: regexLines('failregex'),
    ignoreregex: regexLines('ignoreregex'),
    prefregex: single('prefregex'),
    datepattern: single('datepattern'),
    maxlines,
    usedns: resolved.get('usedns') ?? opts.jailOptions?.get('usedns') ?? 'warn',
    journalmatch,
    logtype,
    logtimezone: spec.options.get('logtimezone') ?? opts.jailOptions?.get('logtimezone') ?? null,
    logencoding: spec.options.get('logencoding') ?? opts.jailOptions?.get('logencoding') ?? null,
  };
}

/**
 * The file and line a final regex most likely comes from: after
 * interpolation a regex is assembled from several options, so we look for
 * the written line that contributes its longest literal part.
 */
function sourceOf(stack: ConfigStack, regex: string, fallback: { file: string; line: number }): { file: string; line: number } {
  let best = fallback;
  let bestLength = 0;
  for (const section of ['Definition', 'DEFAULT', 'Init', ...stack.sectionNames()]) {
    const names = section === 'DEFAULT' ? stack.defaultNames() : stack.ownOptions(section);
    for (const name of names) {
      const loc = section === 'DEFAULT' ? stack.locate('DEFAULT', name) : stack.locate(section, name);
      if (!loc) continue;
      const lines = loc.value.split('\n');
      for (let i = 0; i < lines.length; i++) {
        for (const part of lines[i]!.split(/%\([^)]*\)s|<[^ <>]*>/)) {
          if (part.length > bestLength && regex.includes(part)) {
            bestLength = part.length;
            best = { file: loc.file, line: loc.lines[i] ?? loc.line };
          }
        }
      }
    }
  }
  return best;
}

/** Python's shlex.split for journalmatch lines (quotes and backslashes). */
function shellWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let any = false;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") { quote = c; any = true; }
    else if (c === '\\' && i + 1 < s.length) { cur += s[++i]; any = true; }
    else if (/\s/.test(c)) { if (any || cur) out.push(cur); cur = ''; any = false; }
    else { cur += c; any = true; }
  }
  if (any || cur) out.push(cur);
  return out;
}
