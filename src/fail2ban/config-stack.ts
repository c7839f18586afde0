import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parseIni, type IniFile, type IniValue } from './ini.js';

/**
 * fail2ban's layered configuration for one resource (`jail`, `filter.d/sshd`,
 * `action.d/…`): `NAME.conf`, `NAME.d/*.conf`, `NAME.local`, `NAME.d/*.local`,
 * each preceded by the files its `[INCLUDES] before =` names and followed by
 * its `after =` ones (each include also followed by its own `.local`), merged
 * in that order: later files override earlier ones option by option, and the
 * value an option had before it was overridden stays reachable as
 * `known/NAME`. Values are read with ConfigParser's `%(name)s` interpolation
 * plus fail2ban's `%(section/name)s`, `%(known/name)s`, `%(default/name)s`
 * and `%(__name__)s` (the section's name).
 */

export class Fail2banConfigError extends Error {
  override name = 'Fail2banConfigError';
  constructor(readonly file: string, readonly line: number, readonly reason: string) {
    super(`${file}:${line}: ${reason}`);
  }
}

export interface Located {
  value: string;
  file: string;
  line: number;
}

const MAX_INTERPOLATION_DEPTH = 10;

export class ConfigStack {
  readonly files: string[] = [];
  readonly problems: Fail2banConfigError[] = [];
  private readonly defaults = new Map<string, IniValue>();
  private readonly sections = new Map<string, Map<string, IniValue>>();
  private readonly parsed = new Map<string, IniFile | null>();

  /** Reads `base` (a path without extension) and its `.d` directory and `.local` files; false when none exists. */
  readResource(base: string): boolean {
    const candidates = [`${base}.conf`, ...listDir(`${base}.d`, '.conf'), `${base}.local`, ...listDir(`${base}.d`, '.local')];
    const found = candidates.filter((f) => isFile(f));
    if (found.length === 0) return false;
    for (const f of this.withIncludes(found, [])) this.merge(f);
    return true;
  }

  /** Reads exactly these files (with their includes), in order. */
  readFiles(files: string[]): void {
    for (const f of this.withIncludes(files, [])) this.merge(f);
  }

  private parse(file: string): IniFile | null {
    if (this.parsed.has(file)) return this.parsed.get(file)!;
    let ini: IniFile | null = null;
    if (isFile(file)) {
      ini = parseIni(readFileSync(file, 'utf8'), file);
      for (const p of ini.problems) this.problems.push(new Fail2banConfigError(file, p.line, p.message));
    }
    this.parsed.set(file, ini);
    return ini;
  }

  private withIncludes(files: string[], seen: string[]): string[] {
    const expanded: string[] = [];
    for (const f of files) {
      expanded.push(f);
      const local = f.replace(/\.[^./]*$/, '') + '.local';
      if (local !== f && !files.includes(local) && isFile(local)) expanded.push(local);
    }
    const out: string[] = [];
    for (const f of expanded) {
      const ini = this.parse(f);
      if (!ini) continue;
      const includes = ini.sections.get('INCLUDES');
      const list = (key: string): string[] => {
        const v = includes?.get(key)?.value;
        if (!v) return [];
        const result: string[] = [];
        for (const name of v.split('\n').map((s) => s.trim()).filter(Boolean)) {
          const path = isAbsolute(name) ? name : join(dirname(f), name);
          if (seen.includes(path)) continue;
          result.push(...this.withIncludes([path], [...seen, f]));
        }
        return result;
      };
      out.push(...list('before'), f, ...list('after'));
    }
    return out;
  }

  private merge(file: string): void {
    const ini = this.parse(file);
    if (!ini) return;
    this.files.push(file);
    for (const [k, v] of ini.defaults) this.defaults.set(k, v);
    for (const [rawName, options] of ini.sections) {
      let name = rawName;
      let suffix = '';
      const cond = /^(\w+)(\?.+)$/.exec(rawName);
      if (cond) { name = cond[1]!; suffix = cond[2]!; }
      const existing = this.sections.get(name);
      if (existing) {
        let known = this.sections.get(`KNOWN/${name}`);
        if (!known) this.sections.set(`KNOWN/${name}`, (known = new Map()));
        for (const k of options.keys()) {
          const old = existing.get(k + suffix);
          if (old) known.set(k + suffix, old);
        }
        for (const [k, v] of options) existing.set(k + suffix, v);
      } else {
        const copy = new Map<string, IniValue>();
        for (const [k, v] of options) copy.set(k + suffix, v);
        this.sections.set(name, copy);
      }
    }
  }

  hasSection(section: string): boolean {
    return this.sections.has(section);
  }

  sectionNames(): string[] {
    return [...this.sections.keys()].filter((n) => !n.startsWith('KNOWN/') && n !== 'INCLUDES');
  }

  /** Options set in the section itself (not inherited from DEFAULT), lower-case. */
  ownOptions(section: string): string[] {
    return [...(this.sections.get(section)?.keys() ?? [])];
  }

  /** Options visible in the section, including DEFAULT's. */
  options(section: string): string[] {
    return [...new Set([...this.ownOptions(section), ...this.defaults.keys()])];
  }

  defaultNames(): string[] {
    return [...this.defaults.keys()];
  }

  /** Sets DEFAULT values (fail2ban adds fail2ban_version and fail2ban_confpath before reading jails). */
  setDefault(name: string, value: string): void {
    this.defaults.set(name.toLowerCase(), { value, file: '<built-in>', line: 0, lines: [0] });
  }

  /** Adds options to a section (jails get their filter's options as `known/…`). */
  mergeSection(section: string, values: Map<string, string>, prefix: string): void {
    let sec = this.sections.get(section);
    if (!sec) this.sections.set(section, (sec = new Map()));
    for (const [k, v] of values) {
      if (prefix && k.startsWith(prefix)) continue;
      sec.set(prefix + k, { value: v, file: '<filter>', line: 0, lines: [0] });
    }
  }

  /** Where an option's raw value is written (section, then DEFAULT). */
  locate(section: string, option: string): IniValue | undefined {
    const key = option.toLowerCase();
    return this.sections.get(section)?.get(key) ?? this.defaults.get(key);
  }

  /** Raw (uninterpolated) value, or undefined. */
  raw(section: string, option: string, vars?: ReadonlyMap<string, string>): string | undefined {
    const key = option.toLowerCase();
    const fromVars = vars?.get(key);
    if (fromVars !== undefined) return fromVars;
    return this.locate(section, key)?.value;
  }

  /** ConfigParser's get(): the value with `%(…)s` interpolated; throws when missing or broken. */
  get(section: string, option: string, vars?: ReadonlyMap<string, string>): string {
    if (section !== 'DEFAULT' && !this.sections.has(section)) throw new MissingOption(section, option, 'section');
    const value = this.raw(section, option, vars);
    if (value === undefined) throw new MissingOption(section, option, 'option');
    return this.interpolate(section, option, value, vars, 1);
  }

  /** fail2ban's get_ex(): like get(), but `sec/opt` names another section (`known/…`, `default/…`). */
  getEx(section: string, option: string, vars?: ReadonlyMap<string, string>): string {
    const m = option.includes('/') ? /^([\w-]+)\/([^\s>]+)$/.exec(option) : null;
    if (m) {
      const sec = m[1]!;
      const lower = sec.toLowerCase();
      const tries = lower === 'known' ? [`KNOWN/${section}`, section] : [lower === 'default' ? 'DEFAULT' : sec];
      for (const s of tries) {
        try {
          return this.get(s, m[2]!);
        } catch (e) {
          if (!(e instanceof MissingOption)) throw e;
        }
      }
    }
    return this.get(section, option, vars);
  }

  tryGet(section: string, option: string, vars?: ReadonlyMap<string, string>): string | undefined {
    try {
      return this.get(section, option, vars);
    } catch (e) {
      if (e instanceof MissingOption) return undefined;
      throw e;
    }
  }

  private interpolate(section: string, option: string, value: string, vars: ReadonlyMap<string, string> | undefined, depth: number): string {
    if (!value.includes('%')) return value;
    const where = this.locate(section, option);
    if (depth > MAX_INTERPOLATION_DEPTH) {
      throw new Fail2banConfigError(where?.file ?? section, where?.line ?? 0, `interpolation of "${option}" in [${section}] is nested too deeply (a reference loop?)`);
    }
    let out = '';
    let i = 0;
    while (i < value.length) {
      const p = value.indexOf('%', i);
      if (p < 0) { out += value.slice(i); break; }
      out += value.slice(i, p);
      const next = value[p + 1];
      if (next === '%') { out += '%'; i = p + 2; continue; }
      const m = next === '(' ? /^%\(([^)]+)\)s/.exec(value.slice(p)) : null;
      if (!m) {
        throw new Fail2banConfigError(where?.file ?? section, where?.line ?? 0, `"${option}" in [${section}]: '%' must be followed by '%' or '(name)s', found ${JSON.stringify(value.slice(p, p + 12))}`);
      }
      const name = m[1]!;
      const ref = this.lookupReference(section, name, vars);
      if (ref === undefined) {
        throw new Fail2banConfigError(where?.file ?? section, where?.line ?? 0, `"${option}" in [${section}] refers to %(${name})s, which is not defined`);
      }
      out += this.interpolate(section, option, ref, vars, depth + 1);
      i = p + m[0].length;
    }
    return out;
  }

  private lookupReference(section: string, name: string, vars: ReadonlyMap<string, string> | undefined): string | undefined {
    if (name === '__name__') return section;
    const lower = name.toLowerCase();
    const direct = this.raw(section, lower, vars);
    if (direct !== undefined) return direct;
    const m = /^([\w-]+)\/([^)]+)$/.exec(name);
    if (!m) return undefined;
    const sec = m[1]!;
    const opt = m[2]!.toLowerCase();
    const secLower = sec.toLowerCase();
    if (secLower === 'known') {
      const known = this.sections.get(`KNOWN/${section}`)?.get(opt)?.value;
      if (known !== undefined) return known;
    } else if (secLower !== 'default') {
      const s = this.sections.get(sec);
      if (!s) return undefined;
      const v = s.get(opt)?.value;
      if (v !== undefined) return v;
    }
    return this.defaults.get(opt)?.value;
  }
}

export class MissingOption extends Error {
  constructor(readonly section: string, readonly option: string, readonly what: 'section' | 'option') {
    super(what === 'section' ? `no section [${section}]` : `no option "${option}" in [${section}]`);
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function listDir(dir: string, ext: string): string[] {
  if (!existsSync(dir)) return [];
  try {
    return readdirSync(dir).filter((n) => n.endsWith(ext)).sort().map((n) => join(dir, n));
  } catch {
    return [];
  }
}
