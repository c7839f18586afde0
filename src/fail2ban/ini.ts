/**
 * One fail2ban configuration file, read with the rules of Python's
 * ConfigParser as fail2ban sets it up: `[section]` headers, `name = value` or
 * `name: value` (names are case-insensitive, kept lower-case), values
 * continued on indented lines (blank lines inside are kept, trailing ones
 * dropped), `#`/`;` comment lines, and `;` after white space as an inline
 * comment. Every value remembers the file and line of each of its lines, so
 * later errors can point at them.
 */

export interface IniValue {
  value: string;
  file: string;
  /** 1-based line of the value's first line; `lines[i]` is the line of the value's i-th line. */
  line: number;
  lines: number[];
}

export interface IniFile {
  file: string;
  defaults: Map<string, IniValue>;
  /** Sections in file order (DEFAULT excluded). */
  sections: Map<string, Map<string, IniValue>>;
  problems: Array<{ line: number; message: string }>;
}

export function parseIni(text: string, file: string): IniFile {
  const out: IniFile = { file, defaults: new Map(), sections: new Map(), problems: [] };
  let current: Map<string, IniValue> | null = null;
  let option: IniValue | null = null;
  let optionIndent = -1;
  const parts: string[] = [];
  const finish = (): void => {
    if (option) {
      option.value = parts.join('\n').replace(/\s+$/, '');
      while (option.lines.length > option.value.split('\n').length) option.lines.pop();
    }
    option = null;
    parts.length = 0;
  };
  const lines = text.replace(/^\ufeff/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const lineNo = i + 1;
    const stripped = raw.trim();
    const isComment = stripped.startsWith('#') || stripped.startsWith(';');
    const value = isComment ? '' : stripInlineComment(raw).trim();
    if (value === '') {
      // A blank line may belong to a multi-line value; a comment line never ends one.
      if (!isComment && option) { parts.push(''); option.lines.push(lineNo); }
      continue;
    }
    const indent = raw.length - raw.trimStart().length;
    if (option && indent > optionIndent) {
      parts.push(value);
      option.lines.push(lineNo);
      continue;
    }
    finish();
    const header = /^\[(.+)\]$/.exec(value);
    if (header) {
      const name = header[1]!;
      if (name === 'DEFAULT') current = out.defaults;
      else {
        current = out.sections.get(name) ?? new Map();
        if (out.sections.has(name)) out.problems.push({ line: lineNo, message: `section [${name}] appears twice; the later values win` });
        out.sections.set(name, current);
      }
      continue;
    }
    if (current === null) {
      out.problems.push({ line: lineNo, message: 'option before any [section] header' });
      continue;
    }
    const opt = /^(.*?)\s*[=:]\s*(.*)$/.exec(value);
    if (!opt || opt[1] === '') {
      out.problems.push({ line: lineNo, message: `cannot read "${value.slice(0, 60)}": expected "name = value"` });
      continue;
    }
    option = { value: '', file, line: lineNo, lines: [lineNo] };
    optionIndent = indent;
    parts.push(opt[2]!);
    current.set(opt[1]!.toLowerCase(), option);
  }
  finish();
  return out;
}

/** ConfigParser's inline comments: `;` at the start or after white space ends the value. */
function stripInlineComment(line: string): string {
  for (let i = line.indexOf(';'); i >= 0; i = line.indexOf(';', i + 1)) {
    if (i === 0 || /\s/.test(line[i - 1]!)) return line.slice(0, i);
  }
  return line;
}
