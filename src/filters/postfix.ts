import { RuleFilter, type Rule } from './filter.js';

/**
 * Postfix: smtpd (also as `postfix/submission/smtpd`, `postfix/smtps/smtpd`
 * and in multi-instance setups `postfix-NAME/…`) and postscreen.
 *
 * Postfix names the client as `NAME[ADDR]` (smtpd) or `[ADDR]:PORT`
 * (postscreen). NAME is the client's reverse DNS, which Postfix only keeps
 * when it is a syntactically valid host name (else `unknown`): it has no
 * spaces or brackets. Every rule reads the client from fixed text the service
 * writes at the start of the message (`… from NAME[ADDR]`); whatever the client
 * chose — HELO name, envelope addresses, commands, SASL user — comes after it,
 * so an injected `[192.0.2.1]` in those fields can never be taken.
 *
 * What is evidence and what is not, as a careful postmaster would see it:
 * - permanent (5xx) rejects are evidence, except size (5.3.4) and full-mailbox
 *   (5.2.2) ones that honest senders hit; temporary (4xx) rejects only for the
 *   reasons that mark a bad client (no reverse DNS, unresolvable HELO or sender
 *   domain, a DNSBL listing), never greylisting or our own trouble;
 * - `lost connection`/`timeout` after CONNECT, EHLO, AUTH… is a probe; after
 *   DATA or BDAT it is often a flaky network and is ignored;
 * - a SASL failure caused by our own auth server being unreachable is not the
 *   client's fault, nor is an unsupported mechanism.
 * Postfix logs a failed AUTH both as a `SASL … authentication failed` warning
 * and in the session summary (`disconnect from … auth=0/1`); both are matched
 * (pattern ids tell them apart).
 */

/** Postfix's client name: `unknown` or a validated host name; may be empty (postscreen). */
const NAME = '[^\\s\\[\\]]*';
/** An IPv4 or IPv6 literal as Postfix prints it inside brackets; validated by canonicalAddress. */
const ADDR = '(?<addr>[0-9A-Fa-f:.]{2,45})';
/** `NAME[ADDR]`, optionally with `:PORT` (smtpd with smtpd_client_port_logging, postscreen). */
const CLIENT = `${NAME}\\[${ADDR}\\](?::\\d{1,5})?`;
/** Queue id (short hex or long base-52 form) or NOQUEUE. */
const QUEUE_ID = '(?:NOQUEUE|[0-9A-Za-z]{6,20})';
/** SMTP stages a reject can happen in (END-OF-MESSAGE is content filtering: not the client's behaviour). */
const REJECT_STAGE = '(?:CONNECT|HELO|EHLO|MAIL|RCPT|DATA|BDAT|VRFY|ETRN)';
const REJECT = `^${QUEUE_ID}: (?:milter-)?reject: ${REJECT_STAGE} from ${CLIENT}: `;
/**
 * What the reject is about, `<…>: ` (an address or HELO name: the client's text, so only the plain
 * shape, without spaces or angle brackets, lets a reason be read after it).
 */
const ARG = '(?:(?:<[^<>\\s]*>)?: )?';
/** Stages after which a lost connection or timeout is a probe. */
const PROBE_STAGE = '(?:CONNECT|HELO|EHLO|STARTTLS|AUTH|MAIL|RCPT|VRFY|ETRN|NOOP|RSET|UNKNOWN)';

const rules: Rule[] = [
  {
    id: 'sasl-auth-failed',
    kind: 'auth-failure',
    needle: 'authentication failed',
    re: new RegExp(
      `^warning: ${CLIENT}: SASL [\\w-]{1,30} authentication failed:(?! Connection lost to authentication server$| Invalid authentication mechanism$)(?: .*?)?(?:, sasl_username=(?<user>.*))?$`,
    ),
  },
  {
    id: 'reject-unknown-user',
    kind: 'invalid-user',
    needle: 'reject: ',
    re: new RegExp(`${REJECT}5\\d\\d 5\\.\\d{1,3}\\.\\d{1,3} ${ARG}Recipient address rejected: (?:User unknown|undeliverable address)`),
  },
  {
    id: 'reject-relay',
    kind: 'protocol-abuse',
    needle: 'reject: ',
    re: new RegExp(`${REJECT}5\\d\\d 5\\.\\d{1,3}\\.\\d{1,3} ${ARG}Relay access denied`),
  },
  {
    id: 'reject-permanent',
    kind: 'protocol-abuse',
    needle: 'reject: ',
    re: new RegExp(`${REJECT}5\\d\\d 5\\.(?!3\\.4 |2\\.2 )\\d{1,3}\\.\\d{1,3} `),
  },
  {
    id: 'reject-temporary',
    kind: 'protocol-abuse',
    needle: 'reject: ',
    re: new RegExp(
      `${REJECT}4\\d\\d 4\\.\\d{1,3}\\.\\d{1,3} ${ARG}(?:Client host rejected: cannot find your (?:reverse )?hostname|Helo command rejected: Host not found|Sender address rejected: Domain not found|Service unavailable; [Cc]lient (?:host )?\\[[0-9A-Fa-f:.]{2,45}\\] blocked using )`,
    ),
  },
  {
    id: 'improper-pipelining',
    kind: 'protocol-abuse',
    needle: 'improper command pipelining after ',
    re: new RegExp(`^improper command pipelining after [\\w-]{1,20} from ${CLIENT}(?::|$)`),
  },
  {
    id: 'too-many-errors',
    kind: 'protocol-abuse',
    needle: 'too many errors after ',
    re: new RegExp(`^too many errors after [\\w-]{1,20}(?: \\(\\d+ bytes\\))? from ${CLIENT}$`),
  },
  {
    id: 'non-smtp-command',
    kind: 'protocol-abuse',
    needle: 'non-SMTP command from ',
    re: new RegExp(`^warning: non-SMTP command from ${CLIENT}: `),
  },
  {
    id: 'illegal-address-syntax',
    kind: 'protocol-abuse',
    needle: 'Illegal address syntax from ',
    re: new RegExp(`^warning: Illegal address syntax from ${CLIENT} in (?:MAIL|RCPT) command: `),
  },
  {
    id: 'lost-connection',
    kind: 'probe',
    needle: ' after ',
    re: new RegExp(`^(?:lost connection|timeout) after ${PROBE_STAGE} from ${CLIENT}$`),
  },
  {
    id: 'disconnect-auth-failed',
    kind: 'auth-failure',
    needle: ' auth=0/',
    // Session summary (Postfix ≥ 3.0): every AUTH failed. Only `cmd=N[/M]` counters follow the client.
    re: new RegExp(`^disconnect from ${CLIENT}(?: [a-z-]{1,20}=\\d{1,6}(?:/\\d{1,6})?){0,20}$`),
    accept: (m) => / auth=0\/[1-9]/.test(m[0]),
  },
  {
    id: 'disconnect-no-commands',
    kind: 'probe',
    needle: ' commands=0/0',
    // Connected and said nothing: a scanner.
    re: new RegExp(`^disconnect from ${CLIENT} commands=0/0$`),
  },
  {
    id: 'disconnect-all-commands-failed',
    kind: 'protocol-abuse',
    needle: ' commands=0/',
    // Every command failed: a client speaking something else than SMTP, or only bad commands.
    re: new RegExp(`^disconnect from ${CLIENT}(?: [a-z-]{1,20}=\\d{1,6}(?:/\\d{1,6})?){0,20} commands=0/[1-9]\\d{0,5}$`),
  },
  {
    id: 'rate-limit',
    kind: 'flood',
    needle: ' limit exceeded: ',
    // smtpd enforcing anvil's limits: connection count/rate, message, recipient, TLS session and AUTH rates.
    re: new RegExp(`^warning: [A-Za-z ]{3,40} limit exceeded: \\d{1,9} from ${CLIENT} for service [\\w.-]{1,40}$`),
  },
  {
    id: 'postscreen-pregreet',
    kind: 'protocol-abuse',
    needle: 'PREGREET ',
    re: new RegExp(`^PREGREET \\d{1,6} after [\\d.]{1,10} from \\[${ADDR}\\]:\\d{1,5}: `),
  },
  {
    id: 'postscreen-violation',
    kind: 'protocol-abuse',
    needle: ' from [',
    re: new RegExp(
      `^(?:NON-SMTP COMMAND|BARE NEWLINE|COMMAND PIPELINING|COMMAND TIME LIMIT|COMMAND COUNT LIMIT|COMMAND LENGTH LIMIT) from \\[${ADDR}\\]:\\d{1,5}(?: after |:|$)`,
    ),
  },
  {
    id: 'postscreen-hangup',
    kind: 'probe',
    needle: 'HANGUP after ',
    re: new RegExp(`^HANGUP after [\\d.]{1,10} from \\[${ADDR}\\]:\\d{1,5} in tests (?:before|after) SMTP handshake$`),
  },
  {
    id: 'postscreen-dnsbl',
    kind: 'probe',
    needle: 'DNSBL rank ',
    re: new RegExp(`^DNSBL rank \\d{1,4} for \\[${ADDR}\\]:\\d{1,5}$`),
  },
];

export const postfix = new RuleFilter({
  name: 'postfix',
  service: 'smtp',
  programs: ['postfix/', 'postfix-*'],
  rules,
  shortHeads: true,
  // Postfix writes at most 2,000 bytes of a message, to syslog and to its own log file (MSG_SYSLOG_RECLEN, MSG_LOGGER_RECLEN).
  maxMessageLength: 2048,
});
