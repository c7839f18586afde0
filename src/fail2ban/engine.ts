import { DateDetector } from './date-detector.js';
import type { FilterDefinition, SourcedRegex } from './filter-reader.js';
import { pythonGroups, translatePythonRegex, type TranslatedRegex } from './pyregex.js';
import { expandRegexTags } from './regex-tags.js';
import { guardRegex, type GuardVerdict } from './regex-guard.js';
import { DEFAULT_BUDGET_MS, execWithBudget, OVER_BUDGET, registerRegex, type LineBudget, type RegexMatch } from './regex-budget.js';
import { zoneOffset } from './strptime.js';
import { trimOldest } from '../core/recency.js';

/**
 * Runs a loaded fail2ban filter over log lines with fail2ban's semantics:
 * the date is found and cut out of the line, the rest (with a trailing
 * newline, `maxlines` lines buffered) goes through `prefregex` (whose
 * `<F-CONTENT>` replaces the text), the `failregex`es in order, and the
 * `ignoreregex`es; multi-line failures tied by `<F-MLFID>` are merged, with
 * `<F-NOFAIL>`, `<F-MLFFORGET>` and `<F-MLFGAINED>` deciding what counts.
 */

export class TranslationProblem extends Error {
  override name = 'TranslationProblem';
  constructor(readonly file: string, readonly line: number, readonly regex: string, readonly reason: string) {
    super(`${file}:${line}: cannot use ${JSON.stringify(regex.length > 160 ? `${regex.slice(0, 160)}…` : regex)}: ${reason}`);
  }
}

interface CompiledRegex {
  source: SourcedRegex;
  t: TranslatedRegex;
  re: RegExp;
  /** The regex's id for the matching thread (see regex-budget.ts). */
  id: number;
  guard: GuardVerdict;
  skiplineKeys: string[];
  /** `alt_user_1` → `user` style groups, merged into their target after a match. */
  alternates: Array<[string, string]>;
  tuples: Array<[string, string]>;
}

/** One line as fail2ban splits it: text before the date, the date, text after it. */
type TupleLine = [string, string, string];

/** A failure's groups and merged state; a key holding undefined counts as absent. */
export type FailData = Record<string, unknown> & {
  matches?: string[];
  users?: Set<string>;
};

export interface Failure {
  /** Index of the failregex that matched. */
  regex: number;
  /** The failure id: address, host name, or `<F-ID>` text (with `/cidr` for subnets). */
  id: string;
  /** Which group supplied the id. */
  idKind: 'ip4' | 'ip6' | 'dns' | 'fid';
  /** Seconds since the epoch (fractions for EPOCH dates), or null when the line had no usable date. */
  time: number | null;
  data: FailData;
}

export interface EngineOptions {
  /** fail2ban's clock, in ms (for yearless and dateless lines). */
  now?: () => number;
  /** Keep trying the other failregexes after a match (fail2ban-regex and fail2ban's tests do). */
  checkAllRegex?: boolean;
  /** Dateless lines take "now" (fail2ban in operation); otherwise they have no time. */
  undatedAsNow?: boolean;
  /** What the regexes may take on one long line before it is given up, in ms (see regex-budget.ts). */
  budgetMs?: number;
}

export interface EngineStats {
  lines: number;
  failHits: number[];
  ignoreHits: number[];
  /** Lines dropped by an ignoreregex. */
  ignoredLines: number;
  /** Lines with at least one failure (nofail ones included), as fail2ban-regex counts them. */
  matchedLines: number;
  /** Long lines whose matching ran over the budget and was given up (crafted to stall the regexes). */
  overBudgetLines: number;
}

const MLFID_CACHE_SIZE = 100;
/**
 * What a multi-line buffer may hold, in characters. A multi-line failure is a few short lines
 * (slapd's 20 lines are ~3 KB); 20 crafted 16 KiB lines made every regex of every line scan 320 KB.
 */
const MULTILINE_BUFFER_CHARS = 32 * 1024;
const MLFID_CACHE_SECONDS = 300;
/** What a line that cannot match returns: shared, never modified. */
const NO_FAILURES: readonly Failure[] = [];

export class FailregexEngine {
  readonly failregex: CompiledRegex[] = [];
  readonly ignoreregex: CompiledRegex[] = [];
  readonly prefregex: CompiledRegex | null = null;
  readonly detector: DateDetector;
  readonly problems: TranslationProblem[] = [];
  /** Regexes loaded but able to backtrack catastrophically (see regex-guard.ts). */
  readonly warnings: TranslationProblem[] = [];
  readonly stats: EngineStats;
  private readonly maxlines: number;
  /** A line containing none of the failregexes' required literals cannot match any of them (null: no such test). */
  private readonly candidate: RegExp | null;
  private readonly now: () => number;
  private readonly checkAll: boolean;
  private readonly undatedAsNow: boolean;
  /** The current line's time for matching long texts (see regex-budget.ts). */
  private readonly budget: LineBudget;
  private overBudget = false;
  private buffer: TupleLine[] = [];
  private lastTimeText = '';
  private lastDate: number | null = null;
  private readonly mlfid = new Map<string, { at: number; fail: FailData }>();

  constructor(readonly definition: FilterDefinition, options: EngineOptions = {}) {
    this.now = options.now ?? Date.now;
    this.checkAll = options.checkAllRegex ?? false;
    this.undatedAsNow = options.undatedAsNow ?? true;
    this.budget = { ms: options.budgetMs ?? DEFAULT_BUDGET_MS, deadline: 0 };
    this.maxlines = definition.maxlines;
    const multi = this.maxlines > 1;
    if (definition.prefregex) this.prefregex = this.compile(definition.prefregex, multi);
    for (const r of definition.failregex) {
      const c = this.compile(r, false);
      if (!c) continue;
      if (!hasFailureId(c.t) && !(this.prefregex && hasFailureId(this.prefregex.t))) {
        this.problems.push(new TranslationProblem(r.file, r.line, r.regex, 'no failure-id group: a failregex needs <HOST> (or <ADDR>, <IP4>, <IP6>, <DNS>, <F-ID>, <F-MLFID>)'));
        continue;
      }
      this.failregex.push(c);
    }
    for (const r of definition.ignoreregex) {
      const c = this.compile(r, multi);
      if (c) this.ignoreregex.push(c);
    }
    this.candidate = this.candidateTest();
    let zone: number | null = null;
    if (definition.logtimezone) zone = zoneOffset(definition.logtimezone);
    this.detector = new DateDetector(definition.datepattern?.regex ?? null, { now: () => this.now(), zone });
    this.stats = { lines: 0, failHits: this.failregex.map(() => 0), ignoreHits: this.ignoreregex.map(() => 0), ignoredLines: 0, matchedLines: 0, overBudgetLines: 0 };
  }

  /**
   * One scan for the literals every failregex needs (most log lines have none
   * of them), used when skipping a line cannot change anything else: single-line
   * filters whose ignoreregex only applies after a failregex matched.
   */
  private candidateTest(): RegExp | null {
    if (this.maxlines !== 1 || this.failregex.length === 0 || this.ignoresFirst()) return null;
    const literals = new Set<string>();
    for (const r of this.failregex) {
      if (r.t.required === null) return null;
      for (const l of r.t.required) literals.add(l);
    }
    // The test runs on the line without the newline fail2ban appends.
    if ([...literals].some((l) => l.includes('\n'))) return null;
    return new RegExp([...literals].map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'));
  }

  /** fail2ban runs ignoreregex before failregex when there are few enough of them. */
  private ignoresFirst(): boolean {
    return this.ignoreregex.length > 0 && this.ignoreregex.length < this.failregex.length - 2;
  }

  private compile(source: SourcedRegex, wholeBuffer: boolean): CompiledRegex | null {
    if (source.regex.trim() === '') {
      this.problems.push(new TranslationProblem(source.file, source.line, source.regex, 'empty regex'));
      return null;
    }
    try {
      const t = translatePythonRegex(expandRegexTags(source.regex, this.definition.usedns), { wholeBuffer });
      const guard = guardRegex(t);
      if (guard.verdict === 'unguarded') {
        this.warnings.push(new TranslationProblem(source.file, source.line, source.regex, guard.reason));
      }
      const re = new RegExp(t.source, t.flags);
      const id = registerRegex(t.source, t.flags);
      const skiplineKeys = [...t.groups.keys()].filter((k) => /^skiplines\d+$/.test(k)).sort();
      const alternates: Array<[string, string]> = [];
      const tuples: Array<[string, string]> = [];
      for (const name of [...t.names].sort()) {
        const m = /^(alt_|tuple_)(.*?)(?:_\d+)?$/.exec(name);
        if (!m || name.length <= 4) continue;
        const target = m[2] === 'id' ? 'fid' : m[2] === 'port' ? 'fport' : m[2]!;
        (m[1] === 'alt_' ? alternates : tuples).push([name, target]);
      }
      return { source, t, re, id, guard, skiplineKeys, alternates, tuples };
    } catch (e) {
      this.problems.push(new TranslationProblem(source.file, source.line, source.regex, (e as Error).message));
      return null;
    }
  }

  /**
   * One line of the log. `known` gives the time when the source knows it
   * (the journal), in which case no date is looked for in the text.
   */
  processLine(line: string, known?: { time: number; timeText: string }): readonly Failure[] {
    this.stats.lines++;
    let tuple: TupleLine;
    let date: number | null = null;
    let noDate = false;
    if (known) {
      this.lastTimeText = known.timeText;
      this.lastDate = known.time;
      if (this.rulesOut(line)) return NO_FAILURES;
      tuple = ['', known.timeText, line];
      date = known.time;
    } else {
      const dm = this.detector.find(line);
      if (dm) {
        const text = line.slice(dm.start, dm.end);
        const rest = line.slice(dm.end);
        // Most lines cannot match: rule them out before building anything for them. The test
        // sees what the regexes see: the line with its date cut out.
        if (this.rulesOut(dm.start === 0 ? rest : line.slice(0, dm.start) + rest)) {
          if (text && dm.time !== null) { this.lastTimeText = text; this.lastDate = dm.time; }
          return NO_FAILURES;
        }
        tuple = [line.slice(0, dm.start), text, rest];
        if (text) {
          date = dm.time;
          if (date !== null) { this.lastTimeText = text; this.lastDate = date; }
        } else if (this.lastDate !== null && this.lastDate > this.nowSeconds() - 60) {
          tuple = ['', this.lastTimeText, line];
          date = this.lastDate;
        } else {
          date = this.nowSeconds();
        }
      } else {
        if (this.rulesOut(line)) return NO_FAILURES;
        tuple = ['', '', line];
      }
      if (date === null) {
        noDate = true;
        if (this.lastDate !== null && this.lastDate > this.nowSeconds() - 60) {
          tuple = ['', this.lastTimeText, line];
          date = this.lastDate;
        } else if (this.undatedAsNow) {
          date = this.nowSeconds();
        }
      }
    }
    const ignoredBefore = this.ignoredCount;
    this.budget.deadline = 0;
    this.overBudget = false;
    const found = this.findFailure(tuple, date, noDate);
    if (this.overBudget) {
      this.stats.overBudgetLines++;
      // Given up as if it were not in the log: kept in a multi-line buffer, it would stall the lines after it.
      if (this.maxlines > 1) this.buffer = this.buffer.filter((t) => t !== tuple);
      return NO_FAILURES;
    }
    // fail2ban-regex counts a line whose only results are <F-NOFAIL> ones as ignored.
    if (this.ignoredCount !== ignoredBefore || (found.length && found.every((f) => f.data.nofail))) this.stats.ignoredLines++;
    else if (found.length) this.stats.matchedLines++;
    return found;
  }

  /** True when the literal prefilter shows the text cannot match any failregex. */
  private rulesOut(text: string): boolean {
    return this.candidate !== null && !this.candidate.test(text);
  }

  private nowSeconds(): number {
    return this.now() / 1000;
  }

  private ignoredCount = 0;

  private findFailure(tuple: TupleLine, date: number | null, noDate: boolean): Failure[] {
    const found: Failure[] = [];
    let orgBuffer: TupleLine[];
    if (this.maxlines > 1) {
      this.buffer.push(tuple);
      if (this.buffer.length > this.maxlines) this.buffer = this.buffer.slice(-this.maxlines);
      if (this.buffer.length > 1) this.buffer = newestWithin(this.buffer, MULTILINE_BUFFER_CHARS);
      orgBuffer = this.buffer;
    } else {
      orgBuffer = this.buffer = [tuple];
    }
    let buf: string | null = joinLines(orgBuffer);
    if (this.ignoresFirst()) {
      if (this.ignoreLine(buf, orgBuffer, null) !== null) return found;
    }
    let preGroups: Record<string, string | undefined> | null = null;
    if (this.prefregex) {
      const m = this.search(this.prefregex, buf, orgBuffer);
      if (!m) return found;
      preGroups = groupsOf(this.prefregex, m.match);
      const content = preGroups.content;
      if (content) {
        this.buffer = [['', '', content]];
        buf = null;
      }
    }
    for (let i = 0; i < this.failregex.length; i++) {
      const fr = this.failregex[i]!;
      if (buf === null) buf = joinLines(this.buffer);
      const m = this.search(fr, buf, orgBuffer);
      if (!m) continue;
      let fail: FailData = groupsOf(fr, m.match);
      if (this.ignoreregex.length && this.ignoreLine(buf, orgBuffer, m) !== null) {
        buf = null;
        if (!this.checkAll) break;
        continue;
      }
      if (noDate && date === null && this.undatedAsNow) continue;
      if (!this.checkAll || this.maxlines > 1) {
        this.buffer = m.unmatched;
        buf = null;
      }
      if (preGroups !== null) addPrefixGroups(fail, preGroups);
      const mlfid = fail.mlfid as string | undefined;
      if (mlfid !== undefined) {
        fail = this.mergeFailure(mlfid, fail, m.matched, date);
        if (fail.nofail) {
          if (!this.checkAll) return found;
        }
      } else {
        fail.matches = [...(fail.matches ?? []), ...m.matched.map(lineText)];
      }
      let id: string | undefined;
      let idKind: Failure['idKind'] = 'fid';
      const fid = fail.fid as string | undefined;
      const cidr = fail.cidr as string | undefined;
      if (fail.ip4 !== undefined) { id = fail.ip4 as string; idKind = 'ip4'; }
      else if (fail.ip6 !== undefined) { id = fail.ip6 as string; idKind = 'ip6'; }
      else if (fail.dns !== undefined) { id = fail.dns as string; idKind = 'dns'; }
      else if (fid !== undefined) { id = fid; idKind = 'fid'; }
      if (id === undefined) {
        // Multi-line failure still waiting for its address.
        fail.mlfpending = 1;
        if (!this.checkAll) return found;
        continue;
      }
      const differentId = fid !== undefined && idKind !== 'fid' && fid !== id;
      if (cidr && (idKind === 'ip4' || idKind === 'ip6')) id = `${id}/${cidr}`;
      if (differentId) {
        fail.ip = id;
        id = fid!;
        idKind = 'fid';
      }
      if (this.checkAll && mlfid !== undefined) fail = { ...fail };
      this.stats.failHits[i]!++;
      found.push({ regex: i, id, idKind, time: date, data: fail });
      if (!this.checkAll) break;
    }
    return found;
  }

  private search(r: CompiledRegex, buf: string, orgLines: TupleLine[]): { match: RegexMatch; matched: TupleLine[]; unmatched: TupleLine[] } | null {
    // Every match contains one of the required literals: a substring search rules most regexes out
    // for a fraction of a run (multi-line mode makes each `^` a scan of the whole buffer).
    if (r.t.required !== null && !containsAny(buf, r.t.required)) return null;
    if (this.overBudget) return null;
    const m = execWithBudget(r.id, r.re, buf, this.budget);
    if (m === OVER_BUDGET) {
      this.overBudget = true;
      return null;
    }
    if (!m) return null;
    if (orgLines.length <= 1) return { match: m, matched: orgLines, unmatched: [] };
    const startLine = buf.lastIndexOf('\n', m.index) + 1;
    let endLine = buf.indexOf('\n', m.index + m[0].length - 1);
    endLine = endLine < 0 ? buf.length : endLine + 1;
    const first = countNewlines(buf, startLine);
    const last = countNewlines(buf, endLine);
    const matched = orgLines.slice(first, last);
    const unmatched = orgLines.slice(0, first);
    if (r.skiplineKeys.length) {
      const g = pythonGroups(r.t, m);
      const skipped = r.skiplineKeys.map((k) => g[k] ?? '').join('').split('\n').filter((s) => s !== '');
      let n = 0;
      for (const s of skipped) {
        for (let j = n; j < matched.length; j++) {
          if (lineText(matched[j]!) === s) {
            unmatched.push(matched.splice(j, 1)[0]!);
            n = j;
            break;
          }
        }
      }
    }
    unmatched.push(...orgLines.slice(last));
    return { match: m, matched, unmatched };
  }

  private ignoreLine(buf: string, orgBuffer: TupleLine[], fail: { matched: TupleLine[]; unmatched: TupleLine[] } | null): number | null {
    if (fail && this.maxlines > 1) {
      orgBuffer = fail.matched;
      buf = joinLines(orgBuffer);
    }
    let hit: number | null = null;
    for (let i = 0; i < this.ignoreregex.length; i++) {
      if (!this.search(this.ignoreregex[i]!, buf, orgBuffer)) continue;
      hit = i;
      this.stats.ignoreHits[i]!++;
      this.ignoredCount++;
      if ((!this.checkAll || this.maxlines > 1) && fail) this.buffer = fail.unmatched;
      if (!this.checkAll) break;
    }
    return hit;
  }

  private mergeFailure(mlfid: string, fail: FailData, matched: TupleLine[], date: number | null): FailData {
    const nowSec = date ?? this.now() / 1000;
    const cached = this.cacheGet(mlfid, nowSec);
    let users: Set<string> | undefined;
    let flags = 0;
    if (fail.mlfgained) {
      flags |= 8 | 1;
      if (!fail.nofail) fail.nofail = fail.mlfgained;
    } else if (fail.nofail) flags |= 1;
    if (take(fail, 'mlfforget')) flags |= 2;
    if (cached) {
      const g = cached.fail;
      users = updateUsers(g, fail.user as string | undefined);
      if (take(g, 'nofail')) flags |= 4;
      if (take(g, 'mlfgained')) flags |= 4;
      if (flags & 8) g.mlfpending = undefined;
      if ((flags & 4) === 0 && !g.mlfpending) g.matches = undefined;
      for (const [k, v] of Object.entries(fail)) if (v !== undefined && v !== null) g[k] = v;
      fail = g;
      if (flags & 2) this.mlfid.delete(mlfid);
    } else if (!(flags & 2)) {
      users = updateUsers(fail, fail.user as string | undefined);
      this.cacheSet(mlfid, { at: nowSec, fail });
    }
    if (take(fail, 'mlfpending') || (users && users.size > 1)) {
      fail.nofail = undefined;
      fail.mlfgained = undefined;
      flags &= ~(8 | 1);
    }
    const lines = matched.map(lineText);
    if ((flags & 1) === 0) {
      let m = (take(fail, 'nofail-matches') as string[] | undefined) ?? [];
      m = [...m, ...(fail.matches ?? [])];
      if ((flags & 8) === 0) m = [...m, ...lines];
      fail.matches = m;
    } else if ((flags & 3) === 1) {
      fail['nofail-matches'] = [...((fail['nofail-matches'] as string[] | undefined) ?? []), ...lines];
    }
    return fail;
  }

  private cacheGet(key: string, now: number): { at: number; fail: FailData } | undefined {
    const e = this.mlfid.get(key);
    if (e && e.at + MLFID_CACHE_SECONDS < now) {
      this.mlfid.delete(key);
      return undefined;
    }
    return e;
  }

  private cacheSet(key: string, value: { at: number; fail: FailData }): void {
    // Full: drop the oldest entry (insertion order); expired ones are dropped when looked up.
    if (!this.mlfid.has(key)) trimOldest(this.mlfid, MLFID_CACHE_SIZE - 1);
    this.mlfid.set(key, value);
  }
}

/** The Python groups of a match, with fail2ban's `<F-ALT_…>` and `<F-TUPLE_…>` merging. */
function groupsOf(c: CompiledRegex, m: RegexMatch): Record<string, string | undefined> {
  const g = pythonGroups(c.t, m);
  for (const [name, target] of c.alternates) {
    const v = g[name];
    if (v && !g[target]) g[target] = v;
  }
  for (const [name, target] of c.tuples) {
    const v = g[name];
    const t = g[target] as unknown;
    (g as Record<string, unknown>)[target] = Array.isArray(t) ? [...t, v] : [t, v];
  }
  return g;
}

/** The prefregex's groups under the failregex's own (content excepted), as `{ ...pre, ...fail }` but without copying. */
function addPrefixGroups(fail: FailData, pre: Record<string, string | undefined>): void {
  for (const k in pre) if (k !== 'content' && !(k in fail)) fail[k] = pre[k];
}

function containsAny(text: string, literals: readonly string[]): boolean {
  for (const l of literals) if (text.includes(l)) return true;
  return false;
}

/**
 * Reads and clears a key. Cleared keys hold undefined rather than being
 * deleted (deleting turns the object into a slow dictionary); every reader
 * treats undefined as absent.
 */
function take(o: Record<string, unknown>, key: string): unknown {
  const v = o[key];
  if (v !== undefined) o[key] = undefined;
  return v;
}

function updateUsers(fail: FailData, user: string | undefined): Set<string> | undefined {
  if (user) {
    if (!fail.users) fail.users = new Set();
    fail.users.add(user);
  }
  return fail.users;
}

function hasFailureId(t: TranslatedRegex): boolean {
  return ['fid', 'ip4', 'ip6', 'dns', 'mlfid'].some((g) => t.groups.has(g));
}

function lineText(t: TupleLine): string {
  return t[0] + t[2];
}

/** The newest lines whose joined text fits in `chars` (the newest line always). */
function newestWithin(lines: TupleLine[], chars: number): TupleLine[] {
  let total = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!;
    total += l[0].length + l[2].length + 1;
    if (total > chars) return i === lines.length - 1 ? lines.slice(i) : lines.slice(i + 1);
  }
  return lines;
}

function joinLines(lines: TupleLine[]): string {
  let s = '';
  for (const l of lines) s += `${l[0]}${l[2]}\n`;
  return s;
}

function countNewlines(s: string, end: number): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0 && i < end; i = s.indexOf('\n', i + 1)) n++;
  return n;
}
