import { networkCovers, parseNetwork, type Family, type Network } from '../core/address.js';
import { DnsError, type DnsAnswer, type DnsLookup, type MxRecord } from './dns.js';

/**
 * Turns a domain's SPF policy (RFC 7208) into the networks allowed to send its
 * mail, so an allowlist can keep a mailer in that the admin depends on.
 *
 * check_host() answers "may this one address send for this domain?"; an
 * allowlist needs the whole set of addresses whose answer is `pass`. It is
 * computed per address family (a host may have A but no AAAA records, so void
 * lookups differ), walking the terms in order like check_host() does:
 * - `ip4`, `ip6`, `a`, `mx` and `include` match a set of networks; with the `+`
 *   qualifier (the default) the part not matched by an earlier term of the same
 *   record is a pass, other qualifiers only hide later terms;
 * - `all` ends the record (`+all` would allow the whole Internet: it is refused
 *   and reported); `redirect=` applies to what no term matched, and is ignored
 *   when the record has `all`;
 * - `ptr`, `exists` and macros that name the connecting client (`%{i}`, `%{s}`…)
 *   cannot be turned into a list of addresses: they count as lookups, match
 *   nothing here, and are reported;
 * - at most 10 terms that query DNS (`include`, `a`, `mx`, `ptr`, `exists`,
 *   `redirect`), at most 2 void lookups (NXDOMAIN or no records), and at most 10
 *   MX hosts per `mx`; beyond that check_host() gives `permerror`.
 *
 * On `permerror` or `temperror` the result keeps the networks matched before the
 * term that failed: check_host() stops at the first matching term, so exactly
 * those addresses get `pass` from a real receiver, and everything after the
 * failing term gets the error. Lookups are counted as for an address that
 * matched no earlier term (the most any address can need), so the limit is
 * never reached later than a receiver would reach it.
 */

export const SPF_LOOKUP_LIMIT = 10;
export const SPF_VOID_LOOKUP_LIMIT = 2;
export const SPF_MX_LIMIT = 10;

export interface SpfProblem {
  /** `none`: the domain publishes no SPF record; the rest are RFC 7208 results. */
  kind: 'none' | 'permerror' | 'temperror';
  message: string;
}

export interface SpfExpansion {
  domain: string;
  /** Networks whose check_host() result is `pass` (both families, nested ones folded). */
  networks: Network[];
  /** Seconds until the first DNS answer used expires: when to resolve again. */
  ttl: number;
  /** DNS-querying terms evaluated (the larger of the two families). */
  lookups: number;
  /** Why evaluation stopped early (per family when the families differ), or null. */
  problem: SpfProblem | null;
  /** Terms that match nothing here (ptr, exists, client macros) or were refused (+all). */
  notes: string[];
}

type Qualifier = '+' | '-' | '~' | '?';

type Term =
  | { kind: 'all'; qualifier: Qualifier; text: string }
  | { kind: 'ip'; qualifier: Qualifier; network: Network; text: string }
  | { kind: 'a' | 'mx'; qualifier: Qualifier; domain: string | null; cidr4: number; cidr6: number; text: string }
  | { kind: 'include' | 'exists'; qualifier: Qualifier; domain: string; text: string }
  | { kind: 'ptr'; qualifier: Qualifier; domain: string | null; text: string };

interface SpfRecord {
  terms: Term[];
  redirect: string | null;
}

class SpfStop extends Error {
  constructor(readonly problem: SpfProblem) {
    super(problem.message);
  }
}

/** Expands `domain`'s SPF policy into the networks that pass it. Never throws for DNS or policy errors: see `problem`. */
export async function expandSpf(domain: string, dns: DnsLookup): Promise<SpfExpansion> {
  const cache = new CachingLookup(dns);
  const runs = [];
  for (const family of [4, 6] as const) runs.push(await new FamilyEvaluation(family, cache, domain).run());
  const [v4, v6] = runs as [FamilyResult, FamilyResult];
  let problem: SpfProblem | null = null;
  if (v4.problem && v6.problem && v4.problem.message === v6.problem.message) problem = v4.problem;
  else if (v4.problem || v6.problem) {
    const p = (v4.problem ?? v6.problem)!;
    const parts = [v4.problem && `IPv4: ${v4.problem.message}`, v6.problem && `IPv6: ${v6.problem.message}`].filter(Boolean);
    problem = { kind: p.kind, message: parts.join('; ') };
  }
  return {
    domain,
    networks: foldNested([...v4.pass, ...v6.pass]),
    ttl: cache.ttl,
    lookups: Math.max(v4.lookups, v6.lookups),
    problem,
    notes: [...new Set([...v4.notes, ...v6.notes])],
  };
}

interface FamilyResult {
  pass: Network[];
  problem: SpfProblem | null;
  lookups: number;
  notes: string[];
}

class FamilyEvaluation {
  private lookups = 0;
  private voids = 0;
  private readonly notes: string[] = [];
  private readonly pass: Network[] = [];

  constructor(private readonly family: Family, private readonly dns: CachingLookup, private readonly top: string) {}

  async run(): Promise<FamilyResult> {
    let problem: SpfProblem | null = null;
    try {
      await this.evaluate(this.top.toLowerCase(), null, []);
    } catch (err) {
      if (!(err instanceof SpfStop)) throw err;
      problem = err.problem;
    }
    return { pass: this.pass, problem, lookups: this.lookups, notes: this.notes };
  }

  /**
   * Evaluates one record. Passes are added to `this.pass` as they are found (so an
   * error later keeps them), minus `hidden` (what enclosing records matched before).
   * `via` is the include/redirect term that led here (null at the top). Returns the
   * networks for which this record's result is `pass`, for the enclosing include.
   */
  private async evaluate(domain: string, via: string | null, hidden: readonly Network[], collect = true): Promise<Network[]> {
    const record = await this.record(domain, via);
    const passes: Network[] = [];
    const matched: Network[] = [];
    const hasAll = record.terms.some((t) => t.kind === 'all');
    const addPass = (nets: Network[]): void => {
      const fresh = subtract(nets, matched);
      passes.push(...fresh);
      if (collect) this.pass.push(...subtract(fresh, hidden));
    };
    for (const term of record.terms) {
      if (term.kind === 'all') {
        if (term.qualifier === '+') this.note(`${domain}: ignored "${term.text}": it would allowlist every address`);
        return passes;
      }
      let nets: Network[] | null;
      switch (term.kind) {
        case 'ip':
          nets = term.network.family === this.family ? [term.network] : [];
          break;
        case 'a': {
          this.countLookup(term.text, domain);
          const target = this.target(term.domain ?? '%{d}', domain, term.text);
          nets = target === null ? null : (await this.addresses(target, true, term.text)).map((a) => widen(a, this.family === 4 ? term.cidr4 : term.cidr6));
          break;
        }
        case 'mx': {
          this.countLookup(term.text, domain);
          const target = this.target(term.domain ?? '%{d}', domain, term.text);
          nets = target === null ? null : await this.mxNetworks(target, term.text, this.family === 4 ? term.cidr4 : term.cidr6);
          break;
        }
        case 'include': {
          this.countLookup(term.text, domain);
          const target = this.target(term.domain, domain, term.text);
          if (target === null) {
            nets = null;
            break;
          }
          // An include that passes is a pass here only with `+`; otherwise its passes are this record's fails.
          const inner = term.qualifier === '+'
            ? await this.evaluate(target, term.text, [...hidden, ...matched], collect)
            : await this.evaluate(target, term.text, [], false);
          nets = inner;
          break;
        }
        case 'ptr':
        case 'exists':
          this.countLookup(term.text, domain);
          this.note(`${domain}: "${term.text}" depends on the connecting address and matches nothing in an allowlist`);
          nets = null;
          break;
      }
      if (nets === null) continue;
      if (term.qualifier === '+') addPass(nets);
      matched.push(...nets);
    }
    if (record.redirect !== null && !hasAll) {
      const text = `redirect=${record.redirect}`;
      this.countLookup(text, domain);
      const target = this.target(record.redirect, domain, text);
      if (target !== null) {
        const inner = await this.evaluate(target, text, [...hidden, ...matched], collect);
        passes.push(...subtract(inner, matched));
      }
    }
    return passes;
  }

  private async record(domain: string, via: string | null): Promise<SpfRecord> {
    const answer = await this.lookup(domain, 'TXT', via ?? domain, via !== null);
    const spf = answer.records.filter((r) => /^v=spf1( |$)/i.test(r));
    if (spf.length === 0) {
      if (via === null) throw new SpfStop({ kind: 'none', message: `${domain} publishes no SPF record (a TXT record starting with "v=spf1")` });
      throw new SpfStop({ kind: 'permerror', message: `"${via}": ${domain} publishes no SPF record` });
    }
    if (spf.length > 1) throw new SpfStop({ kind: 'permerror', message: `${domain} publishes ${spf.length} SPF records; RFC 7208 allows one` });
    try {
      return parseSpfRecord(spf[0]!);
    } catch (err) {
      throw new SpfStop({ kind: 'permerror', message: `${domain}: ${(err as Error).message}` });
    }
  }

  private countLookup(term: string, domain: string): void {
    if (++this.lookups > SPF_LOOKUP_LIMIT) {
      throw new SpfStop({ kind: 'permerror', message: `"${term}" in ${domain} is DNS-querying term number ${this.lookups}; RFC 7208 allows ${SPF_LOOKUP_LIMIT}` });
    }
  }

  /** Expands a domain-spec; null (with a note) when it names the connecting client. */
  private target(spec: string, domain: string, term: string): string | null {
    const expanded = expandMacros(spec, { d: domain, o: this.top.toLowerCase() });
    if (expanded === null) {
      this.note(`${domain}: "${term}" uses a macro of the connecting client and matches nothing in an allowlist`);
      return null;
    }
    if (!isDomainName(expanded)) throw new SpfStop({ kind: 'permerror', message: `${domain}: "${term}" names ${JSON.stringify(expanded)}, which is not a domain name` });
    return expanded.toLowerCase();
  }

  private async addresses(name: string, countVoid: boolean, term: string): Promise<string[]> {
    const answer = await this.lookup(name, this.family === 4 ? 'A' : 'AAAA', term, countVoid);
    return answer.records;
  }

  private async mxNetworks(name: string, term: string, cidr: number): Promise<Network[]> {
    const mx = await this.lookup(name, 'MX', term, true);
    if (mx.records.length > SPF_MX_LIMIT) {
      throw new SpfStop({ kind: 'permerror', message: `"${term}": ${name} has ${mx.records.length} MX records; RFC 7208 allows looking up ${SPF_MX_LIMIT}` });
    }
    const nets: Network[] = [];
    const hosts = [...mx.records].sort((a, b) => a.preference - b.preference);
    for (const host of hosts) {
      if (host.exchange === '') continue; // null MX (RFC 7505): the domain receives no mail
      for (const a of await this.addresses(host.exchange, false, term)) nets.push(widen(a, cidr));
    }
    return nets;
  }

  private async lookup<T extends 'A' | 'AAAA' | 'TXT' | 'MX'>(name: string, type: T, term: string, countVoid: boolean): Promise<DnsAnswer<T extends 'MX' ? MxRecord : string>> {
    let answer: DnsAnswer<string | MxRecord>;
    try {
      answer = await this.dns.query(name, type);
    } catch (err) {
      if (err instanceof DnsError) throw new SpfStop({ kind: 'temperror', message: `"${term}": ${err.message}` });
      throw err;
    }
    if (countVoid && answer.status !== 'ok' && ++this.voids > SPF_VOID_LOOKUP_LIMIT) {
      throw new SpfStop({ kind: 'permerror', message: `"${term}": ${type} lookup of ${name} is void lookup number ${this.voids} (${answer.status === 'nxdomain' ? 'no such name' : 'no records'}); RFC 7208 allows ${SPF_VOID_LOOKUP_LIMIT}` });
    }
    return answer as DnsAnswer<T extends 'MX' ? MxRecord : string>;
  }

  private note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text);
  }
}

/** Asks each question once per expansion (both family runs share it) and remembers the smallest TTL seen. */
class CachingLookup {
  ttl = Infinity;
  private readonly answers = new Map<string, Promise<DnsAnswer<string | MxRecord>>>();

  constructor(private readonly dns: DnsLookup) {}

  async query(name: string, type: 'A' | 'AAAA' | 'TXT' | 'MX'): Promise<DnsAnswer<string | MxRecord>> {
    const key = `${type} ${name}`;
    let pending = this.answers.get(key);
    if (!pending) {
      pending = (this.dns.query as (n: string, t: string) => Promise<DnsAnswer<string | MxRecord>>)(name, type);
      this.answers.set(key, pending);
    }
    const answer = await pending;
    this.ttl = Math.min(this.ttl, answer.ttl);
    return answer;
  }
}

const DIRECTIVE = /^([+\-~?]?)(all|include|ip4|ip6|exists|ptr|mx|a)(?=$|[:/])(.*)$/i;

/** Parses a `v=spf1` record; throws with the offending term on any syntax error (RFC 7208 permerror). */
export function parseSpfRecord(text: string): SpfRecord {
  const words = text.split(' ').filter((w) => w.length > 0);
  if (!/^v=spf1$/i.test(words[0] ?? '')) throw new Error('the record does not start with "v=spf1"');
  const terms: Term[] = [];
  let redirect: string | null = null;
  let exp = false;
  for (const word of words.slice(1)) {
    const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(word);
    if (modifier) {
      const name = modifier[1]!.toLowerCase();
      if (name === 'redirect' || name === 'exp') {
        if ((name === 'redirect' && redirect !== null) || (name === 'exp' && exp)) throw new Error(`"${name}=" appears more than once`);
        checkDomainSpec(modifier[2]!, word);
        if (name === 'redirect') redirect = modifier[2]!;
        else exp = true;
      }
      continue; // unknown modifiers are ignored (RFC 7208 6)
    }
    const m = DIRECTIVE.exec(word);
    if (!m) throw new Error(`unknown term "${word}"`);
    const qualifier = (m[1] || '+') as Qualifier;
    const name = m[2]!.toLowerCase();
    const rest = m[3]!;
    switch (name) {
      case 'all':
        if (rest !== '') throw new Error(`"${word}" is not a valid term`);
        terms.push({ kind: 'all', qualifier, text: word });
        break;
      case 'include':
      case 'exists': {
        if (!rest.startsWith(':') || rest.length < 2) throw new Error(`"${word}" needs a domain ("${name}:example.com")`);
        checkDomainSpec(rest.slice(1), word);
        terms.push({ kind: name, qualifier, domain: rest.slice(1), text: word });
        break;
      }
      case 'ptr': {
        if (rest !== '' && !rest.startsWith(':')) throw new Error(`"${word}" is not a valid term`);
        if (rest) checkDomainSpec(rest.slice(1), word);
        terms.push({ kind: 'ptr', qualifier, domain: rest ? rest.slice(1) : null, text: word });
        break;
      }
      case 'a':
      case 'mx': {
        const parts = /^(?::([^/]+))?(?:\/(\d{1,2}))?(?:\/\/(\d{1,3}))?$/.exec(rest);
        const cidr4 = parts?.[2] === undefined ? 32 : Number(parts[2]);
        const cidr6 = parts?.[3] === undefined ? 128 : Number(parts[3]);
        if (!parts || cidr4 > 32 || cidr6 > 128) throw new Error(`"${word}" is not a valid term`);
        if (parts[1] !== undefined) checkDomainSpec(parts[1], word);
        terms.push({ kind: name, qualifier, domain: parts[1] ?? null, cidr4, cidr6, text: word });
        break;
      }
      case 'ip4':
      case 'ip6': {
        const value = rest.slice(1);
        const network = rest.startsWith(':') ? parseNetwork(value) : null;
        const address = value.split('/')[0]!;
        const isV4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(address);
        if (!network || (name === 'ip4') !== isV4 || (name === 'ip6' && !address.includes(':'))) throw new Error(`"${word}" is not a valid ${name} network`);
        terms.push({ kind: 'ip', qualifier, network, text: word });
        break;
      }
    }
  }
  return { terms, redirect };
}

function checkDomainSpec(spec: string, word: string): void {
  if (spec.length === 0 || /%[^{%_-]|%$|%\{(?![slodiphcrtv]\d*r?[.\-+,/_=]*\})/i.test(spec)) throw new Error(`"${word}" has an invalid domain or macro`);
  if (!spec.includes('%') && !isDomainName(spec)) throw new Error(`"${word}" does not name a valid domain`);
}

/**
 * Expands RFC 7208 macros. Only the domain macros can be known without a
 * connection (`d`, the domain being evaluated, and `o`, the one asked about);
 * any other letter makes the result unknown (null).
 */
export function expandMacros(spec: string, values: { d: string; o: string }): string | null {
  let unknown = false;
  const out = spec.replace(/%(%|_|-|\{([a-z])(\d*)(r?)([.\-+,/_=]*)\})/gi, (_all, what: string, letter?: string, digits?: string, reverse?: string, delimiters?: string) => {
    if (what === '%') return '%';
    if (what === '_') return ' ';
    if (what === '-') return '%20';
    const value = letter!.toLowerCase() === 'd' ? values.d : letter!.toLowerCase() === 'o' ? values.o : null;
    if (value === null) {
      unknown = true;
      return '';
    }
    const splitter = new RegExp(`[${(delimiters || '.').replace(/[-\\\]^/]/g, '\\$&')}]`);
    let parts = value.split(splitter);
    if (reverse) parts = parts.reverse();
    if (digits) parts = parts.slice(-Math.max(1, Number(digits)));
    return parts.join('.');
  });
  return unknown ? null : out;
}

export function isDomainName(name: string): boolean {
  const trimmed = name.replace(/\.$/, '');
  if (trimmed.length === 0 || trimmed.length > 253) return false;
  return trimmed.split('.').every((l) => l.length > 0 && l.length <= 63 && /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/i.test(l));
}

/** The /cidr network around `address`. */
function widen(address: string, cidr: number): Network {
  return parseNetwork(`${address}/${cidr}`)!;
}

/** `nets` minus `holes`: networks split around the holes, so the result is exact. */
export function subtract(nets: readonly Network[], holes: readonly Network[]): Network[] {
  let out = [...nets];
  for (const hole of holes) {
    const next: Network[] = [];
    for (const n of out) {
      if (networkCovers(hole, n)) continue;
      if (!networkCovers(n, hole)) {
        next.push(n);
        continue;
      }
      // Walk from n down to the hole, keeping at each step the half without it.
      const bits = n.family === 4 ? 32 : 128;
      let current = n;
      while (current.prefix < hole.prefix) {
        const prefix = current.prefix + 1;
        const bit = 1n << BigInt(bits - prefix);
        const holeInUpper = (hole.base & bit) !== 0n;
        next.push({ family: n.family, prefix, base: holeInUpper ? current.base : current.base | bit });
        current = { family: n.family, prefix, base: holeInUpper ? current.base | bit : current.base };
      }
    }
    out = next;
  }
  return out;
}

/** Sorted, without duplicates or networks inside others. */
export function foldNested(nets: readonly Network[]): Network[] {
  const sorted = [...nets].sort((a, b) => a.family - b.family || a.prefix - b.prefix || (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
  const kept: Network[] = [];
  for (const n of sorted) if (!kept.some((k) => networkCovers(k, n))) kept.push(n);
  return kept.sort((a, b) => a.family - b.family || (a.base < b.base ? -1 : a.base > b.base ? 1 : a.prefix - b.prefix));
}
