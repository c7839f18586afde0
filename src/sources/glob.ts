import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { escapeRegExp } from '../core/regexp.js';

/**
 * The small part of shell globbing that log paths need, hand-written (a few
 * dozen lines, no dependency): `*`, `?`, `[abc]`, `[!abc]`, `[a-z]` within one
 * path segment, and `{a,b}` alternatives anywhere. `*` and `?` do not match a
 * leading dot; `**` means the same as `*` (no recursion into subdirectories).
 */

/** True when the text uses glob syntax. */
export function hasGlobSyntax(text: string): boolean {
  return /[*?[{]/.test(text);
}

/** `a{b,c}d` → `abd`, `acd` (nested and repeated braces too); an unbalanced brace is literal. */
export function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) return [pattern];
  let depth = 0;
  const commas: number[] = [];
  for (let i = open; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '{') depth++;
    else if (c === ',' && depth === 1) commas.push(i);
    else if (c === '}' && --depth === 0) {
      if (commas.length === 0) break;
      const head = pattern.slice(0, open);
      const tail = pattern.slice(i + 1);
      const bounds = [open, ...commas, i];
      const out: string[] = [];
      for (let k = 0; k + 1 < bounds.length; k++) {
        for (const variant of expandBraces(head + pattern.slice(bounds[k]! + 1, bounds[k + 1]!) + tail)) out.push(variant);
      }
      return out;
    }
  }
  // No alternatives in the first brace: keep it literal and expand what follows it.
  return expandBraces(pattern.slice(open + 1)).map((rest) => pattern.slice(0, open + 1) + rest);
}

/** Compiles one path segment (no `/`, no braces) into an anchored RegExp. */
export function segmentMatcher(segment: string): RegExp {
  let re = /^[*?[]/.test(segment) ? '^(?!\\.)' : '^';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') {
      re += '.*';
      while (segment[i + 1] === '*') i++;
    } else if (c === '?') {
      re += '.';
    } else if (c === '[') {
      let j = i + 1;
      const negated = segment[j] === '!' || segment[j] === '^';
      if (negated) j++;
      if (segment[j] === ']') j++;
      const close = segment.indexOf(']', j);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      const body = segment.slice(negated ? i + 2 : i + 1, close).replace(/[\\\]^[]/g, '\\$&');
      re += `[${negated ? '^' : ''}${body}]`;
      i = close;
    } else if (c === '\\' && i + 1 < segment.length) {
      re += escapeRegExp(segment[++i]!);
    } else {
      re += escapeRegExp(c);
    }
  }
  return new RegExp(`${re}$`, 's');
}

/** One brace-free variant of a pattern: the directory part and the file name part. */
export interface GlobVariant {
  /** The variant as an absolute path. */
  path: string;
  /** Absolute directory part, possibly with glob syntax. */
  dir: string;
  name: string;
  /** Matcher for file names in the directories, or null when the name is literal. */
  nameMatcher: RegExp | null;
}

/** Splits a configured pattern into absolute, brace-free variants (relative paths resolve against the working directory). */
export function compilePattern(pattern: string): GlobVariant[] {
  return expandBraces(pattern).map((variant) => {
    const path = resolve(variant);
    const cut = path.lastIndexOf('/');
    const dir = cut === 0 ? '/' : path.slice(0, cut);
    const name = path.slice(cut + 1);
    return { path, dir, name, nameMatcher: hasGlobSyntax(name) ? segmentMatcher(name) : null };
  });
}

/**
 * The directories an absolute directory pattern stands for now. A literal
 * pattern is returned as is, existing or not (it can be watched once it
 * appears); unreadable directories on the way are reported in `errors`.
 */
export function matchDirectories(dirPattern: string, errors: string[]): string[] {
  if (!hasGlobSyntax(dirPattern)) return [dirPattern];
  let current = ['/'];
  for (const segment of dirPattern.split('/')) {
    if (segment === '') continue;
    if (!hasGlobSyntax(segment)) {
      current = current.map((dir) => join(dir, segment));
      continue;
    }
    const matcher = segmentMatcher(segment);
    const next: string[] = [];
    for (const dir of current) {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`${dir}: cannot list directory (${(err as Error).message})`);
        continue;
      }
      for (const entry of entries) {
        if (!matcher.test(entry.name)) continue;
        const full = join(dir, entry.name);
        if (entry.isDirectory() || (entry.isSymbolicLink() && isDirectory(full))) next.push(full);
      }
    }
    current = next;
  }
  return current;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

/** A predicate telling whether an absolute path is one the pattern stands for (used to route lines to jails). */
export function pathMatcher(pattern: string): (path: string) => boolean {
  const variants = compilePattern(pattern).map((v) => v.path.split('/').map((seg) => (hasGlobSyntax(seg) ? segmentMatcher(seg) : seg)));
  return (path) => {
    const segs = path.split('/');
    return variants.some((v) => v.length === segs.length && v.every((m, i) => (typeof m === 'string' ? m === segs[i] : m.test(segs[i]!))));
  };
}
