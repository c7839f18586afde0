/**
 * Replays fail2ban's annotated sample logs (Debian's fail2ban package,
 * `fail2ban/tests/files/logs/`) through filters loaded by our fail2ban loader,
 * honouring the annotations the way fail2ban's own samples test does
 * (tests/samplestestcase.py):
 * - `# failJSON: {…}` describes the next line: `match`, and for a match the
 *   `host` (failure id), `time` (local time in fail2ban's test time zone),
 *   `user`/`users`, `attempts` (lines merged into the failure) and any other
 *   captured group; `constraint` limits it to some filter options;
 * - `# filterOptions: {…}` or `[{…}, {…}]` runs the following lines through the
 *   filter with each of those options (`test.condition` skips a block),
 *   `# fileOptions: {…}` are options common to the file, `# addFILE: "x"`
 *   appends another sample file;
 * - a line without annotation must not match;
 * - the filter runs as in fail2ban's test: every failregex is tried
 *   (checkAllRegex), dateless lines get no time, the clock is fixed at
 *   TEST_NOW (2005-08-14 12:00:00 CEST), `<F-NOFAIL>` results are not failures,
 *   `logtype: journal` lines get TEST_NOW as their time.
 * Each (line, filter options) pair is one case; it agrees when we match iff
 * fail2ban's annotation says so, and for a match every annotated field agrees.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalAddress } from '../../src/core/address.js';
import { FailregexEngine, type Failure } from '../../src/fail2ban/engine.js';
import { readFilter } from '../../src/fail2ban/filter-reader.js';

export const SAMPLES_DIR = '/usr/lib/python3/dist-packages/fail2ban/tests/files/logs';
export const FAIL2BAN_DIR = '/etc/fail2ban';
/** fail2ban/tests/utils.py: MyTime is fixed at this instant during the sample tests. */
export const TEST_NOW = 1124013600;

export interface Disagreement {
  filter: string;
  /** `file:line [options]`, the key used in known-disagreements.txt. */
  key: string;
  line: string;
  expected: string;
  got: string;
}

export interface FilterResult {
  filter: string;
  cases: number;
  agreed: number;
  disagreements: Disagreement[];
  /** Set when the filter could not be loaded or run at all. */
  error?: string;
}

/** Filters of the installed package that have a sample log (as fail2ban's samples test selects them). */
export function sampleFilters(): string[] {
  return readdirSync(join(FAIL2BAN_DIR, 'filter.d'))
    .filter((f) => f.endsWith('.conf') && !f.endsWith('common.conf') && !f.startsWith('.'))
    .map((f) => f.slice(0, -5))
    .filter((n) => existsSync(join(SAMPLES_DIR, n)))
    .sort();
}

type Opts = Record<string, unknown>;

/** The expressions fail2ban's samples use in `constraint` and `test.condition`. */
function evaluate(expr: string, name: string, opts: Opts): boolean {
  const m = /^\s*(name|opts\.get\('([^']+)'\))\s*(==|!=)\s*'([^']*)'\s*$/.exec(expr);
  if (!m) throw new Error(`unsupported sample condition: ${expr}`);
  const left = m[1] === 'name' ? name : (opts[m[2]!] as string | undefined) ?? null;
  return m[3] === '==' ? left === m[4] : left !== m[4];
}

function jsonLocalTime(text: string): number {
  const m = /^(\d{4})-(\d{1,2})-(\d{1,2})T(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?$/.exec(text);
  if (!m) throw new Error(`bad failJSON time ${text}`);
  const t = new Date(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!).getTime() / 1000;
  return m[7] ? t + Number(`0.${m[7]}`) : t;
}

function sameValue(key: string, got: unknown, want: unknown): boolean {
  if (got instanceof Set || Array.isArray(got) || Array.isArray(want)) {
    const a = [...((got as Iterable<unknown>) ?? [])].map(String).sort();
    const b = [...((want as Iterable<unknown>) ?? [])].map(String).sort();
    return JSON.stringify(a) === JSON.stringify(b);
  }
  if ((got === undefined || got === null) && want === null) return true;
  if (key === 'host' && typeof got === 'string' && typeof want === 'string') {
    const split = (s: string): [string | null, string] => {
      const [addr, cidr] = s.split('/');
      return [canonicalAddress(addr!), cidr ?? ''];
    };
    const [ga, gc] = split(got);
    const [wa, wc] = split(want);
    if (ga !== null && wa !== null) return ga === wa && gc === wc;
  }
  return got === want;
}

function describe(f: Failure | undefined): string {
  if (!f) return 'no match';
  const data = Object.fromEntries(Object.entries(f.data).filter(([k, v]) => v !== undefined && k !== 'matches').map(([k, v]) => [k, v instanceof Set ? [...v] : v]));
  return `match #${f.regex} ${f.id} at ${f.time === null ? 'no time' : new Date(f.time * 1000).toISOString()} attempts=${f.data.matches?.length ?? 0} ${JSON.stringify(data)}`;
}

/** Runs one filter's sample file(s); `process.env.TZ` must already be fail2ban's test zone. */
export function runSamples(name: string): FilterResult {
  const result: FilterResult = { filter: name, cases: 0, agreed: 0, disagreements: [] };
  const engines = new Map<string, FailregexEngine>();
  const engineFor = (key: string, options: Opts): FailregexEngine => {
    let e = engines.get(key);
    if (!e) {
      const opts = new Map(Object.entries(options).map(([k, v]) => [k, String(v)]));
      const def = readFilter({ name, options: opts }, { fail2banDir: FAIL2BAN_DIR });
      e = new FailregexEngine(def, { now: () => TEST_NOW * 1000, checkAllRegex: true, undatedAsNow: false });
      if (e.problems.length) throw new Error(e.problems.map((p) => p.message).join('\n'));
      engines.set(key, e);
    }
    return e;
  };
  const files = [name];
  let common: Opts = {};
  let tests: Array<{ key: string; engine: FailregexEngine; opts: Opts }> | null = null;
  try {
    for (let fi = 0; fi < files.length; fi++) {
      const file = files[fi]!;
      // Some sample logs have CRLF line ends; fail2ban strips them.
      const lines = readFileSync(join(SAMPLES_DIR, file), 'utf8').split('\n').map((l) => l.replace(/\r+$/, ''));
      if (lines[lines.length - 1] === '') lines.pop();
      let ignoreBlock = false;
      for (let i = 0; i < lines.length; i++) {
        let line = lines[i]!;
        let lineNo = i + 1;
        let faildata: Opts;
        const ann = /^#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)$/.exec(line);
        if (ann) {
          const data = JSON.parse(ann[2]!) as unknown;
          if (ann[1] === 'fileOptions') { common = data as Opts; continue; }
          if (ann[1] === 'filterOptions') {
            tests = [];
            ignoreBlock = false;
            for (const o of Array.isArray(data) ? (data as Opts[]) : [data as Opts]) {
              const opts = { ...common, ...o };
              if (opts['test.condition']) ignoreBlock = !evaluate(String(opts['test.condition']), name, opts);
              if (ignoreBlock) continue;
              const filterOpts = Object.fromEntries(Object.entries(opts).filter(([k]) => !k.startsWith('test.')));
              const key = (opts['test.filter-name'] as string | undefined) ?? (Object.keys(filterOpts).length ? JSON.stringify(filterOpts) : '');
              tests.push({ key: name + key, engine: engineFor(name + key, filterOpts), opts });
            }
            continue;
          }
          if (ann[1] === 'addFILE') { files.push(data as string); continue; }
          faildata = data as Opts;
          i++;
          if (i >= lines.length) break;
          line = lines[i]!;
          lineNo = i + 1;
        } else if (ignoreBlock || line.startsWith('#') || line.trim() === '') {
          continue;
        } else {
          faildata = {};
        }
        if (ignoreBlock) continue;
        if (!tests) tests = [{ key: name, engine: engineFor(name, {}), opts: {} }];
        line = line.replace(/[\r\n]+$/, '');
        for (const t of tests) {
          if (faildata.constraint && !evaluate(String(faildata.constraint), name, t.opts)) continue;
          let failures: readonly Failure[];
          if (t.opts.logtype !== 'journal') {
            failures = t.engine.processLine(line);
          } else {
            if (t.opts['test.prefix-line']) line = String(t.opts['test.prefix-line']) + line;
            failures = t.engine.processLine(line, { time: TEST_NOW, timeText: new Date(TEST_NOW * 1000).toISOString().slice(0, 19) });
          }
          const found = failures.filter((f) => !f.data.nofail);
          const want = faildata.match === true;
          let ok: boolean;
          if (found.length === 0) ok = !want;
          else if (!want || found.length !== 1) ok = false;
          else {
            const f = found[0]!;
            ok = true;
            for (const [k, v] of Object.entries(faildata)) {
              if (k === 'time' || k === 'match' || k === 'desc' || k === 'constraint') continue;
              let got: unknown = f.data[k];
              if (got === undefined || got === null) {
                if (k === 'host') got = f.id;
                if (k === 'attempts') got = f.data.matches?.length ?? 0;
              }
              if (!sameValue(k, got, v)) ok = false;
            }
            if (typeof faildata.time === 'string' && f.time !== jsonLocalTime(faildata.time)) ok = false;
          }
          result.cases++;
          if (ok) { result.agreed++; continue; }
          result.disagreements.push({
            filter: name,
            key: `${file}:${lineNo} [${t.key.slice(name.length) || 'default'}]`,
            line,
            expected: want ? `match ${JSON.stringify(Object.fromEntries(Object.entries(faildata).filter(([k]) => k !== 'desc' && k !== 'match')))}` : 'no match',
            got: found.length > 1 ? `${found.length} matches: ${found.map(describe).join('; ')}` : describe(found[0]),
          });
        }
      }
    }
  } catch (e) {
    result.error = (e as Error).message;
  }
  return result;
}
