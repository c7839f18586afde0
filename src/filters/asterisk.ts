import { escapeRegExp } from '../core/regexp.js';
import { RuleFilter, type Rule } from './filter.js';

/**
 * Asterisk: chan_sip, res_pjsip, chan_iax2, the manager (AMI) and the
 * security event log, over syslog (program `asterisk`) or from Asterisk's own
 * files (`/var/log/asterisk/full`, `messages`, `security`) whose lines start
 * with `[YYYY-MM-DD HH:MM:SS]` or `[Mmm dd HH:MM:SS]`, hence bare lines too.
 *
 * Nearly everything in these messages is the caller's: the SIP From header
 * (`'"200" <sip:200@1.2.3.4>'`), the dialled extension, the Call-ID, the
 * account name in security events. The address always comes from a field
 * Asterisk fills from the packet's source, read at a place no client text can
 * imitate:
 * - `… failed for 'ADDR:PORT' - REASON$`: the From header comes first, and only
 *   the real field is followed by one of Asterisk's fixed reasons up to the end
 *   of the line: only the last occurrence can be, so the pattern finds it
 *   scanning forward (lazily, one pass instead of a greedy run to the end and
 *   back);
 * - pjsip's `… failed for 'ADDR:PORT' (callid: ID) - REASON$`: a Call-ID has no
 *   spaces, so it cannot contain a second `' (callid: ` before the real one;
 * - `Call from 'NAME' (ADDR:PORT) to extension 'EXT' rejected because …$`:
 *   both the caller name and the extension (URI-decoded) are the caller's, so
 *   a line is only read when `) to extension '` occurs once — a fake in either
 *   makes it ambiguous, and it is refused rather than misread;
 * - security events: `…,RemoteAddress="IPV4/UDP/ADDR/PORT"` followed only by
 *   the event's own trailing fields; the Call-ID (SessionID) and account before
 *   it may hold a fake RemoteAddress, which no trailing field can follow, so
 *   only the last one matches;
 * - AMI and IAX2 messages start with the address (`ADDR failed to authenticate
 *   as 'NAME'`, `Host ADDR failed …`).
 */

/** Asterisk's line head: optional `[time]` (when the message carries its own), `LEVEL[tid][C-id]` and the source file. */
const HEAD =
  '^(?:\\[[^\\]]{1,40}\\] )?[A-Z]{4,10} ?\\[\\d{1,10}\\](?:\\[C-[0-9a-fA-F]{1,16}\\])?:? (?:[\\w/.-]{1,80}\\.c(?::\\d{1,6}(?: in)? \\w{1,80})?: )?';
/** IPv4, or IPv6 with or without brackets; validated by canonicalAddress. */
const ADDR = '(?<addr>(?:\\d{1,3}\\.){3}\\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{1,43})';
/** `ADDR`, `ADDR:PORT`, `[ADDR]:PORT`, and pjsip's `TRANSPORT:[ADDR]:PORT`. */
const ADDR_PORT = `(?:(?:UDP|TCP|TLS|WSS?):)?\\[?${ADDR}\\]?(?::\\d{1,5})?`;

const REGISTRATION = `${HEAD}Registration from '.*?' failed for '${ADDR_PORT}' - `;
const PJSIP_REQUEST = `${HEAD}Request (?:'[A-Z]{1,20}' )?from '.*?' failed for '${ADDR_PORT}' \\(callid: \\S{0,512}\\) - `;
/** Fields a security event may carry after RemoteAddress: Asterisk's, or digests without quotes. */
const SECURITY_TAIL = '(?:,(?:Module|SessionTV|ACLName|Challenge|ReceivedChallenge|ReceivedHash|Response|ExpectedResponse|AuthMethod)="[^"]{0,512}")*$';
const securityEvent = (events: string): RegExp =>
  new RegExp(
    `${HEAD}SecurityEvent="(?:${events})",.*?,RemoteAddress="IPV[46]/(?:UDP|TCP|TLS|WSS?)/\\[?${ADDR}\\]?/\\d{1,5}"${SECURITY_TAIL}`,
  );

/** A rule's pattern `start` then one of Asterisk's fixed `reasons` at the end; the reasons are its endings too. */
function endingIn(start: string, reasons: readonly string[]): { endings: readonly string[]; re: RegExp } {
  return { endings: reasons, re: new RegExp(`${start}(?:${reasons.map(escapeRegExp).join('|')})$`) };
}

const IAX_AUTH_FAILED = new RegExp(`${HEAD}Host ${ADDR} failed (?:to authenticate as|MD5 authentication for) '`);

const rules: Rule[] = [
  {
    id: 'sip-wrong-password',
    kind: 'auth-failure',
    needle: ' failed for ',
    ...endingIn(REGISTRATION, ['Wrong password', 'Username/auth name mismatch']),
  },
  {
    id: 'sip-unknown-peer',
    kind: 'invalid-user',
    needle: ' failed for ',
    ...endingIn(REGISTRATION, ['No matching peer found', 'Not a local domain', 'Peer is not supposed to register']),
  },
  {
    id: 'sip-acl',
    kind: 'protocol-abuse',
    needle: ' failed for ',
    ...endingIn(REGISTRATION, ['Device does not match ACL', 'ACL error (permit/deny)']),
  },
  {
    id: 'pjsip-auth-failed',
    kind: 'auth-failure',
    needle: ' failed for ',
    ...endingIn(PJSIP_REQUEST, ['Failed to authenticate', 'Error to authenticate']),
  },
  {
    id: 'pjsip-unknown-endpoint',
    kind: 'invalid-user',
    needle: ' failed for ',
    ...endingIn(PJSIP_REQUEST, ['No matching endpoint found']),
  },
  {
    id: 'pjsip-acl',
    kind: 'protocol-abuse',
    needle: ' failed for ',
    ...endingIn(PJSIP_REQUEST, ['Not match Endpoint ACL', 'Not match Endpoint Contact ACL']),
  },
  {
    id: 'call-unknown-extension',
    kind: 'probe',
    needle: ' rejected because extension not found in context ',
    // Toll-fraud scanning: calls to extensions that do not exist.
    re: new RegExp(`${HEAD}Call from '.*' \\(${ADDR_PORT}\\) to extension '[^']{0,256}' rejected because extension not found in context '[\\w.+-]{0,80}'\\.$`),
    accept: (m) => m.input.indexOf(") to extension '") === m.input.lastIndexOf(") to extension '"),
  },
  {
    id: 'sip-hacking-attempt',
    kind: 'protocol-abuse',
    needle: 'hacking attempt detected ',
    re: new RegExp(`${HEAD}hacking attempt detected '${ADDR_PORT}'$`),
  },
  {
    id: 'security-invalid-account',
    kind: 'invalid-user',
    needle: 'SecurityEvent="InvalidAccountID"',
    re: securityEvent('InvalidAccountID'),
  },
  {
    id: 'security-auth-failed',
    kind: 'auth-failure',
    needle: 'SecurityEvent="',
    re: securityEvent('InvalidPassword|ChallengeResponseFailed'),
  },
  {
    id: 'security-acl',
    kind: 'protocol-abuse',
    needle: 'SecurityEvent="FailedACL"',
    re: securityEvent('FailedACL'),
  },
  // One rule per wording: `Host ` is too short a needle to search fast on a crafted line (MIN_NEEDLE_LENGTH).
  {
    id: 'iax-auth-failed',
    kind: 'auth-failure',
    needle: ' failed to authenticate as ',
    re: IAX_AUTH_FAILED,
  },
  {
    id: 'iax-auth-failed',
    kind: 'auth-failure',
    needle: ' failed MD5 authentication for ',
    re: IAX_AUTH_FAILED,
  },
  {
    id: 'iax-unknown-peer',
    kind: 'invalid-user',
    needle: 'No registration for peer ',
    re: new RegExp(`${HEAD}No registration for peer '.*' \\(from ${ADDR}\\)$`),
  },
  {
    id: 'ami-auth-failed',
    kind: 'auth-failure',
    needle: ' failed to authenticate as ',
    re: new RegExp(`${HEAD}${ADDR} failed to authenticate as '`),
  },
  {
    id: 'ami-unknown-user',
    kind: 'invalid-user',
    needle: ' tried to authenticate with nonexistent user ',
    re: new RegExp(`${HEAD}${ADDR} tried to authenticate with nonexistent user '`),
  },
  {
    id: 'freepbx-unknown-connection',
    kind: 'probe',
    needle: 'Rejecting unknown SIP connection from ',
    // FreePBX's from-sip-external dialplan logs this with Log(); the extension before it is the caller's.
    re: new RegExp(`${HEAD}Ext\\. .*: "Rejecting unknown SIP connection from ${ADDR_PORT}"$`),
  },
];

export const asterisk = new RuleFilter({
  name: 'asterisk',
  service: 'sip',
  programs: ['asterisk'],
  bareLines: true,
  rules,
  shortHeads: true,
  // Asterisk formats each log line, file or syslog, into a LOGMSG_SIZE buffer: MAX(BUFSIZ, 8192), 8,192 bytes on glibc (main/logger.c).
  maxMessageLength: 8192,
});
