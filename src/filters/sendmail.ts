import { canonicalAddress } from '../core/address.js';
import type { LogLine } from '../core/types.js';
import { RuleFilter, type Filter, type FilterMatch, type Rule } from './filter.js';
import { trimOldest } from '../core/recency.js';

/**
 * Sendmail (`sendmail`, `sm-mta`, and the process titles some builds log
 * under such as `sm-acceptingconnections`).
 *
 * Sendmail names the client as `relay=NAME [ADDR]`, `NAME [ADDR]` or
 * `[ADDR]`, optionally followed by ` (may be forged)`. NAME comes from the
 * client's reverse DNS — attacker-controlled, but a resolved host name has no
 * spaces or brackets — so every rule anchors on the bracketed address at a
 * place sendmail writes:
 * - right after the queue id at the start (`QID: NAME [ADDR]: …`,
 *   `QID: ruleset=…, arg1=…, relay=…`), with the client's own text (`arg1`,
 *   the RCPT address) restricted to a shape without spaces or commas so it
 *   cannot contain a second `, relay=`; or
 * - at the very end (`…, relay=NAME [ADDR]$` of AUTH failures and `from=`
 *   lines), where the client's text (the SASL user, the sender) comes before.
 *
 * A harvest of recipient addresses shows up as `QID: <rcpt>... No such user
 * here` lines (no address) followed, when the session ends, by the queue
 * id's `from=…, nrcpts=0, …, relay=NAME [ADDR]` line; the filter remembers
 * the queue ids of the former to attribute the latter.
 *
 * `did not issue MAIL/EXPN/VRFY/ETRN` (seed 003: a connection flood keeping all
 * MTA children busy) is a probe; `rejecting connections on daemon …` (children
 * or load limit reached) is a health event.
 */

/** Queue id: 14 characters, longer with long pids. */
const QID = '(?:[0-9A-Za-z]{8,20}: )?';
/** IPv4 or IPv6 literal (sendmail writes `IPv6:` before the latter); validated by canonicalAddress. */
const ADDR = '(?<addr>[0-9A-Fa-f:.]{2,45})';
const BRACKETED = `\\[(?:IPv6:)?${ADDR}\\](?: \\(may be forged\\))?`;
/** `NAME [ADDR]` or `[ADDR]`; NAME may carry an ident user (`user@host`). */
const HOST = `(?:[^\\s\\[\\]]{1,255} )?${BRACKETED}`;
/**
 * Start of a ruleset reject. arg1 is the client's envelope address (check_mail, check_rcpt) or host name
 * and arg2 its address (check_relay): only accepted without spaces, commas or quotes, so it cannot hold
 * a `, relay=` of its own (a quoted local part could: `<"x, relay=[192.0.2.1], reject=550 "@…>`).
 */
const RULESET = `^${QID}ruleset=check_\\w{1,30}, arg1=[^\\s,"]{0,512}(?:, arg2=[0-9A-Fa-f:.]{2,45})?, relay=${HOST}, reject=`;

const rules: Rule[] = [
  {
    id: 'no-mail-transaction',
    kind: 'probe',
    needle: ' did not issue ',
    re: new RegExp(`^${QID}${HOST} did not issue [A-Z/]{4,30} during connection to [\\w.-]{1,40}$`),
  },
  {
    id: 'auth-unknown-user',
    kind: 'invalid-user',
    needle: 'AUTH failure (',
    // The SASL detail and the user are the client's; relay= is the last field, and nothing can follow it.
    re: new RegExp(`^${QID}AUTH failure \\([\\w-]{1,30}\\): user not found .*?(?:, user=(?<user>[^,]*))?, relay=${HOST}$`),
  },
  {
    id: 'auth-failure',
    kind: 'auth-failure',
    needle: 'AUTH failure (',
    re: new RegExp(`^${QID}AUTH failure \\([\\w-]{1,30}\\): .*?(?:, user=(?<user>[^,]*))?, relay=${HOST}$`),
  },
  {
    id: 'smtp-attack',
    kind: 'protocol-abuse',
    needle: 'possible SMTP attack: ',
    // Sendmail's own count of too many bad commands (typically AUTH) in one session.
    re: new RegExp(`^${QID}${HOST}: possible SMTP attack: command=\\w{1,20}, count=\\d{1,9}$`),
  },
  {
    id: 'rcpt-flood',
    kind: 'flood',
    needle: 'Possible SMTP RCPT flood',
    re: new RegExp(`^${QID}${HOST}: Possible SMTP RCPT flood, throttling\\.$`),
  },
  {
    id: 'reject-user-unknown',
    kind: 'invalid-user',
    needle: 'ruleset=check_',
    re: new RegExp(`${RULESET}5\\d\\d 5\\.1\\.1 [^\\s,"]{0,512}\\.\\.\\. User unknown$`),
  },
  {
    id: 'reject-relaying-denied',
    kind: 'protocol-abuse',
    needle: 'ruleset=check_',
    re: new RegExp(`${RULESET}5\\d\\d 5\\.7\\.1 [^\\s,"]{0,512}\\.\\.\\. Relaying denied`),
  },
  {
    id: 'reject-connection-limit',
    kind: 'flood',
    needle: 'ruleset=check_relay',
    // ConnectionRateThrottle / ClientRate and MaxConnections from the ratecontrol/conncontrol features.
    re: new RegExp(`${RULESET}421 4\\.3\\.2 (?:Connection rate limit exceeded|Too many open connections)\\.$`),
  },
  {
    id: 'reject-permanent',
    kind: 'protocol-abuse',
    needle: 'ruleset=check_',
    // Any other permanent reject (DNSBL, unknown sender domain, access map), except size and full-mailbox ones.
    re: new RegExp(`${RULESET}5\\d\\d 5\\.(?!3\\.4 |2\\.2 )\\d{1,3}\\.\\d{1,3} `),
  },
  {
    id: 'pregreet',
    kind: 'protocol-abuse',
    needle: 'due to pre-greeting traffic',
    // Without a NAME sendmail writes two spaces: `from  [ADDR]`.
    re: new RegExp(`^${QID}rejecting commands from [^\\s\\[\\]]{0,255} ?${BRACKETED} due to pre-greeting traffic after \\d{1,6} seconds$`),
  },
  {
    id: 'expn-vrfy',
    kind: 'probe',
    needle: ' [rejected]',
    re: new RegExp(`^${QID}${HOST}: (?:[Ee][Xx][Pp][Nn]|[Vv][Rr][Ff][Yy])(?: .*)? \\[rejected\\]$`),
  },
  {
    id: 'lost-input-channel',
    kind: 'probe',
    needle: 'lost input channel from ',
    // After DATA a dropped connection is as likely a flaky network as an attacker.
    re: new RegExp(`^${QID}lost input channel from ${HOST} to [\\w.-]{1,40} after (?!data$)[\\w-]{1,20}$`),
  },
  {
    id: 'refusing-connections',
    kind: 'health',
    needle: 'rejecting connections on daemon ',
    re: /^rejecting connections on daemon [\w.-]{1,40}: (?:\d{1,9} children, max \d{1,9}|load average: \d{1,9})$/,
  },
];

/** `QID: <rcpt>... No such user here` — a recipient rejected during the session of that queue id. */
const NO_SUCH_USER = /^(?<qid>[0-9A-Za-z]{8,20}): <[^\s<>]{0,512}>\.\.\. No such user here$/;
/**
 * The session's summary with nothing accepted (`nrcpts=0`). The sender is the client's text; the fields
 * after it are sendmail's (no msgid without DATA), and relay= is the last.
 */
const EMPTY_SESSION = new RegExp(
  `^(?<qid>[0-9A-Za-z]{8,20}): from=.*, size=\\d{1,12}, class=-?\\d{1,6}, nrcpts=0, (?:[a-z]{1,20}=[^\\s,]{0,100}, ){0,8}relay=${HOST}$`,
);
/** Queue ids waiting for their `from=` line; a harvest keeps them coming, so old ones are dropped. */
const MAX_PENDING = 4096;

export class SendmailFilter implements Filter {
  readonly name = 'sendmail';
  readonly service = 'smtp';
  readonly programs = ['sendmail', 'sm-mta', 'sm-acceptingconnections', 'sm-msp-queue'] as const;
  readonly bareLines = false;
  readonly patterns: readonly string[];
  /**
   * sm_syslog() keeps each message under SYSLOG_BUFSIZE (1,024 bytes unless built otherwise), queue id
   * included, and splits a longer text into numbered pieces of that size (sendmail/conf.c).
   */
  readonly maxMessageLength = 2048;
  private readonly rules = new RuleFilter({ name: this.name, service: this.service, programs: this.programs, rules });
  private readonly unknownRecipients = new Map<string, true>();

  constructor() {
    this.patterns = [...this.rules.patterns, 'no-such-user-session'];
  }

  match(line: LogLine): FilterMatch | null {
    const msg = line.message;
    if (msg.length > this.maxMessageLength) return null;
    if (msg.endsWith('... No such user here')) {
      const m = NO_SUCH_USER.exec(msg);
      if (m !== null) this.remember(`${line.host ?? ''} ${m.groups!.qid!}`);
      return null;
    }
    if (msg.includes(', nrcpts=0, ')) {
      const m = EMPTY_SESSION.exec(msg);
      if (m === null) return null;
      const key = `${line.host ?? ''} ${m.groups!.qid!}`;
      if (!this.unknownRecipients.delete(key)) return null;
      const address = canonicalAddress(m.groups!.addr!);
      return address === null ? null : { kind: 'invalid-user', address, user: null, pattern: 'no-such-user-session' };
    }
    return this.rules.match(line);
  }

  private remember(key: string): void {
    this.unknownRecipients.delete(key);
    this.unknownRecipients.set(key, true);
    trimOldest(this.unknownRecipients, MAX_PENDING);
  }
}

export const sendmail: Filter = new SendmailFilter();
