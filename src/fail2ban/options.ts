/**
 * The small languages inside fail2ban option values: `name[opt=val, opt2="v, w"]`
 * references to filters and actions, lists split on spaces/commas/newlines,
 * and `<tag>` substitution between the options of a filter or action.
 */

export class OptionSyntaxError extends Error {
  override name = 'OptionSyntaxError';
}

/** `sshd[mode=aggressive, port="22,2222"][logtype=journal]` → ['sshd', {mode, port, logtype}]. */
export function extractOptions(text: string): { name: string; options: Map<string, string> } {
  const open = text.indexOf('[');
  const options = new Map<string, string>();
  if (open < 0) {
    const name = text.trim();
    if (!name) throw new OptionSyntaxError('empty name');
    return { name, options };
  }
  const name = text.slice(0, open).trim();
  if (!name) throw new OptionSyntaxError(`no name before "[" in ${JSON.stringify(text)}`);
  let i = open + 1;
  const s = text;
  const fail = (what: string): never => {
    throw new OptionSyntaxError(`${what} at offset ${i} of ${JSON.stringify(text)}`);
  };
  for (;;) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (s[i] === ']') {
      i++;
      while (i < s.length && /\s/.test(s[i]!)) i++;
      if (i >= s.length) break;
      if (s[i] === '[') { i++; continue; }
      fail('unexpected text after "]"');
    }
    if (i >= s.length) fail('missing "]"');
    const key = /^[\w.-]+/.exec(s.slice(i));
    if (!key) fail('expected option=value');
    i += key![0].length;
    if (s[i] !== '=') fail(`expected "=" after ${key![0]}`);
    i++;
    let value: string;
    const q = s[i];
    if (q === '"' || q === "'") {
      const end = s.indexOf(q, i + 1);
      if (end < 0) fail('unterminated quoted value');
      value = s.slice(i + 1, end);
      i = end + 1;
    } else {
      let end = i;
      while (end < s.length && s[end] !== ',' && s[end] !== ']') end++;
      value = s.slice(i, end);
      i = end;
    }
    options.set(key![0].trim(), value.trim());
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (s[i] === ',') { i++; continue; }
    if (s[i] === ']') continue;
    fail('expected "," or "]"');
  }
  return { name, options };
}

/** Splits an `action =` value into its entries, keeping `[…]` options (which may span lines) together. */
export function splitWithOptions(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const start = i;
    let depth = 0;
    let quote: string | null = null;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (quote) { if (c === quote) quote = null; continue; }
      if (depth > 0 && (c === '"' || c === "'")) { quote = c; continue; }
      if (c === '[') depth++;
      else if (c === ']') depth--;
      else if (depth === 0 && /\s/.test(c)) {
        // `name [opts]` with a space before the bracket still belongs together.
        let j = i;
        while (j < text.length && /\s/.test(text[j]!)) j++;
        if (text[j] === '[') { i = j - 1; continue; }
        break;
      }
    }
    out.push(text.slice(start, i).trim());
  }
  return out.filter(Boolean);
}

/** fail2ban's splitwords: on spaces, commas and newlines, empty entries dropped. */
export function splitWords(text: string | undefined): string[] {
  if (!text) return [];
  return text.split(/[ ,\n]+/).map((s) => s.trim()).filter(Boolean);
}

const MAX_TAG_REPLACEMENTS = 25;

/**
 * Replaces `<tag>` references inside option values by other options' values,
 * recursively (`b = <a>_3` with `a = 3` gives `3_3`); `lookup` supplies
 * values that are not among `tags`. Unknown tags stay (they are regex tags
 * like `<HOST>` or action placeholders). Self references are errors.
 */
export function substituteTags(
  tags: ReadonlyMap<string, string>,
  lookup: (name: string) => string | undefined,
  ignore: ReadonlySet<string> = new Set(),
): Map<string, string> {
  const result = new Map(tags);
  const counts = new Map<string, Map<string, number>>();
  const done = new Set<string>();
  for (let pass = 0; pass < 100; pass++) {
    let again = false;
    for (const [key, original] of result) {
      if (ignore.has(key) || done.has(key)) continue;
      let value = original;
      const count = counts.get(key) ?? new Map<string, number>();
      const re = /<([^ <>]+)>/g;
      let m: RegExpExecArray | null;
      while ((m = re.exec(value)) !== null) {
        const ref = m[1]!;
        if (ignore.has(ref)) continue;
        if (ref === key || (count.get(ref) ?? 0) > MAX_TAG_REPLACEMENTS) {
          throw new OptionSyntaxError(`option "${key}" refers to itself through <${ref}>; the tags cannot be resolved`);
        }
        const repl = result.get(ref) ?? lookup(ref);
        if (repl === undefined) continue;
        value = value.split(`<${ref}>`).join(repl);
        count.set(ref, (count.get(ref) ?? 0) + 1);
        re.lastIndex = m.index;
      }
      if (value !== original) {
        if (/<[^ <>]+>/.test(value)) { counts.set(key, count); again = true; }
        result.set(key, value);
      }
      if (!value.includes('<')) done.add(key);
    }
    if (!again) break;
  }
  return result;
}
