import { RuleFilter, type Rule } from './filter.js';

/**
 * Dovecot: the login processes (`imap-login`, `pop3-login`, `submission-login`,
 * `managesieve-login`…), the auth processes' passdb lines (`auth`,
 * `auth-worker(PID)` when auth_verbose is on), and PAM's own line
 * (`pam_unix(dovecot:auth)`). Lines come over syslog (program `dovecot`, or the
 * process name itself), from Dovecot's own log file (`Mmm dd HH:MM:SS
 * auth-worker(1): Info: …`, `YYYY-MM-DD HH:MM:SS imap-login: …`) or from
 * multilog (`@TAI64N imap-login: …`), hence bare lines too.
 *
 * The user name is the client's text and can hold anything, including a fake
 * `rip=…` or `,ADDR)`. Every rule takes the address from after it, from the
 * part Dovecot writes last:
 * - login lines: `…: user=<U>, method=M, rip=ADDR, lip=LOCAL…`; everything after
 *   the real `rip=` is Dovecot's (local address, TLS state, session id), so the
 *   last `, rip=ADDR, lip=` is the real one (greedy match);
 * - passdb lines: `DRIVER(U,ADDR[,<SESSION>]): RESULT` with RESULT one of a few
 *   fixed texts up to the end of the line, so only the real address is followed
 *   by it;
 * - `pam_unix(dovecot:auth): … ruser=U rhost=ADDR[  user=U]`: Dovecot passes the
 *   login name as both PAM_RUSER and PAM_USER, so with the user= suffix both
 *   copies must be equal (which fixes where rhost= is), and without it the
 *   address is the last field.
 *
 * `no auth attempts`, `disconnected before auth was ready` and `client didn't
 * finish SASL auth` are probes (a client that connects and does not log in);
 * trying plaintext auth where it is disabled is protocol abuse.
 * With auth_verbose on, one failed login is logged by the login process and by
 * the passdb (and by pam_unix): each line is matched (pattern ids tell them apart).
 */

/** IPv4 or IPv6 literal; validated by canonicalAddress. */
const ADDR = '(?<addr>[0-9A-Fa-f:.]{2,45})';
/** What syslog or Dovecot's own log puts before the login process's message. */
const LOGIN_PREFIX = '^(?:dovecot: )?(?:[\\w-]{1,40}-login: )?(?:Info: )?';
/** Login processes that count failed attempts (`auth failed, 2 attempts in 17 secs`); names and counts are Dovecot's. */
const AUTH_FAILED = '\\(auth failed, \\d{1,6} attempts?(?: in \\d{1,9} secs?)?\\)';
/** The connection's fields from the user on: the last `rip=` is Dovecot's (see above); lip= is missing in some versions. */
const LOGIN_FIELDS = `: (?:user=<(?<user>[^<>]{0,200})>, )?.*\\brip=${ADDR}(?:, lip=[0-9A-Fa-f:.]{2,45})?(?:,|$)`;
/** Process prefixes of passdb lines: `auth: `, `auth-worker(1): `, `Info: `, `conn unix:auth-worker (pid=1,uid=2): auth-worker<3>: `. */
const PASSDB_PREFIX =
  '^(?:dovecot: )?(?:auth(?:-worker)?(?:\\([\\w-]{0,20}\\))?: )?(?:Info: )?(?:conn unix:[\\w/.-]{1,100} \\([\\w=,]{0,60}\\): auth-worker<\\d{1,10}>: )?';
const PASSDB_DRIVER = '(?:pam|passwd-file|passwd|shadow|sql|ldap|checkpassword|bsdauth|vpopmail|lua|oauth2|imap|dict|static)';
/** `(U,ADDR[,<SESSION>]): ` — greedy user, so the address is the one followed by the fixed result. */
const PASSDB_SUBJECT = `${PASSDB_DRIVER}\\((?<user>.*?),${ADDR}(?:,(?:<[\\w+/=-]{0,64}>)?)?\\): `;
/** Optional notes Dovecot appends (never the given password itself: `auth_verbose_passwords=plain` lines stay unmatched). */
const PASSDB_NOTES = '(?: \\(for LDAP bind\\))?(?: \\(SHA1 of given password: [0-9a-f]{1,40}\\))?$';
const PAM_UNIX = '^pam_unix\\(dovecot:auth\\): authentication failure; logname=\\S{0,64} uid=\\d{1,10} euid=\\d{1,10} tty=\\S{0,64} ruser=';

// Rules with several wordings share one pattern, each wording its own needle: a needle short enough to
// cover them all (`auth`, `): `) is slow to search on a crafted line (MIN_NEEDLE_LENGTH).
const NO_AUTH_ATTEMPTS = new RegExp(
  `${LOGIN_PREFIX}[^()]{0,200}(?:\\([^()]{0,100}\\)[^()]{0,200}){0,3}\\((?:no auth attempts(?: in \\d{1,9} secs?)?|disconnected before auth was ready, waited \\d{1,9} secs?|client didn't finish SASL auth, waited \\d{1,9} secs?)\\)(?: \\([\\w_]{1,40}\\))?${LOGIN_FIELDS}`,
);
const PASSWORD_MISMATCH = new RegExp(`${PASSDB_PREFIX}${PASSDB_SUBJECT}(?:Password mismatch|invalid credentials)${PASSDB_NOTES}`);

const rules: Rule[] = [
  {
    id: 'login-auth-failed',
    kind: 'auth-failure',
    needle: '(auth failed, ',
    // Before `(auth failed…)` Dovecot says why the session ended (`Disconnected: Connection closed: read(size=1003) failed: …`).
    re: new RegExp(`${LOGIN_PREFIX}[^()]{0,200}(?:\\([^()]{0,100}\\)[^()]{0,200}){0,3}${AUTH_FAILED}(?: \\([\\w_]{1,40}\\))?${LOGIN_FIELDS}`),
  },
  {
    id: 'login-proxy-auth-failed',
    kind: 'auth-failure',
    needle: '(proxy dest auth failed)',
    re: new RegExp(`${LOGIN_PREFIX}Disconnected \\(proxy dest auth failed\\)${LOGIN_FIELDS}`),
  },
  {
    id: 'login-plaintext-disabled',
    kind: 'protocol-abuse',
    // No space before it: a needle starting with a space is tried at every space of a crafted run.
    needle: 'plaintext auth)',
    re: new RegExp(
      `${LOGIN_PREFIX}(?:Aborted login|Disconnected|Disconnected: Too many invalid commands\\.?|Login aborted) \\(tried to use (?:disabled|disallowed) plaintext auth\\)${LOGIN_FIELDS}`,
    ),
  },
  {
    id: 'login-no-auth-attempts',
    kind: 'probe',
    needle: 'no auth attempts',
    re: NO_AUTH_ATTEMPTS,
  },
  {
    id: 'login-no-auth-attempts',
    kind: 'probe',
    needle: 'before auth was ready',
    re: NO_AUTH_ATTEMPTS,
  },
  {
    id: 'login-no-auth-attempts',
    kind: 'probe',
    needle: "didn't finish SASL auth",
    re: NO_AUTH_ATTEMPTS,
  },
  {
    id: 'passdb-unknown-user',
    kind: 'invalid-user',
    needle: 'unknown user',
    re: new RegExp(`${PASSDB_PREFIX}${PASSDB_SUBJECT}unknown user${PASSDB_NOTES}`),
  },
  {
    id: 'passdb-password-mismatch',
    kind: 'auth-failure',
    needle: 'Password mismatch',
    re: PASSWORD_MISMATCH,
  },
  {
    id: 'passdb-password-mismatch',
    kind: 'auth-failure',
    needle: 'invalid credentials',
    re: PASSWORD_MISMATCH,
  },
  {
    id: 'passdb-pam-failed',
    kind: 'auth-failure',
    needle: 'pam_authenticate() failed: ',
    // PAM's error strings (pam_strerror) are letters and spaces; `: N Time(s)` is syslog's repeat count.
    re: new RegExp(`${PASSDB_PREFIX}${PASSDB_SUBJECT}pam_authenticate\\(\\) failed: [A-Za-z ]{1,80}(?: \\([A-Za-z ]{1,40}\\?\\))?(?:: \\d{1,6} Time\\(s\\))?$`),
  },
  {
    id: 'pam-unix-same-user',
    kind: 'auth-failure',
    needle: 'pam_unix(dovecot:auth): authentication failure;',
    re: new RegExp(`${PAM_UNIX}(?<user>.*) rhost=${ADDR}  user=\\k<user>$`),
  },
  {
    id: 'pam-unix',
    kind: 'auth-failure',
    needle: 'pam_unix(dovecot:auth): authentication failure;',
    // Without a user= suffix nothing follows rhost=; a ruser holding `  user=` could fake one, so it is refused.
    re: new RegExp(`${PAM_UNIX}(?<user>.*) rhost=${ADDR}$`),
    accept: (m) => !m.groups!.user!.includes('  user='),
  },
];

export const dovecot = new RuleFilter({
  name: 'dovecot',
  service: 'imap',
  programs: ['dovecot', 'dovecot-auth', 'auth', 'auth-worker', 'auth-worker(*', 'auth(*', 'imap-login', 'pop3-login', 'submission-login', 'managesieve-login', 'lmtp-login'],
  bareLines: true,
  rules,
  // Login and auth processes log through the log process's pipe: a line longer than PIPE_BUF (4,096 on Linux)
  // is sent in pieces, each logged as a message of its own (lib/failures.c, log/log-connection.c; 2.3 and 2.4).
  maxMessageLength: 8192,
});
