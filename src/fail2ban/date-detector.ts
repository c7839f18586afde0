import { pythonGroups, translatePythonRegex, type TranslatedRegex } from './pyregex.js';
import { DatePatternError, expandDatePattern, timeFromFields } from './strptime.js';

/**
 * Finds and reads the time in a log line the way fail2ban's date detector
 * does, from a filter's `datepattern`:
 * - strptime-style patterns (`^%Y-%m-%d %H:%M:%S`), searched at a word
 *   boundary unless anchored; `{^LN-BEG}` anchors at the line start (after
 *   up to two non-word characters), `{UNB}` drops the boundaries;
 * - `EPOCH` (seconds, optionally `[…]` or SELinux `audit(…)`), `LEPOCH`
 *   (also milliseconds/microseconds), `TAI64N`, `{EPOCH}` inside a pattern;
 * - `{DEFAULT}` (or no datepattern): the built-in list of common formats,
 *   `{^LN-BEG}`: those of them anchored at the line start, `…{DATE}…`: each
 *   built-in format at that place, `{NONE}`: no time in the line.
 * The matched date (the pattern's first group) is cut out of the line before
 * the failregexes see it, as fail2ban does.
 */

export interface DateMatch {
  template: DateTemplate;
  /** Span of the date text in the line. */
  start: number;
  end: number;
  /** Seconds since the epoch, or null when the text could not be read as a date. */
  time: number | null;
}

export interface DateTemplate {
  readonly name: string;
  /** Anchored at the start (or end) of the line: a match ends the search at once. */
  readonly anchored: boolean;
  /** The date text's span and value in `line`, or null. */
  match(line: string): DateMatch | null;
}

export interface DetectorContext {
  /** fail2ban's "now": for yearless and dateless lines. */
  now: () => number;
  /** Minutes east of UTC for lines without a zone (the jail's logtimezone), or null for local time. */
  zone: number | null;
}

const EPOCH_SECONDS = String.raw`\d{10,11}\b(?:\.\d{3,6})?`;
const EPOCH_LONG = String.raw`\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?`;

/** The built-in formats, most common first (this order is fail2ban's priority). */
const BUILTIN_FORMATS: readonly string[] = [
  // ISO 8601 and friends: 2005-01-23T21:59:59.981746+01:00, 2005/01/23 21:59:59, syslog-ng's 2006.12.21 06:43:20
  '%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\\s*%z)?',
  // syslog and ctime: [Sun ]Jan 23 21:59:59[.011][ 2005]
  '(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?',
  // ctime with the year before the time: Sun Jan 23 2005 21:59:59
  '(?:%a )?%b %d %ExY %k:%M:%S(?:\\.%f)?',
  // day first with numeric month: 23/01/2005 21:59:59, 23-01-05 21:59:59
  '%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S',
  // Apache and named: [31/Oct/2006:09:22:55 -0000], 26-Jul-2007 15:20:52.252
  '%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\\.%f)?(?: %z)?',
  // cPanel: 05/20/2008:01:57:39
  '%m/%d/%ExY:%H:%M:%S',
  // month first with dashes and fraction: 01-27-2012 16:22:44.252
  '%m-%d-%ExY %k:%M:%S(?:\\.%f)?',
  'EPOCH',
  // time of day only, at the start of the line
  '{^LN-BEG}%H:%M:%S',
  // <09/16/08@05:03:30>
  '^<%m/%d/%Exy@%H:%M:%S>',
  // MySQL: 130322 11:46:11
  '%Exy%Exm%Exd  ?%H:%M:%S',
  // Tomcat: Jan 23, 2005 9:59:59 PM
  '%b %d, %ExY %I:%M:%S %p',
  // ASSP: Apr-27-13 02:33:06
  '^%b-%d-%Exy %k:%M:%S',
  // compact ISO: 20050123T215959, 20050123 215959
  '%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\\s*%z)?',
  // zone name first (monit): PDT Apr 16 21:05:29
  '(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?',
  // offset first: +00:00 Jan 23 21:59:59.011 2005
  '(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?',
  'TAI64N',
];

function compile(regex: string, where: string, indices: boolean): { t: TranslatedRegex; re: RegExp } {
  try {
    const t = translatePythonRegex(regex);
    return { t, re: new RegExp(t.source, indices ? `${t.flags}d` : t.flags) };
  } catch (e) {
    throw new DatePatternError(`datepattern ${JSON.stringify(where)}: ${(e as Error).message}`);
  }
}

/** True when the pattern has a capturing group without a name (it then marks the date itself). */
function hasPlainGroup(regex: string): boolean {
  for (let i = 0; i < regex.length; i++) {
    const c = regex[i];
    if (c === '\\') { i++; continue; }
    if (c === '[') {
      i++;
      if (regex[i] === '^') i++;
      if (regex[i] === ']') i++;
      while (i < regex.length && regex[i] !== ']') { if (regex[i] === '\\') i++; i++; }
      continue;
    }
    if (c === '(' && regex[i + 1] !== '?' && !(regex[i - 1] === '?' && regex[i - 2] === '(')) return true;
  }
  return false;
}

interface Bounded {
  regex: string;
  anchored: boolean;
  /**
   * The date group is the pattern's last consuming part (we put the group
   * around the whole pattern): it ends where the match ends, so its span
   * follows from the match without the `d` flag, which costs ~5× the match.
   */
  dateEndsMatch: boolean;
}

/** fail2ban's word/line boundaries around a date regex, and the group around the date. */
function withBounds(input: string, wordBegin: boolean | 'start', wordEnd: boolean): Bounded {
  let regex = input.trim();
  const flags = /^\(\?[a-z]+\)/.exec(regex)?.[0] ?? '';
  regex = regex.slice(flags.length);
  const starAtStart = /^\(*\*\*/.test(regex);
  const starAtEnd = /\*\*\)*$/.test(regex) && !/\\\*\*\)*$/.test(regex);
  const noBegin = starAtStart || /^\(*(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^)/.test(regex);
  const noEnd = starAtEnd || /(?:^|[^\\])(?:\$\)?|\\b|\\s)$/.test(regex);
  if (starAtStart) regex = regex.replace(/^(\(*)\*\*/, '$1');
  if (starAtEnd) regex = regex.replace(/\*\*(\)*)$/, '$1');
  const dateEndsMatch = !hasPlainGroup(regex);
  if (dateEndsMatch) {
    const m = /^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)([\s\S]*?)(\$?)$/.exec(regex)!;
    regex = `${m[1]}(${m[2]})${m[3]}`;
  }
  let anchored = false;
  if (wordBegin && !noBegin) {
    if (wordBegin === 'start') {
      regex = String.raw`^(?:\W{0,2})?` + regex;
      anchored = true;
    } else {
      regex = String.raw`(?:^|\b|(?=\W))` + regex;
    }
  }
  if (wordEnd && !noEnd) regex += String.raw`(?=\b|\W|$)`;
  if (/^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))/.test(regex) || /(?:^|[^\\|])\$\)?$/.test(regex)) anchored = true;
  return { regex: flags + regex, anchored, dateEndsMatch };
}

class PatternTemplate implements DateTemplate {
  readonly anchored: boolean;
  private readonly t: TranslatedRegex;
  private readonly re: RegExp;
  private readonly dateKey: string;
  private readonly epochKey: string | null;
  private readonly dateEndsMatch: boolean;

  constructor(readonly name: string, bounded: Bounded, private readonly ctx: DetectorContext, source: string, epoch: 'seconds' | 'long' | null) {
    this.anchored = bounded.anchored;
    this.dateEndsMatch = bounded.dateEndsMatch;
    ({ t: this.t, re: this.re } = compile(bounded.regex, source, !bounded.dateEndsMatch));
    this.dateKey = this.t.keys[1] ?? '';
    this.epochKey = epoch ? this.t.keys[2] ?? null : null;
    this.epoch = epoch;
  }

  private readonly epoch: 'seconds' | 'long' | null;
  private lastText = '';
  private lastTime: number | null = null;

  match(line: string): DateMatch | null {
    this.re.lastIndex = 0;
    const m = this.re.exec(line);
    if (!m) return null;
    const span = this.dateEndsMatch ? suffixSpan(this.t, m, this.dateKey) : spanOf(this.t, m, this.dateKey);
    if (!span) return null;
    let time: number | null;
    if (this.epoch) {
      const text = pythonGroups(this.t, m)[this.epochKey ?? ''] ?? '';
      time = epochValue(text, this.epoch === 'long');
    } else if (span[0] === span[1]) {
      time = null;
    } else {
      // Consecutive lines mostly share their date text: read it once.
      const text = line.slice(span[0], span[1]);
      if (text !== this.lastText) {
        this.lastText = text;
        this.lastTime = timeFromFields(pythonGroups(this.t, m), this.ctx.now(), this.ctx.zone);
      }
      time = this.lastTime;
    }
    return { template: this, start: span[0], end: span[1], time };
  }
}

function spanOf(t: TranslatedRegex, m: RegExpExecArray, key: string): [number, number] | null {
  const aliases = t.groups.get(key) ?? [];
  for (const a of aliases) {
    const s = m.indices?.groups?.[a];
    if (s) return s;
  }
  return null;
}

/** The span of a group that ends where the match ends. */
function suffixSpan(t: TranslatedRegex, m: RegExpExecArray, key: string): [number, number] | null {
  const aliases = t.groups.get(key) ?? [];
  for (const a of aliases) {
    const text = m.groups?.[a];
    if (text === undefined) continue;
    const end = m.index + m[0].length;
    return [end - text.length, end];
  }
  return null;
}

function epochValue(text: string, long: boolean): number | null {
  if (!text) return null;
  let v = Number(text);
  if (long && text.length >= 13) v = text.length >= 16 && !text.includes('.') ? v / 1_000_000 : v / 1000;
  return Number.isFinite(v) ? v : null;
}

/** Unix time at the start of the line, in `[…]`, or inside SELinux's `audit(…:serial)`. */
class EpochTemplate implements DateTemplate {
  readonly name: string;
  readonly anchored: boolean;
  private readonly re: RegExp;

  constructor(private readonly long: boolean, lineStart: boolean) {
    const n = long ? EPOCH_LONG : EPOCH_SECONDS;
    this.name = `${lineStart ? '{^LN-BEG}' : ''}${long ? 'LongEpoch' : 'Epoch'}`;
    this.anchored = lineStart;
    this.re = lineStart
      ? new RegExp(String.raw`^(?:\[(?=${n}\])|\W{0,2}(?<!^\[))(${n})(?=\b|\W|$)`, 'd')
      : new RegExp(String.raw`(?:^|(?<=^\[)(?=${n}\])|(?<=\baudit\()(?=${n}:\d+\)))(${n})(?=\b|\W|$)`, 'd');
  }

  match(line: string): DateMatch | null {
    const m = this.re.exec(line);
    if (!m) return null;
    const [start, end] = m.indices![1]!;
    return { template: this, start, end, time: epochValue(m[1]!, this.long) };
  }
}

/**
 * daemontools' TAI64N label. fail2ban reads its seconds without removing
 * TAI's 10-second offset; so do we, to report the same times.
 */
class Tai64nTemplate implements DateTemplate {
  readonly name: string;
  readonly anchored: boolean;
  private readonly re: RegExp;

  constructor(lineStart: boolean) {
    this.name = `${lineStart ? '{^LN-BEG}' : ''}TAI64N`;
    this.anchored = lineStart;
    this.re = new RegExp(String.raw`${lineStart ? String.raw`^(?:\W{0,2})?` : ''}(@[0-9a-f]{24})(?=\b|\W|$)`, 'd');
  }

  match(line: string): DateMatch | null {
    const m = this.re.exec(line);
    if (!m) return null;
    const [start, end] = m.indices![1]!;
    return { template: this, start, end, time: parseInt(m[1]!.slice(2, 17), 16) };
  }
}

/** One `datepattern` line → template (EPOCH/LEPOCH/TAI64N keywords, `{UNB}`, `{^LN-BEG}`, `{EPOCH}`). */
export function templateFor(pattern: string, ctx: DetectorContext): DateTemplate {
  const key = pattern.includes('%') ? pattern : pattern.toUpperCase();
  const lineStartKeyword = (kw: string): boolean | null => (key === kw ? false : key === `{^LN-BEG}${kw}` || key === `^${kw}` ? true : null);
  for (const [kw, long] of [['EPOCH', false], ['LEPOCH', true]] as const) {
    const ls = lineStartKeyword(kw);
    if (ls !== null) return new EpochTemplate(long, ls);
  }
  const tai = lineStartKeyword('TAI64N');
  if (tai !== null) return new Tai64nTemplate(tai);
  let p = pattern;
  let wordBegin: boolean | 'start' = true;
  let wordEnd = true;
  if (p.startsWith('{UNB}')) { p = p.slice(5); wordBegin = wordEnd = false; }
  if (wordBegin && p.startsWith('{^LN-BEG}')) { p = p.slice(9); wordBegin = 'start'; }
  const epochField = /(?<!\\)\{(L?)EPOCH\}/i.exec(p);
  if (epochField) {
    const long = epochField[1] !== '';
    const regex = `(${p.replace(/(?<!\\)\{L?EPOCH\}/gi, `(${long ? EPOCH_LONG : EPOCH_SECONDS})`)})`;
    return new PatternTemplate(pattern, withBounds(regex, wordBegin, wordEnd), ctx, pattern, long ? 'long' : 'seconds');
  }
  const expanded = expandDatePattern(p);
  const regex = (expanded.alpha ? '(?i)' : '') + expanded.regex;
  const bounded = withBounds(regex, wordBegin, wordEnd);
  const name = (wordBegin === 'start' ? '{^LN-BEG}' : '') + expanded.name;
  return new PatternTemplate(name, bounded, ctx, pattern, null);
}

/** The built-in formats: each first anchored at the line start (preferred), then anywhere. */
function builtinTemplates(ctx: DetectorContext): DateTemplate[] {
  const anchored: DateTemplate[] = [];
  const anywhere: DateTemplate[] = [];
  for (const f of BUILTIN_FORMATS) {
    const t = templateFor(f, ctx);
    anywhere.push(t);
    const alreadyAnchored = f.startsWith('{^LN-BEG}') || f.startsWith('^');
    if (!alreadyAnchored) anchored.push(templateFor(`{^LN-BEG}${f}`, ctx));
  }
  return [...anchored, ...anywhere];
}

/** A built-in format without its own boundaries, for `{DATE}` substitution. */
function unbound(pattern: string): string {
  return pattern.replace(/^\{UNB\}/, '').replace(/^\{\^LN-BEG\}/, '').replace(/^\((?:\?:)?\^\|\\b\|\\W\)/, '').replace(/\(\?=\\b\|\\W\|\$\)$/, '');
}

/**
 * How far into a line a date is looked for. A log's date is in its header; one further in is in the
 * message, written by whoever sent it (fail2ban searches the whole line), and searching a crafted
 * 16 KiB line with every built-in format took ~2 ms.
 */
export const DATE_SEARCH_CHARS = 1024;

export class DateDetector {
  readonly templates: DateTemplate[] = [];
  /** Matches per template name (fail2ban-regex's "Date template hits"). */
  readonly hits = new Map<string, number>();
  private last: { index: number; start: number } | null = null;

  /** `datepattern` of a filter (null: the built-in formats). */
  constructor(datepattern: string | null, readonly ctx: DetectorContext) {
    const lines = datepattern === null ? ['{DEFAULT}'] : datepattern.split(/\n+/).map((s) => s.trim()).filter(Boolean);
    for (const line of lines) this.add(line);
  }

  private add(pattern: string): void {
    const key = pattern.includes('%') ? pattern : pattern.toUpperCase();
    if (key === '{DEFAULT}' || key === '{^LN-BEG}') {
      for (const t of builtinTemplates(this.ctx)) {
        if (key === '{^LN-BEG}' && !t.anchored) continue;
        if (!this.templates.some((x) => x.name === t.name)) this.templates.push(t);
      }
      return;
    }
    if (/\{DATE\}/i.test(key)) {
      for (const f of BUILTIN_FORMATS) {
        if (f === 'EPOCH' || f === 'TAI64N') continue;
        const wrapped = pattern.replace(/(?<!\\)\{DATE\}/gi, () => unbound(f));
        const t = templateFor(wrapped, this.ctx);
        if (!this.templates.some((x) => x.name === t.name)) this.templates.push(t);
      }
      return;
    }
    if (key === '{NONE}') {
      this.templates.push(templateFor('{UNB}^', this.ctx));
      return;
    }
    const t = templateFor(pattern, this.ctx);
    if (this.templates.some((x) => x.name === t.name)) throw new DatePatternError(`datepattern ${JSON.stringify(pattern)} is given twice`);
    this.templates.push(t);
  }

  /**
   * The date in `line`: the last successful template first when it matches at
   * the same place, else the first anchored match or the earliest match.
   */
  find(line: string): DateMatch | null {
    if (line.length > DATE_SEARCH_CHARS) return this.findIn(line.slice(0, DATE_SEARCH_CHARS), DATE_SEARCH_CHARS);
    return this.findIn(line, Infinity);
  }

  /** `find` in `text`; matches reaching `cut` (where a longer line was cut) may be the start of a longer date. */
  private findIn(text: string, cut: number): DateMatch | null {
    const ts = this.templates;
    const at = (i: number): DateMatch | null => {
      const m = ts[i]!.match(text);
      return m !== null && m.end < cut ? m : null;
    };
    let best: DateMatch | null = null;
    let bestIndex = -1;
    if (this.last !== null) {
      const m = at(this.last.index);
      if (m && (m.template.anchored || m.start === this.last.start || ts.length === 1)) return this.hit(m, this.last.index);
      // Matched elsewhere in the line: maybe a date inside the message; look for a better one.
      if (m) { best = m; bestIndex = this.last.index; }
    }
    const before = this.last?.start ?? 1;
    for (let i = 0; i < ts.length; i++) {
      if (this.last !== null && i === this.last.index) continue;
      const m = at(i);
      if (!m) continue;
      if (m.template.anchored || m.start <= before) return this.hit(m, i);
      if (best === null || m.start < best.start) { best = m; bestIndex = i; }
    }
    return best ? this.hit(best, bestIndex) : null;
  }

  private hit(m: DateMatch, index: number): DateMatch {
    this.last = { index, start: m.start };
    this.hits.set(m.template.name, (this.hits.get(m.template.name) ?? 0) + 1);
    return m;
  }
}
