import { canonicalAddress } from '../core/address.js';
import type { EventKind, LogLine } from '../core/types.js';
import type { Filter, FilterMatch } from './filter.js';

/**
 * Apache httpd 2.2 and 2.4 error log (`ErrorLog` file, or `ErrorLog syslog`
 * tagged `httpd`, `httpd/VHOST` or `apache2`): authentication and access
 * failures of mod_auth_basic, mod_auth_digest, mod_authz_*, mod_access_compat
 * and mod_ssl's SNI checks.
 *
 * The header `[module:error] [pid P:tid T] [client ADDR:PORT] AHnnnnn: ` (2.4)
 * or `[error] [client ADDR] ` (2.2) is parsed first, at the start of the
 * message, before any text the client controls; the message after it must
 * then *start* with a known failure, so a path like `/[client 1.2.3.4] user
 * root not found` inside another error cannot match. 2.4 writes the client
 * as `%s:%d` (an IPv6 address unbracketed, port last); 2.2 writes no port.
 */

const HEADER =
  /^\[(?:[\w-]{0,40}:)?error\] (?<pid>\[pid \d+(?::tid \d+)?\] )?\[client (?<client>\[[0-9A-Fa-f:.]{2,45}\]:\d{1,5}|[0-9A-Fa-f:.]{2,51})\] (?:\[remote [^\] ]{2,60}\] )?(?:AH\d{5}: )?/;
const IPV4_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;
const TRAILING_PORT = /:\d{1,5}$/;

interface ApacheRule {
  id: string;
  kind: EventKind;
  re: RegExp;
  /** Text the match must contain after the user name: searched first, so the lazy user scan runs only where it can end. */
  needle?: string;
}

/** Matched against the text after the header; `Digest: ` is how 2.2's mod_auth_digest prefixes its messages. */
const RULES: readonly ApacheRule[] = [
  { id: 'user-not-found', kind: 'invalid-user', needle: ' not found', re: /^user (?<user>.*?) not found(?::|,|$)/ },
  { id: 'password-mismatch', kind: 'auth-failure', needle: ': authentication failure for "', re: /^user (?<user>.*?): authentication failure for "/ },
  { id: 'authorization-failure', kind: 'auth-failure', needle: ': authorization failure for "', re: /^user (?<user>.*?): authorization failure for "/ },
  { id: 'authorization-refused', kind: 'auth-failure', re: /^Authorization of user (?<user>.*?) to access / },
  { id: 'wrong-scheme', kind: 'auth-failure', re: /^client used wrong authentication scheme: / },
  { id: 'access-denied', kind: 'probe', re: /^client denied by server configuration: / },
  { id: 'digest-password-mismatch', kind: 'auth-failure', needle: ': password mismatch: ', re: /^(?:Digest: )?user (?<user>.*?): password mismatch: / },
  { id: 'digest-user-not-found', kind: 'invalid-user', re: /^(?:Digest: )?user `(?<user>.*?)' in realm `/ },
  { id: 'digest-realm-mismatch', kind: 'auth-failure', re: /^(?:Digest: )?realm mismatch - got `/ },
  { id: 'digest-bad-qop', kind: 'protocol-abuse', re: /^(?:Digest: )?invalid qop `/ },
  { id: 'digest-bad-algorithm', kind: 'protocol-abuse', re: /^(?:Digest: )?unknown algorithm `/ },
  // `received - hash is not …` is also what a stale nonce after a server restart gives: not evidence.
  { id: 'digest-bad-nonce', kind: 'protocol-abuse', re: /^(?:Digest: )?invalid nonce \S{1,200} received - (?:length is not \d+|user attempted time travel)/ },
  { id: 'sni-mismatch', kind: 'probe', re: /^(?:Hostname \S{1,300} provided via SNI(?:, but no hostname provided in HTTP request| and hostname \S{1,300} provided via HTTP (?:are different|have no compatible SSL setup))|No hostname was provided via SNI for a name based virtual host)/ },
];

export class ApacheAuthFilter implements Filter {
  readonly name = 'apache-auth';
  readonly service = 'http';
  readonly programs = ['httpd', 'httpd/', 'apache2', 'apache'];
  readonly bareLines = true;
  readonly patterns = RULES.map((r) => r.id);
  /** httpd formats each error log line, header included, into MAX_STRING_LEN (8,192 bytes; log_error_core in server/log.c). */
  readonly maxMessageLength = 8192;

  match(line: LogLine): FilterMatch | null {
    const message = line.message;
    if (message.length > this.maxMessageLength || !message.startsWith('[')) return null;
    const head = HEADER.exec(message);
    if (head === null) return null;
    const body = message.slice(head[0].length);
    for (const rule of RULES) {
      if (rule.needle !== undefined && !body.includes(rule.needle)) continue;
      const m = rule.re.exec(body);
      if (m === null) continue;
      const address = clientAddress(head.groups!.client!, head.groups!.pid !== undefined);
      if (address === null) return null;
      return { kind: rule.kind, address, user: m.groups?.user ?? null, pattern: rule.id };
    }
    return null;
  }
}

/** `[2001:db8::1]:80`, `1.2.3.4:80`, 2.4's `2001:db8::1:80` (the port is the last group), 2.2's bare address. */
function clientAddress(text: string, hasPort: boolean): string | null {
  if (text.startsWith('[')) return canonicalAddress(text.slice(1, text.lastIndexOf(']')));
  const v4 = IPV4_PORT.exec(text);
  if (v4 !== null) return canonicalAddress(v4[1]!);
  return canonicalAddress(hasPort ? text.replace(TRAILING_PORT, '') : text);
}

export const apacheAuth = new ApacheAuthFilter();
