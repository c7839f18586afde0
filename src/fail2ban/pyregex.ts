/**
 * Python `re` syntax → JavaScript RegExp, for the regular expressions in
 * fail2ban's filter files (`failregex`, `ignoreregex`, `prefregex`,
 * `datepattern`), which are Python patterns.
 *
 * The pattern is parsed into a syntax tree with Python's rules and printed
 * back as a JavaScript source that needs only the `m` flag:
 * - no `u` and no `i` flag, so that V8's linear-time engine can take over
 *   from backtracking on a hostile line (see `regex-guard.ts`): Python's
 *   Unicode classes (`\w`, `\d`, `\s`) become explicit BMP ranges, and
 *   case-insensitive parts (`(?i)`, `(?i:…)` anywhere, which JavaScript in
 *   Node 20 cannot scope) become explicit case classes;
 * - the text is matched as fail2ban matches it, with a trailing "\n", so
 *   `$` (before a final newline, or every newline in multi-line mode) is
 *   JavaScript's multi-line `$`, `.` is `[^\n]`, `\A`/`\Z` are lookarounds;
 * - every capture group gets a JavaScript name (`$N` for unnamed ones, which
 *   no Python name can collide with), so groups keep their Python numbers
 *   and names whatever the translation adds or duplicates;
 * - conditionals `(?(name)yes|no)`, which JavaScript lacks, are compiled
 *   away by enumerating, in match-priority order, the paths on which the
 *   referenced group did or did not take part (duplicated groups get aliases);
 * - atomic groups and possessive quantifiers (Python 3.11) become the
 *   lookahead-and-backreference idiom.
 * What cannot be expressed is a `PyRegexError` with the offset and the reason.
 *
 * Known, documented deviations: `\b`/`\B` use ASCII word characters; classes
 * do not contain characters outside the Basic Multilingual Plane; a
 * backreference to a group that did not take part matches the empty string
 * (Python fails the match).
 */

export class PyRegexError extends Error {
  override name = 'PyRegexError';
  constructor(readonly reason: string, readonly offset: number) {
    super(`${reason} (at offset ${offset})`);
  }
}

interface Flags {
  i: boolean;
  s: boolean;
  m: boolean;
  x: boolean;
  a: boolean;
}

type Node =
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; branches: Node[] }
  | { t: 'char'; cp: number; ci: boolean; ascii: boolean }
  | { t: 'class'; negated: boolean; items: ClassItem[]; ci: boolean; ascii: boolean }
  | { t: 'dot'; all: boolean }
  | { t: 'anchor'; kind: 'bol' | 'eol' | 'A' | 'Z' | 'b' | 'B' }
  | { t: 'group'; kind: 'capture'; index: number; name: string | null; body: Node }
  | { t: 'group'; kind: 'plain' | 'atomic' | 'ahead' | 'nahead' | 'behind' | 'nbehind'; body: Node }
  | { t: 'backref'; index: number }
  | { t: 'quant'; min: number; max: number; lazy: boolean; possessive: boolean; body: Node }
  | { t: 'cond'; index: number; yes: Node; no: Node };

type ClassItem = { lo: number; hi: number } | { cat: 'd' | 'D' | 's' | 'S' | 'w' | 'W' };

export interface TranslatedRegex {
  /** JavaScript source, to be compiled with `flags`. */
  source: string;
  flags: string;
  /** Python group name (or number as a string for unnamed groups) → JavaScript group names holding it, first wins. */
  groups: Map<string, string[]>;
  /** Python names of the named groups, in order of appearance. */
  names: string[];
  /** Number of Python capture groups. */
  groupCount: number;
  /** Python group number → its key in `groups` (the name, or the number as text). */
  keys: string[];
  /** Constructs that may backtrack catastrophically (see regex-guard.ts); empty when none. */
  hazards: string[];
  /**
   * Literal strings of which every match contains at least one, or null when
   * none could be derived: a cheap test that rules most lines out before the
   * regex runs (see requiredLiterals).
   */
  required: string[] | null;
}

const FLAG_LETTERS = 'aiLmsux';

class Parser {
  private pos = 0;
  private groupCount = 0;
  private readonly names = new Map<string, number>();
  private readonly open = new Set<number>();
  readonly hazards: string[] = [];

  constructor(private readonly src: string, private flags: Flags) {}

  parse(): { root: Node; groupCount: number; names: Map<string, number>; flags: Flags } {
    this.parseGlobalFlags();
    const root = this.parseAlt(this.flags, 0);
    if (this.pos < this.src.length) throw new PyRegexError('unbalanced parenthesis', this.pos);
    return { root, groupCount: this.groupCount, names: this.names, flags: this.flags };
  }

  /** `(?imsx)` groups are allowed only at the very start of the pattern (Python 3.11). */
  private parseGlobalFlags(): void {
    for (;;) {
      const m = /^\(\?([aiLmsux]+)\)/.exec(this.src.slice(this.pos));
      if (!m) return;
      this.applyFlags(this.flags, m[1]!, '', this.pos);
      this.pos += m[0].length;
    }
  }

  private applyFlags(flags: Flags, on: string, off: string, at: number): void {
    for (const f of on) {
      if (f === 'L') throw new PyRegexError('the LOCALE flag (?L) is not supported for text patterns', at);
      if (f === 'u') continue;
      (flags as unknown as Record<string, boolean>)[f] = true;
    }
    for (const f of off) (flags as unknown as Record<string, boolean>)[f] = false;
  }

  private peek(offset = 0): string {
    return this.src.charAt(this.pos + offset);
  }

  private parseAlt(flags: Flags, depth: number): Node {
    const branches: Node[] = [this.parseSeq(flags, depth)];
    while (this.peek() === '|') {
      this.pos++;
      branches.push(this.parseSeq(flags, depth));
    }
    return branches.length === 1 ? branches[0]! : { t: 'alt', branches };
  }

  private skipVerbose(flags: Flags): void {
    if (!flags.x) return;
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') this.pos++;
      else if (c === '#') {
        while (this.pos < this.src.length && this.peek() !== '\n') this.pos++;
      } else return;
    }
  }

  private parseSeq(flags: Flags, depth: number): Node {
    const items: Node[] = [];
    for (;;) {
      this.skipVerbose(flags);
      if (this.pos >= this.src.length) break;
      const c = this.peek();
      if (c === '|' || c === ')') {
        if (c === ')' && depth === 0) throw new PyRegexError('unbalanced parenthesis', this.pos);
        break;
      }
      const start = this.pos;
      let atom: Node | null;
      if (c === '(') atom = this.parseGroup(flags, depth);
      else if (c === '[') atom = this.parseClass(flags);
      else if (c === '.') { this.pos++; atom = { t: 'dot', all: flags.s }; }
      else if (c === '^') { this.pos++; atom = { t: 'anchor', kind: 'bol' }; }
      else if (c === '$') { this.pos++; atom = { t: 'anchor', kind: 'eol' }; }
      else if (c === '\\') atom = this.parseEscape(flags);
      else if (c === '*' || c === '+' || c === '?') throw new PyRegexError('nothing to repeat', this.pos);
      else if (c === '{' && this.quantifierAhead() !== null) throw new PyRegexError('nothing to repeat', this.pos);
      else {
        const cp = this.src.codePointAt(this.pos)!;
        this.pos += cp > 0xffff ? 2 : 1;
        atom = { t: 'char', cp, ci: flags.i, ascii: flags.a };
      }
      if (atom === null) continue; // comment or flags group
      items.push(this.parseQuantifiers(atom, flags, start));
    }
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  /** `{m}`, `{m,}`, `{,n}`, `{m,n}` at the current position, or null when `{` is a literal there. */
  private quantifierAhead(): { min: number; max: number; length: number } | null {
    const m = /^\{(\d*)(,?)(\d*)\}/.exec(this.src.slice(this.pos, this.pos + 24));
    if (!m) return null;
    if (m[0] === '{}') return null;
    if (!m[2] && !m[1]) return null;
    const min = m[1] ? Number(m[1]) : 0;
    const max = m[2] ? (m[3] ? Number(m[3]) : Infinity) : min;
    return { min, max, length: m[0].length };
  }

  private parseQuantifiers(atom: Node, flags: Flags, start: number): Node {
    let node = atom;
    let quantified = false;
    for (;;) {
      this.skipVerbose(flags);
      const c = this.peek();
      let min: number, max: number;
      if (c === '*') { min = 0; max = Infinity; this.pos++; }
      else if (c === '+') { min = 1; max = Infinity; this.pos++; }
      else if (c === '?') { min = 0; max = 1; this.pos++; }
      else if (c === '{') {
        const q = this.quantifierAhead();
        if (!q) return node;
        ({ min, max } = q);
        if (max < min) throw new PyRegexError('min repeat greater than max repeat', this.pos);
        this.pos += q.length;
      } else return node;
      if (quantified) throw new PyRegexError('multiple repeat', this.pos - 1);
      if (atom.t === 'anchor') throw new PyRegexError('nothing to repeat', start);
      let lazy = false, possessive = false;
      if (this.peek() === '?') { lazy = true; this.pos++; }
      else if (this.peek() === '+') { possessive = true; this.pos++; }
      node = { t: 'quant', min, max, lazy, possessive, body: node };
      quantified = true;
    }
  }

  private parseGroup(outer: Flags, depth: number): Node | null {
    const open = this.pos;
    this.pos++; // (
    // fail2ban rewrites `((?i)…)` and `(?:(?i)…)` to Python's scoped `(?i:…)` before compiling.
    const wrapped = /^(?:\?:)?\(\?([a-z]+)\)/.exec(this.src.slice(this.pos));
    if (wrapped) {
      this.pos += wrapped[0].length;
      const flags = { ...outer };
      this.applyFlags(flags, wrapped[1]!, '', open);
      return this.finishGroup({ kind: 'plain' }, flags, depth, open);
    }
    if (this.peek() !== '?') {
      const index = ++this.groupCount;
      this.open.add(index);
      const node = this.finishGroup({ kind: 'capture', index, name: null }, { ...outer }, depth, open);
      this.open.delete(index);
      return node;
    }
    this.pos++; // ?
    const c = this.peek();
    if (c === ':') { this.pos++; return this.finishGroup({ kind: 'plain' }, { ...outer }, depth, open); }
    if (c === '>') { this.pos++; return this.finishGroup({ kind: 'atomic' }, { ...outer }, depth, open); }
    if (c === '=') { this.pos++; return this.finishGroup({ kind: 'ahead' }, { ...outer }, depth, open); }
    if (c === '!') { this.pos++; return this.finishGroup({ kind: 'nahead' }, { ...outer }, depth, open); }
    if (c === '<') {
      const d = this.peek(1);
      if (d === '=' || d === '!') {
        this.pos += 2;
        return this.finishGroup({ kind: d === '=' ? 'behind' : 'nbehind' }, { ...outer }, depth, open);
      }
      throw new PyRegexError('unknown extension ?<' + d + ' (Python names groups with (?P<name>…))', open);
    }
    if (c === '#') {
      const end = this.src.indexOf(')', this.pos);
      if (end < 0) throw new PyRegexError('missing ), unterminated comment', open);
      this.pos = end + 1;
      return null;
    }
    if (c === 'P') {
      const k = this.peek(1);
      if (k === '<') {
        const end = this.src.indexOf('>', this.pos + 2);
        if (end < 0) throw new PyRegexError('missing >, unterminated name', this.pos);
        const name = this.src.slice(this.pos + 2, end);
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new PyRegexError(`bad character in group name '${name}'`, this.pos + 2);
        if (this.names.has(name)) throw new PyRegexError(`redefinition of group name '${name}'`, this.pos + 2);
        this.pos = end + 1;
        const index = ++this.groupCount;
        this.names.set(name, index);
        this.open.add(index);
        const node = this.finishGroup({ kind: 'capture', index, name }, { ...outer }, depth, open);
        this.open.delete(index);
        return node;
      }
      if (k === '=') {
        const end = this.src.indexOf(')', this.pos + 2);
        if (end < 0) throw new PyRegexError('missing ), unterminated name', this.pos);
        const name = this.src.slice(this.pos + 2, end);
        const index = this.names.get(name);
        if (index === undefined) throw new PyRegexError(`unknown group name '${name}'`, this.pos + 2);
        if (this.open.has(index)) throw new PyRegexError('cannot refer to an open group', open);
        this.pos = end + 1;
        return { t: 'backref', index };
      }
      throw new PyRegexError(`unknown extension ?P${k}`, open);
    }
    if (c === '(') {
      const end = this.src.indexOf(')', this.pos + 1);
      if (end < 0) throw new PyRegexError('missing ), unterminated name', this.pos);
      const ref = this.src.slice(this.pos + 1, end);
      let index: number | undefined;
      if (/^\d+$/.test(ref)) index = Number(ref);
      else index = this.names.get(ref);
      if (index === undefined || index === 0 || index > this.groupCount) throw new PyRegexError(`unknown group name '${ref}' in conditional`, this.pos + 1);
      this.pos = end + 1;
      const flags = { ...outer };
      const yes = this.parseSeq(flags, depth + 1);
      let no: Node = { t: 'seq', items: [] };
      if (this.peek() === '|') {
        this.pos++;
        no = this.parseSeq(flags, depth + 1);
        if (this.peek() === '|') throw new PyRegexError('conditional backref with more than two branches', this.pos);
      }
      if (this.peek() !== ')') throw new PyRegexError('missing ), unterminated subpattern', open);
      this.pos++;
      return { t: 'cond', index, yes, no };
    }
    const fm = /^([aiLmsux]*)(?:-([imsx]*))?([:)])/.exec(this.src.slice(this.pos));
    if (fm && (fm[1] || fm[2] !== undefined)) {
      if (fm[3] === ')') {
        throw new PyRegexError('global flags not at the start of the expression (write (?' + fm[1] + ':…) to scope them)', open);
      }
      this.pos += fm[0].length;
      const flags = { ...outer };
      this.applyFlags(flags, fm[1]!, fm[2] ?? '', open);
      return this.finishGroup({ kind: 'plain' }, flags, depth, open);
    }
    throw new PyRegexError(`unknown extension ?${c}`, open);
  }

  private finishGroup(
    head: { kind: 'capture'; index: number; name: string | null } | { kind: 'plain' | 'atomic' | 'ahead' | 'nahead' | 'behind' | 'nbehind' },
    flags: Flags,
    depth: number,
    open: number,
  ): Node {
    const body = this.parseAlt(flags, depth + 1);
    if (this.peek() !== ')') throw new PyRegexError('missing ), unterminated subpattern', open);
    this.pos++;
    return { t: 'group', ...head, body } as Node;
  }

  private parseEscape(flags: Flags): Node {
    const at = this.pos;
    const c = this.peek(1);
    if (c === '') throw new PyRegexError('bad escape (end of pattern)', at);
    this.pos += 2;
    switch (c) {
      case 'A': return { t: 'anchor', kind: 'A' };
      case 'Z': return { t: 'anchor', kind: 'Z' };
      case 'b': return { t: 'anchor', kind: 'b' };
      case 'B': return { t: 'anchor', kind: 'B' };
      case 'd': case 'D': case 's': case 'S': case 'w': case 'W':
        return { t: 'class', negated: false, items: [{ cat: c }], ci: false, ascii: flags.a };
    }
    if (c >= '1' && c <= '9') {
      // Python: three octal digits make a character; otherwise one or two digits are a group number.
      const three = /^[0-7]{3}/.exec(this.src.slice(at + 1));
      if (three && c <= '7') {
        this.pos = at + 4;
        const cp = parseInt(three[0], 8);
        if (cp > 0o377) throw new PyRegexError(`octal escape value \\${three[0]} outside of range 0-0o377`, at);
        return { t: 'char', cp, ci: flags.i, ascii: flags.a };
      }
      const m = /^\d{1,2}/.exec(this.src.slice(at + 1))!;
      this.pos = at + 1 + m[0].length;
      const index = Number(m[0]);
      if (index > this.groupCount) throw new PyRegexError(`invalid group reference ${index}`, at);
      if (this.open.has(index)) throw new PyRegexError('cannot refer to an open group', at);
      return { t: 'backref', index };
    }
    this.pos = at;
    const cp = this.charEscape(false);
    return { t: 'char', cp, ci: flags.i, ascii: flags.a };
  }

  /** An escape that stands for one character (outside or inside a class); advances past it. */
  private charEscape(inClass: boolean): number {
    const at = this.pos;
    const c = this.peek(1);
    this.pos += 2;
    const hex = (n: number): number => {
      const s = this.src.slice(this.pos, this.pos + n);
      if (s.length !== n || !/^[0-9a-fA-F]+$/.test(s)) throw new PyRegexError(`incomplete escape \\${c}${s}`, at);
      this.pos += n;
      return parseInt(s, 16);
    };
    switch (c) {
      case 'a': return 7;
      case 'f': return 12;
      case 'n': return 10;
      case 'r': return 13;
      case 't': return 9;
      case 'v': return 11;
      case 'x': return hex(2);
      case 'u': return hex(4);
      case 'U': {
        const v = hex(8);
        if (v > 0x10ffff) throw new PyRegexError(`bad escape \\U${v.toString(16)}`, at);
        return v;
      }
      case 'N': throw new PyRegexError('named Unicode escapes \\N{…} are not supported; write the character or \\uXXXX', at);
      case '0': {
        const m = /^[0-7]{0,2}/.exec(this.src.slice(this.pos))!;
        this.pos += m[0].length;
        return parseInt(`0${m[0]}`, 8);
      }
    }
    if (inClass && c === 'b') return 8;
    if (inClass && c >= '1' && c <= '7') {
      const m = /^[0-7]{1,3}/.exec(this.src.slice(at + 1))!;
      this.pos = at + 1 + m[0].length;
      return parseInt(m[0], 8);
    }
    if (/[A-Za-z0-9]/.test(c)) throw new PyRegexError(`bad escape \\${c}`, at);
    const cp = this.src.codePointAt(at + 1)!;
    this.pos = at + 1 + (cp > 0xffff ? 2 : 1);
    return cp;
  }

  private parseClass(flags: Flags): Node {
    const open = this.pos;
    this.pos++;
    let negated = false;
    if (this.peek() === '^') { negated = true; this.pos++; }
    const items: ClassItem[] = [];
    let first = true;
    for (;;) {
      if (this.pos >= this.src.length) throw new PyRegexError('unterminated character set', open);
      const c = this.peek();
      if (c === ']' && !first) { this.pos++; break; }
      first = false;
      const itemStart = this.pos;
      const lo = this.classAtom();
      if (this.peek() === '-' && this.peek(1) !== ']' && this.pos + 1 < this.src.length) {
        this.pos++;
        const hiAt = this.pos;
        const hi = this.classAtom();
        if (typeof lo !== 'number' || typeof hi !== 'number') throw new PyRegexError(`bad character range ${this.src.slice(itemStart, this.pos)}`, itemStart);
        if (hi < lo) throw new PyRegexError(`bad character range ${this.src.slice(itemStart, this.pos)}`, hiAt);
        items.push({ lo, hi });
      } else if (typeof lo === 'number') {
        items.push({ lo, hi: lo });
      } else {
        items.push(lo);
      }
    }
    return { t: 'class', negated, items, ci: flags.i, ascii: flags.a };
  }

  private classAtom(): number | { cat: 'd' | 'D' | 's' | 'S' | 'w' | 'W' } {
    const c = this.peek();
    if (c === '\\') {
      const e = this.peek(1);
      if (e === 'd' || e === 'D' || e === 's' || e === 'S' || e === 'w' || e === 'W') {
        this.pos += 2;
        return { cat: e };
      }
      if (e === 'A' || e === 'Z' || e === 'B') throw new PyRegexError(`bad escape \\${e} in a character class`, this.pos);
      return this.charEscape(true);
    }
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }
}

// ---------------------------------------------------------------------------
// Character sets

type Ranges = Array<[number, number]>;

function normalize(r: Ranges): Ranges {
  const s = r.filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: Ranges = [];
  for (const [a, b] of s) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

function complement(r: Ranges): Ranges {
  const out: Ranges = [];
  let next = 0;
  for (const [a, b] of normalize(r)) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= 0x10ffff) out.push([next, 0x10ffff]);
  return out;
}

const rangeCache = new Map<string, Ranges>();

/** BMP ranges of the code points matching a JavaScript `u` class (computed once). */
function unicodeRanges(key: string, test: RegExp): Ranges {
  let r = rangeCache.get(key);
  if (r) return r;
  r = [];
  let start = -1;
  for (let c = 0; c <= 0xffff; c++) {
    const hit = test.test(String.fromCharCode(c));
    if (hit && start < 0) start = c;
    if (!hit && start >= 0) { r.push([start, c - 1]); start = -1; }
  }
  if (start >= 0) r.push([start, 0xffff]);
  rangeCache.set(key, r);
  return r;
}

/** Python's `\s` for text patterns (str.isspace plus the separators re adds). */
const PY_SPACE: Ranges = [[0x09, 0x0d], [0x1c, 0x20], [0x85, 0x85], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000]];
const ASCII_SPACE: Ranges = [[0x09, 0x0d], [0x20, 0x20]];

function categoryRanges(cat: 'd' | 'D' | 's' | 'S' | 'w' | 'W', ascii: boolean): Ranges {
  let base: Ranges;
  switch (cat.toLowerCase()) {
    case 'd':
      base = ascii ? [[0x30, 0x39]] : unicodeRanges('d', /\p{Nd}/u);
      break;
    case 's':
      base = ascii ? ASCII_SPACE : PY_SPACE;
      break;
    default:
      // Python's \w: str.isalnum() or '_' (letters of every script, and all numerics).
      base = ascii ? [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]] : unicodeRanges('w', /[\p{L}\p{N}_]/u);
  }
  return cat === cat.toUpperCase() ? complement(base) : base;
}

let foldClasses: Map<number, number[]> | null = null;

/** Code points Python's IGNORECASE treats as equal to `cp` (simple case folding, BMP). */
function caseVariants(cp: number, ascii: boolean): number[] {
  if (ascii) {
    if (cp >= 0x41 && cp <= 0x5a) return [cp, cp + 32];
    if (cp >= 0x61 && cp <= 0x7a) return [cp - 32, cp];
    return [cp];
  }
  if (!foldClasses) {
    foldClasses = new Map();
    const byKey = new Map<string, number[]>();
    for (let c = 0; c <= 0xffff; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      const lower = String.fromCharCode(c).toLowerCase();
      if ([...lower].length !== 1) continue;
      let list = byKey.get(lower);
      if (!list) byKey.set(lower, (list = []));
      list.push(c);
    }
    for (const list of byKey.values()) {
      if (list.length < 2) continue;
      for (const c of list) foldClasses.set(c, list);
    }
    // Python also folds the upper-case form: 'ſ' (U+017F) upper-cases to 'S', Kelvin sign lower-cases to 'k'.
    for (let c = 0; c <= 0xffff; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      const upper = String.fromCharCode(c).toUpperCase();
      if ([...upper].length !== 1) continue;
      const u = upper.codePointAt(0)!;
      if (u === c) continue;
      const a = foldClasses.get(c) ?? [c];
      const b = foldClasses.get(u) ?? [u];
      if (a === b) continue;
      const merged = [...new Set([...a, ...b])];
      for (const x of merged) foldClasses.set(x, merged);
    }
  }
  return foldClasses.get(cp) ?? [cp];
}

function caseClose(r: Ranges, ascii: boolean): Ranges {
  const extra: Ranges = [];
  for (const [a, b] of r) {
    const hi = Math.min(b, 0xffff);
    for (let c = a; c <= hi; c++) {
      for (const v of caseVariants(c, ascii)) if (v < a || v > b) extra.push([v, v]);
    }
  }
  return normalize([...r, ...extra]);
}

function classRanges(node: Extract<Node, { t: 'class' }>): Ranges {
  let r: Ranges = [];
  for (const item of node.items) {
    if ('cat' in item) r.push(...categoryRanges(item.cat, node.ascii));
    else r.push([item.lo, item.hi]);
  }
  r = normalize(r);
  if (node.ci) r = caseClose(r, node.ascii);
  return node.negated ? complement(r) : r;
}

function hex4(c: number): string {
  return `\\u${c.toString(16).padStart(4, '0')}`;
}

function classChar(c: number): string {
  if (c >= 0x30 && c <= 0x39) return String.fromCharCode(c);
  if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return String.fromCharCode(c);
  if (c > 0x20 && c < 0x7f) return /[\\\]\[^\-]/.test(String.fromCharCode(c)) ? `\\${String.fromCharCode(c)}` : String.fromCharCode(c);
  return c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : hex4(c);
}

/** A JavaScript (non-`u`) class for a set of code points; astral code points are left out. */
function emitRanges(r: Ranges): string {
  const bmp = r.filter(([a]) => a <= 0xffff).map(([a, b]): [number, number] => [a, Math.min(b, 0xffff)]);
  if (bmp.length === 0) return '[^\\s\\S]';
  if (bmp.length === 1 && bmp[0]![0] === 0 && bmp[0]![1] === 0xffff) return '[\\s\\S]';
  // A negated form is shorter for "everything but a few".
  const comp = complement(bmp).filter(([a]) => a <= 0xffff).map(([a, b]): [number, number] => [a, Math.min(b, 0xffff)]);
  const body = (rs: Ranges): string => rs.map(([a, b]) => (a === b ? classChar(a) : b === a + 1 ? classChar(a) + classChar(b) : `${classChar(a)}-${classChar(b)}`)).join('');
  if (comp.length < bmp.length) return `[^${body(comp)}]`;
  if (bmp.length === 1 && bmp[0]![0] === bmp[0]![1]) return literal(bmp[0]![0]);
  return `[${body(bmp)}]`;
}

function literal(c: number): string {
  if (c > 0xffff) {
    const s = String.fromCodePoint(c);
    return hex4(s.charCodeAt(0)) + hex4(s.charCodeAt(1));
  }
  const ch = String.fromCharCode(c);
  if (/[\\^$.|?*+()[\]{}/]/.test(ch)) return `\\${ch}`;
  if (c >= 0x20 && c < 0x7f) return ch;
  return c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : hex4(c);
}

// ---------------------------------------------------------------------------
// Conditionals: enumerate the paths by whether the referenced groups took part.

type State = ReadonlyMap<number, boolean>;

function refs(node: Node, out: Set<number>): Set<number> {
  switch (node.t) {
    case 'cond': out.add(node.index); refs(node.yes, out); refs(node.no, out); break;
    case 'seq': for (const i of node.items) refs(i, out); break;
    case 'alt': for (const b of node.branches) refs(b, out); break;
    case 'group': case 'quant': refs(node.body, out); break;
  }
  return out;
}

function defines(node: Node, tracked: Set<number>): boolean {
  switch (node.t) {
    case 'group': return (node.kind === 'capture' && tracked.has(node.index)) || defines(node.body, tracked);
    case 'quant': return defines(node.body, tracked);
    case 'seq': return node.items.some((i) => defines(i, tracked));
    case 'alt': return node.branches.some((b) => defines(b, tracked));
    case 'cond': return defines(node.yes, tracked) || defines(node.no, tracked);
    default: return false;
  }
}

function hasCond(node: Node): boolean {
  switch (node.t) {
    case 'cond': return true;
    case 'group': case 'quant': return hasCond(node.body);
    case 'seq': return node.items.some(hasCond);
    case 'alt': return node.branches.some(hasCond);
    default: return false;
  }
}

const MAX_VARIANTS = 64;

/** The ways `node` can match, in priority order, each with what it leaves known about the tracked groups. */
function variants(node: Node, state: State, tracked: Set<number>): Array<[Node, State]> {
  if (!defines(node, tracked) && !hasCond(node)) return [[node, state]];
  switch (node.t) {
    case 'cond': {
      // A group not matched on this path (yet) is false, as in Python.
      return variants(state.get(node.index) ? node.yes : node.no, state, tracked);
    }
    case 'seq': {
      let acc: Array<[Node[], State]> = [[[], state]];
      for (const item of node.items) {
        const next: Array<[Node[], State]> = [];
        for (const [items, st] of acc) for (const [v, st2] of variants(item, st, tracked)) next.push([[...items, v], st2]);
        if (next.length > MAX_VARIANTS) throw new PyRegexError('too many paths through conditional groups to translate', 0);
        acc = next;
      }
      return acc.map(([items, st]) => [{ t: 'seq', items }, st]);
    }
    case 'alt':
      return node.branches.flatMap((b) => variants(b, state, tracked));
    case 'group': {
      if (node.kind !== 'capture' && node.kind !== 'plain' && defines(node.body, tracked)) {
        throw new PyRegexError('a conditional refers to a group defined inside a lookaround or atomic group', 0);
      }
      if (node.kind !== 'capture' && node.kind !== 'plain') {
        // A lookaround whose conditionals are decided by what is already known.
        const inner = variants(node.body, state, tracked);
        return [[{ ...node, body: { t: 'alt', branches: inner.map(([n]) => n) } }, state]];
      }
      return variants(node.body, state, tracked).map(([v, st]) => {
        const wrapped: Node = { ...node, body: v };
        if (node.kind === 'capture' && tracked.has(node.index)) {
          const s = new Map(st);
          s.set(node.index, true);
          return [wrapped, s];
        }
        return [wrapped, st];
      });
    }
    case 'quant': {
      if (node.max === 1 && node.min <= 1 && !node.possessive) {
        const taken = variants(node.body, state, tracked);
        if (node.min === 1) return taken;
        const skipped: [Node, State] = [{ t: 'seq', items: [] }, state];
        return node.lazy ? [skipped, ...taken] : [...taken, skipped];
      }
      if (defines(node.body, tracked)) throw new PyRegexError('a conditional refers to a group inside a repetition', 0);
      // Conditionals inside a repetition, decided by what is known before it.
      const inner = variants(node.body, state, tracked);
      return [[{ ...node, body: { t: 'alt', branches: inner.map(([n]) => n) } }, state]];
    }
    default:
      return [[node, state]];
  }
}

function compileConditionals(root: Node): Node {
  if (!hasCond(root)) return root;
  const tracked = refs(root, new Set());
  const vs = variants(root, new Map(), tracked);
  return vs.length === 1 ? vs[0]![0] : { t: 'alt', branches: vs.map(([n]) => n) };
}

// ---------------------------------------------------------------------------
// Emission

class Emitter {
  readonly groups = new Map<string, string[]>();
  /** Python group number → the JavaScript name of its most recently emitted copy (for backreferences). */
  private readonly current = new Map<number, string>();
  private readonly used = new Set<string>();
  private atomic = 0;

  constructor(private readonly nameOf: Map<number, string>, private readonly wholeBuffer: boolean) {}

  emit(node: Node): string {
    switch (node.t) {
      case 'seq': return node.items.map((i) => this.emitAtomForSeq(i)).join('');
      case 'alt': return node.branches.map((b) => this.emit(b)).join('|');
      case 'char': {
        if (!node.ci) return literal(node.cp);
        const vs = caseVariants(node.cp, node.ascii);
        return vs.length > 1 ? emitRanges(normalize(vs.map((v) => [v, v]))) : literal(node.cp);
      }
      case 'class': return emitRanges(classRanges(node));
      case 'dot': return node.all ? '[\\s\\S]' : '[^\\n]';
      case 'anchor':
        switch (node.kind) {
          // Python without MULTILINE on a multi-line buffer: only its start, and its end or before a final newline.
          case 'bol': return this.wholeBuffer ? '(?<![\\s\\S])' : '^';
          case 'eol': return this.wholeBuffer ? '(?=\\n?(?![\\s\\S]))' : '$';
          case 'A': return '(?<![\\s\\S])';
          case 'Z': return '(?![\\s\\S])';
          case 'b': return '\\b';
          case 'B': return '\\B';
        }
        break;
      case 'group': {
        const body = this.emit(node.body);
        switch (node.kind) {
          case 'capture': {
            const py = this.nameOf.get(node.index) ?? String(node.index);
            const js = this.jsName(node.index, py);
            return `(?<${js}>${body})`;
          }
          case 'plain': return `(?:${body})`;
          case 'ahead': return `(?=${body})`;
          case 'nahead': return `(?!${body})`;
          case 'behind': return `(?<=${body})`;
          case 'nbehind': return `(?<!${body})`;
          case 'atomic': return this.atomicOf(body);
        }
        break;
      }
      case 'backref': {
        const js = this.current.get(node.index);
        // A reference to a group on another path only: that group cannot have matched.
        return js === undefined ? '[^\\s\\S]' : `\\k<${js}>`;
      }
      case 'quant': {
        const body = this.emitQuantBody(node.body);
        const max = node.max === Infinity ? '' : String(node.max);
        let q: string;
        if (node.min === 0 && node.max === Infinity) q = '*';
        else if (node.min === 1 && node.max === Infinity) q = '+';
        else if (node.min === 0 && node.max === 1) q = '?';
        else if (node.min === node.max) q = `{${node.min}}`;
        else q = `{${node.min},${max}}`;
        if (node.possessive) return this.atomicOf(`${body}${q}`);
        return `${body}${q}${node.lazy ? '?' : ''}`;
      }
      case 'cond':
        throw new PyRegexError('internal: conditional left after translation', 0);
    }
    throw new PyRegexError('internal: unknown node', 0);
  }

  /** Python's atomic group: match once, never backtrack into it. */
  private atomicOf(body: string): string {
    const name = `$a${++this.atomic}`;
    return `(?=(?<${name}>${body}))\\k<${name}>`;
  }

  private emitAtomForSeq(node: Node): string {
    // An alternation inside a sequence needs a group.
    if (node.t === 'alt') return `(?:${this.emit(node)})`;
    return this.emit(node);
  }

  private emitQuantBody(node: Node): string {
    const s = this.emit(node);
    if (node.t === 'group' || node.t === 'class' || node.t === 'dot' || node.t === 'backref') return s;
    if (node.t === 'char' && (node.cp <= 0xffff || node.ci)) return s;
    return `(?:${s})`;
  }

  private jsName(index: number, py: string): string {
    const base = /^\d+$/.test(py) ? `$${py}` : py;
    let js = base;
    for (let n = 2; this.used.has(js); n++) js = `${base}$${n}`;
    this.used.add(js);
    this.current.set(index, js);
    let list = this.groups.get(py);
    if (!list) this.groups.set(py, (list = []));
    list.push(js);
    return js;
  }
}

// ---------------------------------------------------------------------------
// Hazards: constructs that let a backtracking engine take exponential or high polynomial time.

function canRepeatUnbounded(node: Node): boolean {
  switch (node.t) {
    case 'quant': return node.max === Infinity || canRepeatUnbounded(node.body);
    case 'group': return node.kind === 'capture' || node.kind === 'plain' ? canRepeatUnbounded(node.body) : false;
    case 'seq': return node.items.some(canRepeatUnbounded);
    case 'alt': return node.branches.some(canRepeatUnbounded);
    case 'cond': return canRepeatUnbounded(node.yes) || canRepeatUnbounded(node.no);
    default: return false;
  }
}

function findHazards(node: Node, out: string[]): void {
  switch (node.t) {
    case 'quant':
      if (node.max === Infinity && !node.possessive && canRepeatUnbounded(node.body)) {
        out.push('nested unbounded repetition (a repeated group that itself contains * or +)');
        return;
      }
      findHazards(node.body, out);
      return;
    case 'group': findHazards(node.body, out); return;
    case 'seq': for (const i of node.items) findHazards(i, out); return;
    case 'alt': for (const b of node.branches) findHazards(b, out); return;
    case 'cond': findHazards(node.yes, out); findHazards(node.no, out); return;
  }
}

// ---------------------------------------------------------------------------

/**
 * Translates a Python pattern. `^`/`$` match at every line of the buffer
 * (Python's MULTILINE, which fail2ban uses for failregexes when `maxlines` > 1,
 * and the same thing on a one-line buffer) unless `wholeBuffer` asks for
 * Python's default on a multi-line buffer (prefregex and ignoreregex).
 */
export function translatePythonRegex(pattern: string, options: { ignoreCase?: boolean; wholeBuffer?: boolean } = {}): TranslatedRegex {
  const flags: Flags = { i: options.ignoreCase ?? false, s: false, m: false, x: false, a: false };
  const parser = new Parser(pattern, flags);
  const parsed = parser.parse();
  const nameOf = new Map<number, string>();
  for (const [name, index] of parsed.names) nameOf.set(index, name);
  const root = compileConditionals(parsed.root);
  const emitter = new Emitter(nameOf, options.wholeBuffer ?? false);
  const source = emitter.emit(root);
  const hazards: string[] = [];
  findHazards(parsed.root, hazards);
  const keys: string[] = [''];
  for (let i = 1; i <= parsed.groupCount; i++) keys.push(nameOf.get(i) ?? String(i));
  const { required } = literalsOf(parsed.root);
  return { source, flags: 'm', groups: emitter.groups, names: [...parsed.names.keys()], groupCount: parsed.groupCount, keys, hazards: [...new Set(hazards)], required };
}

/**
 * What a node tells about the text it matches: `exact` when it always matches
 * that one string (anchors match ''), `required` when every match contains at
 * least one of those strings. Case-insensitive letters end a literal (their
 * spelling in the log is not known); lookarounds, classes and optional parts
 * require nothing.
 */
interface Literals {
  exact: string | null;
  required: string[] | null;
}

function literalsOf(node: Node): Literals {
  switch (node.t) {
    case 'char': {
      const c = String.fromCodePoint(node.cp);
      const caseless = !node.ci || c.toLowerCase() === c.toUpperCase();
      return caseless ? { exact: c, required: [c] } : { exact: null, required: null };
    }
    case 'anchor':
      return { exact: '', required: null };
    case 'group':
      return node.kind === 'capture' || node.kind === 'plain' || node.kind === 'atomic' ? literalsOf(node.body) : { exact: node.kind === 'ahead' || node.kind === 'nahead' || node.kind === 'behind' || node.kind === 'nbehind' ? '' : null, required: null };
    case 'quant': {
      if (node.min === 0) return { exact: null, required: null };
      const body = literalsOf(node.body);
      if (body.exact !== null && node.min === node.max) return { exact: body.exact.repeat(node.min), required: body.exact === '' ? null : [body.exact.repeat(node.min)] };
      return { exact: null, required: body.required };
    }
    case 'alt': {
      const parts = node.branches.map(literalsOf);
      if (parts.every((p) => p.exact !== null && p.exact === parts[0]!.exact)) return parts[0]!;
      if (parts.some((p) => p.required === null)) return { exact: null, required: null };
      return { exact: null, required: [...new Set(parts.flatMap((p) => p.required!))] };
    }
    case 'seq': {
      let run = '';
      let exact = true;
      let best: string[] | null = null;
      const consider = (candidate: string[] | null): void => {
        if (candidate === null || candidate.some((c) => c === '')) return;
        if (best === null || strength(candidate) > strength(best)) best = candidate;
      };
      for (const item of node.items) {
        const l = literalsOf(item);
        if (l.exact !== null) {
          run += l.exact;
          continue;
        }
        exact = false;
        if (run) consider([run]);
        run = '';
        consider(l.required);
      }
      if (run) consider([run]);
      return { exact: exact ? run : null, required: best };
    }
    default:
      return { exact: null, required: null };
  }
}

/**
 * How well a set of alternative literals rules lines out: its shortest
 * member's length without surrounding spaces (` user ` is in every other log
 * line), fewer members breaking ties.
 */
function strength(literals: readonly string[]): number {
  return Math.min(...literals.map((l) => l.trim().length)) * 100 - literals.length;
}

/** Reads the Python groups of a JavaScript match made with a translated regex. */
export function pythonGroups(t: TranslatedRegex, m: { groups?: Record<string, string | undefined> }): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  const g = m.groups ?? {};
  for (const [py, aliases] of t.groups) {
    let v: string | undefined;
    for (const a of aliases) {
      if (g[a] !== undefined) { v = g[a]; break; }
    }
    out[py] = v;
  }
  return out;
}
