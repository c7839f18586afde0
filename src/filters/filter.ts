import { canonicalAddress } from '../core/address.js';
import { needleGate } from '../core/regexp.js';
import type { EventKind, LogLine } from '../core/types.js';

/** What a filter makes of one line. */
export interface FilterMatch {
  kind: EventKind;
  /** Canonical address, or null for health events that name no peer. */
  address: string | null;
  user: string | null;
  /** Identifier of the rule that matched. */
  pattern: string;
  /**
   * The line reports an attempt an earlier line of the same connection already
   * reported (sshd's `Invalid user` then `Failed password for invalid user`, or a
   * failure then `Connection closed by authenticating user`): recognised and shown,
   * but not counted again, so maxretry means attempts, not lines.
   */
  repeat?: boolean;
  /**
   * When the filter reads the time itself (fail2ban filters find the date in the
   * line with their own datepattern): ms since the epoch, used instead of line.time.
   */
  time?: number;
}

/**
 * A filter recognises one service's log lines. It only ever sees lines whose
 * envelope program it declared (or bare lines, for services writing their
 * own files), so a pattern never runs on a line it cannot match.
 */
export interface Filter {
  readonly name: string;
  readonly service: string;
  /**
   * Envelope programs this filter reads; an entry ending in `/` matches as a prefix (`postfix/`),
   * one ending in `*` matches as a prefix without it (`ovpn-*`: Debian's `openvpn@NAME` tags lines `ovpn-NAME`).
   */
  readonly programs: readonly string[];
  /** True when lines without a syslog program (a service's own log file) are offered too. */
  readonly bareLines: boolean;
  /** Rule identifiers, in order, for per-pattern hit counts. */
  readonly patterns: readonly string[];
  /**
   * The longest message the filter scans: its service cannot write a longer one, so a longer line under
   * its name is somebody else's and is skipped unread. Undefined: every message is scanned.
   */
  readonly maxMessageLength?: number;
  /** Long lines whose matching ran over the time budget of user-supplied patterns and was given up (fail2ban filters). */
  readonly linesOverBudget?: number;
  match(line: LogLine): FilterMatch | null;
}

/**
 * One rule of a built-in filter. `re` runs on the envelope's message only when
 * `needle` occurs in it (a cheap prefilter). Patterns must be anchored so that
 * attacker-controlled text (user names, paths) can never supply the address:
 * the `addr` group must be captured from a fixed position the service writes.
 */
export interface Rule {
  id: string;
  kind: EventKind;
  needle: string;
  re: RegExp;
  /**
   * For a pattern anchored at the end by fixed texts: the message must end with one of them, checked before
   * the regex runs (in constant time, where the regex would scan the whole line to find that it does not).
   */
  endings?: readonly string[];
  /** Post-check on the match, e.g. to reject lines where the user part contains another ` from `. */
  accept?: (m: RegExpExecArray) => boolean;
}

export interface RuleFilterSpec {
  name: string;
  service: string;
  programs: readonly string[];
  bareLines?: boolean;
  rules: readonly Rule[];
  /** Lines containing any of these are never matched (e.g. successful logins that share a prefix). */
  ignore?: readonly RegExp[];
  /**
   * The longest message the service itself can write (its own logging truncates there). A longer line
   * under its name was written by somebody else: it is skipped before any pattern scans it.
   */
  maxMessageLength?: number;
  /**
   * The rules' anchored patterns start with a short head of fixed text, so on a line they cannot match
   * they fail within it: on a long message they run without their needle being searched first. A
   * needle search of 8 KiB made of its own characters costs µs, a head that fails ~0.1 µs. Not for
   * filters whose heads are long optional runs (Dovecot's), which scan far before they fail.
   */
  shortHeads?: boolean;
}

/** Messages up to this length go through the needle gate first (see RuleFilter.match). */
const GATED_LENGTH = 1024;

/** A filter built from rules with named groups `addr` and optionally `user`. */
export class RuleFilter implements Filter {
  readonly name: string;
  readonly service: string;
  readonly programs: readonly string[];
  readonly bareLines: boolean;
  readonly patterns: readonly string[];
  private readonly rules: readonly Rule[];
  /** Per rule: on a long message its pattern runs without its needle being searched first (see RuleFilterSpec.shortHeads). */
  private readonly skipNeedleWhenLong: readonly boolean[];
  private readonly ignore: readonly RegExp[];
  /** Every rule's needle in one alternation: one scan rejects the lines no rule can match (most lines of a busy service). */
  private readonly anyNeedle: RegExp;
  readonly maxMessageLength?: number;
  /** maxMessageLength, Infinity when unset: one comparison on the hot path. */
  private readonly lengthLimit: number;

  constructor(spec: RuleFilterSpec) {
    this.name = spec.name;
    this.service = spec.service;
    this.programs = spec.programs;
    this.bareLines = spec.bareLines ?? false;
    this.rules = spec.rules;
    this.skipNeedleWhenLong = spec.rules.map((r) => spec.shortHeads === true && r.re.source.startsWith('^'));
    this.ignore = spec.ignore ?? [];
    this.patterns = [...new Set(spec.rules.map((r) => r.id))];
    this.maxMessageLength = spec.maxMessageLength;
    this.lengthLimit = spec.maxMessageLength ?? Infinity;
    this.anyNeedle = needleGate(spec.rules.map((r) => r.needle));
  }

  match(line: LogLine): FilterMatch | null {
    const msg = line.message;
    if (msg.length > this.lengthLimit) return null;
    // The gate saves a short line one search per needle. A long line is searched for each needle anyway when
    // it holds one (a crafted line does), so there the gate would be one more pass over it.
    if (msg.length <= GATED_LENGTH && !this.anyNeedle.test(msg)) return null;
    // Rules in a row often share a needle: it is searched once for them (a search of 8 KiB can cost µs).
    // A rule's endings are checked first: in constant time.
    const long = msg.length > GATED_LENGTH;
    let needle = '';
    let found = false;
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i]!;
      if (rule.endings !== undefined && !rule.endings.some((e) => msg.endsWith(e))) continue;
      if (!long || !this.skipNeedleWhenLong[i]) {
        if (rule.needle !== needle) {
          needle = rule.needle;
          found = msg.includes(needle);
        }
        if (!found) continue;
      }
      const m = rule.re.exec(msg);
      if (m === null) continue;
      if (rule.accept && !rule.accept(m)) continue;
      for (const ig of this.ignore) if (ig.test(msg)) return null;
      const groups = m.groups ?? {};
      let address: string | null = null;
      if (groups.addr !== undefined) {
        address = canonicalAddress(groups.addr);
        if (address === null) continue;
      } else if (rule.kind !== 'health') {
        continue;
      }
      return { kind: rule.kind, address, user: groups.user ?? null, pattern: rule.id };
    }
    return null;
  }
}

/** Chooses, per envelope program, the filters that can match; cached because programs repeat. */
export class FilterDispatch {
  private readonly cache = new Map<string, Filter[]>();
  private readonly bare: Filter[];

  constructor(private readonly filters: readonly Filter[]) {
    this.bare = filters.filter((f) => f.bareLines);
  }

  forLine(line: LogLine): readonly Filter[] {
    const program = line.program;
    if (program === null) return this.bare;
    let hit = this.cache.get(program);
    if (hit === undefined) {
      hit = this.filters.filter((f) => f.programs.some((p) => programMatches(p, program)));
      if (this.cache.size < 10_000) this.cache.set(program, hit);
    }
    return hit;
  }
}

/** True when envelope `program` is selected by a filter's `programs` entry (see Filter.programs). */
export function programMatches(entry: string, program: string): boolean {
  if (entry.endsWith('/')) return program.startsWith(entry);
  if (entry.endsWith('*')) return program.startsWith(entry.slice(0, -1));
  return program === entry;
}
