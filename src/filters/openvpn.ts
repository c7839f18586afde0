import { canonicalAddress } from '../core/address.js';
import type { EventKind, LogLine } from '../core/types.js';
import type { Filter, FilterMatch } from './filter.js';
import { trimOldest } from '../core/recency.js';
import { needleGate } from '../core/regexp.js';

/**
 * OpenVPN server (2.3–2.6), from syslog/journal or from its own `--log` file.
 *
 * A server names the peer of a message in the instance prefix it writes
 * first — `ADDR:PORT ` for IPv4 (and IPv4-mapped) peers, `ADDR ` for IPv6
 * peers, `CN/ADDR:PORT ` once a client has authenticated — or, for packets
 * that reach no instance, after fixed text (`… from [AF_INET]ADDR:PORT`).
 * The address is taken only from those two places, both before any text a
 * peer can influence (certificate subjects, user names).
 *
 * Where lines come from: `openvpn` (journal, `--syslog`), `ovpn-NAME`
 * (Debian's `openvpn@NAME` units run `--daemon ovpn-NAME`), `vpnserverN`
 * (Asuswrt/Tomato routers, see seed 000) and bare lines of OpenVPN's own
 * log file. Other tags (OpenWrt's `openvpn(NAME)`, custom `--syslog NAME`):
 * build the filter with `createOpenvpnFilter({ programs: [...] })`.
 *
 * One failed connection attempt often logs several lines (`TLS key
 * negotiation failed to occur` then `TLS handshake failed`; `PLUGIN_CALL …
 * status=1` then `TLS Auth Error`). The summary lines count only when the
 * same ADDR:PORT gave no event in the last two minutes, so one attempt is one
 * event. `AUTH-PAM: BACKGROUND: user 'x' failed to authenticate` is written
 * by the plugin's background process without any peer: it is not matched.
 */

/** `us=MICROSECONDS ` appears after the timestamp of some builds' own log file. */
const START = '^(?:us=\\d+ )?';
/** The instance prefix: optional common name, then IPv4:port or a bare IPv6 address. */
const PEER =
  '(?:[^ /]{1,64}/)?(?:(?<addr>\\d{1,3}(?:\\.\\d{1,3}){3}):(?<port>\\d{1,5})|(?<addr6>[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]{1,44})) ';
/** An instance prefix that is skipped because the address is read elsewhere on the line. */
const ANY_PEER = '(?:[^ ]{1,110} )?';
/** A socket address after fixed text: `[AF_INET]1.2.3.4:5` or `[AF_INET6]2001:db8::1:5` (the port is the last group). */
const SOCKET = '\\[AF_INET6?\\](?<addr>[0-9A-Fa-f:.]{2,45}):(?<port>\\d{1,5})(?= |$)';

interface OpenvpnRule {
  id: string;
  kind: EventKind;
  needle: string;
  re: RegExp;
  /** A line that sums up an attempt already reported by an earlier line for the same ADDR:PORT. */
  summary?: boolean;
}

const RULES: readonly OpenvpnRule[] = [
  {
    id: 'tls-negotiation-timeout',
    kind: 'probe',
    needle: 'TLS key negotiation failed to occur',
    re: new RegExp(`${START}${PEER}TLS Error: TLS key negotiation failed to occur within \\d+ seconds`),
  },
  {
    id: 'tls-handshake-failed',
    kind: 'probe',
    needle: 'TLS handshake failed',
    re: new RegExp(`${START}${PEER}TLS Error: TLS handshake failed$`),
    summary: true,
  },
  {
    id: 'hmac-not-found',
    kind: 'protocol-abuse',
    needle: 'cannot locate HMAC in incoming packet from ',
    re: new RegExp(`${START}${ANY_PEER}TLS Error: cannot locate HMAC in incoming packet from ${SOCKET}`),
  },
  {
    id: 'packet-authentication-failed',
    kind: 'protocol-abuse',
    needle: 'TLS Error: ',
    re: new RegExp(`${START}${ANY_PEER}TLS Error: (?:incoming packet authentication failed|tls-crypt unwrapping failed) from ${SOCKET}`),
  },
  {
    id: 'verify-error',
    kind: 'auth-failure',
    needle: 'VERIFY ERROR: ',
    re: new RegExp(`${START}${PEER}VERIFY ERROR: depth=\\d+, error=`),
  },
  {
    id: 'plugin-auth-failed',
    kind: 'auth-failure',
    needle: 'PLUGIN_AUTH_USER_PASS_VERIFY status=1',
    re: new RegExp(`${START}${PEER}PLUGIN_CALL: POST \\S+/PLUGIN_AUTH_USER_PASS_VERIFY status=1$`),
  },
  {
    id: 'script-auth-failed',
    kind: 'auth-failure',
    needle: '(--auth-user-pass-verify)',
    re: new RegExp(`${START}${PEER}WARNING: Failed running command \\(--auth-user-pass-verify\\)`),
  },
  {
    id: 'tls-auth-error',
    kind: 'auth-failure',
    needle: 'TLS Auth Error: ',
    re: new RegExp(`${START}${PEER}TLS Auth Error: `),
    summary: true,
  },
  {
    id: 'bad-packet-length',
    kind: 'protocol-abuse',
    needle: 'Bad encapsulated packet length from peer',
    re: new RegExp(`${START}${PEER}WARNING: Bad encapsulated packet length from peer \\(\\d+\\)`),
  },
  {
    id: 'replay-backtrack',
    kind: 'health',
    needle: 'Replay-window backtrack occurred',
    re: new RegExp(`${START}(?:${PEER})?Replay-window backtrack occurred`),
  },
  {
    id: 'output-saturation',
    kind: 'health',
    needle: 'MULTI: packet dropped due to output saturation',
    re: new RegExp(`${START}(?:${PEER})?MULTI: packet dropped due to output saturation`),
  },
];

/**
 * The longest message OpenVPN writes: its message buffer (ERR_BUF_SIZE) holds 1,280 bytes in 2.3
 * (8,192 with PKCS#11) and 10,240 since 2.4, instance prefix included. A longer line is somebody
 * else's: it is skipped before any pattern scans it.
 */
const MAX_MESSAGE_LENGTH = 10_240;

/** Every rule's needle in one alternation: one scan rejects the lines no rule can match. */
const ANY_NEEDLE = needleGate(RULES.map((r) => r.needle));

/** How long a reported ADDR:PORT absorbs its summary lines (OpenVPN's hand-window is 60 s by default). */
const ATTEMPT_TTL_MS = 120_000;
const MAX_ATTEMPTS = 10_000;

export const DEFAULT_OPENVPN_PROGRAMS: readonly string[] = ['openvpn', 'ovpn-*', 'vpnserver*'];

export interface OpenvpnFilterOptions {
  /** Envelope programs to read (entries ending in `*` or `/` are prefixes); default DEFAULT_OPENVPN_PROGRAMS. */
  programs?: readonly string[];
}

export class OpenvpnFilter implements Filter {
  readonly name = 'openvpn';
  readonly service = 'openvpn';
  readonly programs: readonly string[];
  readonly bareLines = true;
  readonly patterns = RULES.map((r) => r.id);
  readonly maxMessageLength = MAX_MESSAGE_LENGTH;
  /** `ADDR:PORT` → log time of its last event, oldest first. */
  private readonly attempts = new Map<string, number>();

  constructor(options: OpenvpnFilterOptions = {}) {
    this.programs = options.programs ?? DEFAULT_OPENVPN_PROGRAMS;
  }

  match(line: LogLine): FilterMatch | null {
    const message = line.message;
    if (message.length > MAX_MESSAGE_LENGTH || !ANY_NEEDLE.test(message)) return null;
    for (const rule of RULES) {
      if (!message.includes(rule.needle)) continue;
      const m = rule.re.exec(message);
      if (m === null) continue;
      const groups = m.groups!;
      const text = groups.addr ?? groups.addr6;
      const address = text === undefined ? null : canonicalAddress(text);
      if (address === null) {
        if (rule.kind === 'health' && text === undefined) return { kind: rule.kind, address: null, user: null, pattern: rule.id };
        continue;
      }
      if (rule.kind !== 'health' && groups.port !== undefined && this.seenAttempt(`${address}:${groups.port}`, line.time, rule.summary === true)) return null;
      return { kind: rule.kind, address, user: null, pattern: rule.id };
    }
    return null;
  }

  /** Records an attempt; true when `summary` and the attempt was already reported. */
  private seenAttempt(key: string, time: number, summary: boolean): boolean {
    const last = this.attempts.get(key);
    if (summary && last !== undefined && time - last <= ATTEMPT_TTL_MS && time >= last) return true;
    this.attempts.delete(key);
    this.attempts.set(key, time);
    trimOldest(this.attempts, MAX_ATTEMPTS);
    return false;
  }
}

export function createOpenvpnFilter(options: OpenvpnFilterOptions = {}): OpenvpnFilter {
  return new OpenvpnFilter(options);
}

/** The built-in openvpn filter (it remembers recent attempts: one instance per pipeline). */
export const openvpn = createOpenvpnFilter();
