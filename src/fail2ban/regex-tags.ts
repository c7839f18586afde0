/**
 * fail2ban's regex tags (`<HOST>`, `<ADDR>`, `<F-USER>…</F-USER>`, `<SKIPLINES>` …)
 * expanded into Python regex text, before translation (fail2ban does the same
 * textual expansion before compiling). The address patterns are our own;
 * what they must accept is fixed by fail2ban's documented tag meanings:
 *
 * - `<IP4>`: a dotted quad, optionally IPv4-mapped (`::ffff:` prefix), group `ip4`
 * - `<IP6>`: an IPv6 address, group `ip6`
 * - `<ADDR>`: either, optionally in brackets
 * - `<DNS>`: a host name, group `dns`
 * - `<HOST>`: `<ADDR>` or `<DNS>` (only `<ADDR>` when usedns = no)
 * - `<CIDR>`: a prefix length, group `cidr`; `<SUBNET>`: `<ADDR>` with optional `/<CIDR>`
 * - `<F-ID>`/`<F-PORT>`: a non-space failure id (`fid`), a port (`fport`)
 * - `<F-NAME>…</F-NAME>`: a named group `name` (lower-cased; `id` → `fid`, `port` → `fport`)
 * - `<SKIPLINES>`: any number of whole lines in a multi-line buffer
 */

const IP4 = String.raw`(?:::ffff:)?(?P<ip4>(?:[0-9]{1,3}\.){3}[0-9]{1,3})`;
/**
 * One to seven `hex:` or `:` pieces, then hex or `:`. Written as nested optional
 * groups rather than `{1,7}`: the same matches in the same order, but small
 * enough for V8's linear-time engine (see regex-guard.ts).
 */
const IP6_PIECE = '(?:[0-9A-Fa-f]{1,4}:|:)';
const IP6_BODY = `${IP6_PIECE}${'(?:'.repeat(6).replace(/\(\?:/g, `(?:${IP6_PIECE}`)}${')?'.repeat(6)}(?:[0-9A-Fa-f]{1,4}|:)`;
const IP6 = `(?P<ip6>${IP6_BODY})`;
const DNS = String.raw`(?P<dns>[\w.-]*\w)`;
const ADDR = String.raw`\[?(?:${IP4}|${IP6})\]?`;
const CIDR = String.raw`(?P<cidr>\d+)`;

const FIXED: Record<string, string> = {
  IP4, 'F-IP4/': IP4,
  IP6, 'F-IP6/': IP6,
  ADDR, 'F-ADDR/': ADDR,
  DNS, 'F-DNS/': DNS,
  CIDR, 'F-CIDR/': CIDR,
  SUBNET: String.raw`\[?(?:${IP4}|${IP6})(?:/${CIDR})?\]?`,
  'F-SUBNET/': String.raw`\[?(?:${IP4}|${IP6})(?:/${CIDR})?\]?`,
  'F-ID/': String.raw`(?P<fid>\S+)`,
  'F-PORT/': String.raw`(?P<fport>\w+)`,
};

/** fail2ban's short names for custom groups. */
function groupName(tag: string): string {
  const n = tag.toLowerCase();
  return n === 'id' ? 'fid' : n === 'port' ? 'fport' : n;
}

/** Expands the tags of one regex; `usedns: 'no'` makes `<HOST>` an address only. */
export function expandRegexTags(regex: string, usedns = 'warn'): string {
  const opened = new Set<string>();
  let skiplines = 0;
  return regex.replace(/<\/?[\w-]+\/?>/g, (tag) => {
    const name = tag.slice(1, -1);
    if (name === 'HOST') return usedns === 'no' ? ADDR : `(?:${ADDR}|${DNS})`;
    if (name === 'SKIPLINES') return String.raw`\n(?P<skiplines${skiplines++}>(?:(?:.*\n)*?))`;
    const fixed = FIXED[name];
    if (fixed !== undefined) return fixed;
    const custom = /^(\/?)F-([A-Z0-9_-]+)$/.exec(name);
    if (!custom) return tag;
    const [, close, id] = custom as unknown as [string, string, string];
    if (close) return opened.has(id) ? ')' : tag;
    opened.add(id);
    return `(?P<${groupName(id)}>`;
  });
}
