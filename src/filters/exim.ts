import { RuleFilter, type Rule } from './filter.js';

/**
 * Exim (`exim`, `exim4` over syslog, or its own mainlog, whose lines start
 * with `YYYY-MM-DD HH:MM:SS`, so bare lines are read too).
 *
 * Exim names the client as `[NAME ][(HELO) ][ADDR][:PORT][ I=[LOCAL]:PORT]`.
 * NAME is verified reverse DNS (no spaces or brackets); HELO is the client's
 * word, which Exim only accepts as a valid domain or address literal unless
 * `helo_accept_junk_hosts` is set — so it is allowed any characters but
 * spaces and parentheses, and a junk HELO makes the line unmatched rather than
 * misread. The client's other text — SMTP command lines, the AUTH `set_id`,
 * envelope addresses — is reached only through the host part:
 * - most messages start with fixed text and the host part (`H=…`, `SMTP call
 *   from …`, `… authenticator failed for …`), so the first host part is the
 *   real one and client text only follows it;
 * - `SMTP protocol error in "CMD" H=… REASON` quotes the command first; the
 *   reason after the real host part runs to the end of the line, so a greedy
 *   match takes the last host part followed by such an ending, which only the
 *   real one is.
 */

/** What precedes Exim's text: a timestamp when logged over syslog, `[pid]` and a message id with log_selector options. */
const PREFIX =
  '^(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d{3})?(?: [-+]\\d{4})? )?(?:\\[\\d{1,10}\\] )?(?:[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} )?';
/** IPv4 or IPv6 literal; validated by canonicalAddress. */
const ADDR = '(?<addr>[0-9A-Fa-f:.]{2,45})';
/** The client as Exim writes it (see above); the port and local interface depend on log_selector. */
const HOST = `(?:[^\\s()\\[\\]]{1,255} )?(?:\\([^\\s()]{0,255}\\) )?\\[${ADDR}\\](?:[:.]\\d{1,5})?(?: I=\\[[0-9A-Fa-f:.]{2,45}\\](?:[:.]\\d{1,5})?)?`;
/** Start of an ACL reject: `H=HOST [U=ident ][F=<sender> ]rejected`; the sender is the client's, without spaces. */
const REJECTED = `${PREFIX}H=${HOST} (?:U=\\S{1,64} )?(?:F=\\S{0,512} )?rejected `;

const rules: Rule[] = [
  {
    id: 'auth-failed',
    kind: 'auth-failure',
    needle: ' authenticator failed for ',
    // 435 "Unable to authenticate at present" is our trouble, not the client's: only 535 counts.
    re: new RegExp(
      `${PREFIX}[\\w-]{1,64} authenticator failed for ${HOST}: 535 Incorrect authentication data(?: \\(set_id=(?<user>.*)\\))?(?:: \\d{1,6} Time\\(s\\))?$`,
    ),
  },
  {
    id: 'protocol-error',
    kind: 'protocol-abuse',
    needle: 'SMTP protocol error in "',
    re: new RegExp(`${PREFIX}SMTP protocol error in ".* H=${HOST} [A-Za-z][A-Za-z -]{0,100}$`),
  },
  {
    id: 'synchronization-error-greeting',
    kind: 'protocol-abuse',
    needle: 'SMTP protocol synchronization error (',
    re: new RegExp(`${PREFIX}SMTP protocol synchronization error \\([\\w :,-]{1,100}\\): rejected connection from H=${HOST} input="`),
  },
  {
    id: 'synchronization-error-pipelining',
    kind: 'protocol-abuse',
    needle: 'SMTP protocol synchronization error (',
    // `rejected "CMD" H=… next input="…"`: the client wrote both quoted parts, and Exim does not escape quotes
    // in them, so a line holding a second `" H=` is ambiguous and refused.
    re: new RegExp(`${PREFIX}SMTP protocol synchronization error \\([\\w :,-]{1,100}\\): rejected "[^"]{0,1000}" H=${HOST} next input="`),
    accept: (m) => m.input.indexOf('" H=') === m.input.lastIndexOf('" H='),
  },
  {
    id: 'call-dropped',
    kind: 'protocol-abuse',
    needle: 'SMTP call from ',
    re: new RegExp(`${PREFIX}SMTP call from ${HOST} dropped: too many (?:nonmail commands|syntax or protocol errors|unrecognized commands)(?: \\(|$)`),
  },
  {
    id: 'dropped-by-acl',
    kind: 'protocol-abuse',
    needle: ' closed by DROP in ACL',
    re: new RegExp(`${PREFIX}SMTP connection from ${HOST} closed by DROP in ACL$`),
  },
  {
    id: 'no-mail',
    kind: 'probe',
    needle: 'no MAIL in SMTP connection from ',
    re: new RegExp(`${PREFIX}no MAIL in SMTP connection from ${HOST} D=[\\dhms]{1,20}(?: C=\\S{0,500})?$`),
  },
  {
    id: 'sender-verify-failed',
    kind: 'protocol-abuse',
    needle: ' sender verify fail for ',
    re: new RegExp(`${PREFIX}H=${HOST} (?:U=\\S{1,64} )?(?:F=\\S{0,512} )?sender verify fail for <`),
  },
  {
    id: 'rcpt-unknown-user',
    kind: 'invalid-user',
    needle: ' rejected RCPT ',
    // The recipient has no spaces here, so the reason after it is Exim's (or the ACL's) text.
    re: new RegExp(`${REJECTED}RCPT \\S{0,512}: (?:Unknown user|Unrouteable address|unknown user|No such user|User unknown)`),
  },
  {
    id: 'rcpt-rejected',
    kind: 'protocol-abuse',
    needle: ' rejected RCPT ',
    re: new RegExp(`${REJECTED}RCPT \\S{0,512}: `),
  },
  {
    id: 'mail-rejected',
    kind: 'protocol-abuse',
    needle: ' rejected MAIL ',
    re: new RegExp(`${REJECTED}MAIL \\S{0,512}: `),
  },
  {
    id: 'helo-rejected',
    kind: 'protocol-abuse',
    needle: ': syntactically invalid argument',
    re: new RegExp(`${PREFIX}rejected (?:EHLO|HELO) from ${HOST}: syntactically invalid argument`),
  },
  {
    id: 'connect-acl-rejected',
    kind: 'protocol-abuse',
    needle: 'rejected connection in "connect" ACL',
    re: new RegExp(`${PREFIX}H=${HOST} rejected connection in "connect" ACL`),
  },
];

export const exim = new RuleFilter({
  name: 'exim',
  service: 'smtp',
  programs: ['exim', 'exim4'],
  bareLines: true,
  rules,
  shortHeads: true,
  // Exim builds each log line in LOG_BUFFER_SIZE (8,192 bytes, macros.h), timestamp included; over syslog it splits at 870.
  maxMessageLength: 8192,
});
