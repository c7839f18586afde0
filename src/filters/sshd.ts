import { canonicalAddress } from '../core/address.js';
import { needleGate } from '../core/regexp.js';
import type { EventKind, LogLine } from '../core/types.js';
import { ConnectionTable } from './connections.js';
import type { Filter, FilterMatch } from './filter.js';

/**
 * OpenSSH (sshd, and the sshd-session / sshd-auth helpers of OpenSSH ≥ 9.8).
 *
 * Attacker-controlled text in these messages: the user name (`Invalid user
 * U from …`, up to 100 characters before sshd escapes it), the client's
 * identification string, the client's disconnect reason, the hostbased
 * client user/host, PAM's ruser/user. Every rule takes the address from a
 * place sshd itself writes:
 * - after fixed text at the start of the message (`Received disconnect from
 *   ADDR`, `Unable to negotiate with ADDR`), or
 * - from a tail sshd writes at the end (`… from ADDR port N ssh2$`), reached
 *   through a greedy user group so the last — real — occurrence wins, and the
 *   tail's shape is tight enough that no attacker text can follow it.
 *
 * Some sshd messages name no address (`Disconnecting: Too many authentication
 * failures`, `kex_exchange_identification: …`, `Unable to negotiate a key
 * exchange method`). They belong to the connection of the same sshd process:
 * the filter remembers, per host and pid, the peer that process logged last
 * (`Connection from ADDR port N on …` at LogLevel VERBOSE, or any matched
 * line), and when it does not know it yet, holds the event until that
 * process's `Connection closed by ADDR port N` names the peer.
 *
 * `Failed publickey` for an existing user is not evidence: a client with
 * several keys in its agent logs one per key it tries before the right one.
 * Too many of them end in `Too many authentication failures`, which is.
 */

/** An IPv4 or IPv6 literal as sshd prints it (IPv4-mapped included); validated by canonicalAddress. */
const ADDR = '(?<addr>[0-9A-Fa-f:.]{2,45})';
const PORT = ' port \\d{1,5}';
/** `Failed METHOD for [invalid user ]USER` — publickey and hostbased have rules of their own. */
const FAILED = 'Failed (?!publickey |hostbased )[\\w/-]{1,40} for (?<invalid>invalid user |illegal user )?(?<user>.*)';
const RUSER = ' ssh1: ruser ';
const CLIENT_USER = ', client user "';

const failedKind = (m: RegExpExecArray): EventKind => (m.groups!.invalid ? 'invalid-user' : 'auth-failure');

/** JSch (Java SSH clients, common in brute-force kits) disconnects with code 3 and this reason after failing. */
const JSCH_AUTH_FAIL = /: Auth fail(?: \[preauth\])?$/;

type KindOf = EventKind | ((m: RegExpExecArray, message: string) => EventKind | null);

interface SshdRule {
  id: string;
  /** Cheap substring test before the regex runs. */
  needle: string;
  re: RegExp;
  kind: KindOf;
  /** Runs before the regex; false skips the rule (e.g. the marker the address follows must occur exactly once). */
  guard?: (message: string) => boolean;
}

/** `Connection closed by WHO user U ADDR port N [preauth]` (and its `reset by`, `Disconnected from` forms). */
function closedUser(who: 'authenticating' | 'invalid'): RegExp {
  return new RegExp(`^(?:Connection (?:closed|reset) by|Disconnected from) ${who} user (?<user>.*) ${ADDR}${PORT} \\[preauth\\]$`);
}

/** Rules whose line names the peer. */
const RULES: readonly SshdRule[] = [
  {
    id: 'failed-auth',
    needle: 'Failed ',
    // password, keyboard-interactive[/pam], none, gssapi-with-mic, unknown: sshd appends nothing after `sshN`.
    re: new RegExp(`^(?:\\[ID \\d+ [\\w.]+\\] )?${FAILED} from ${ADDR}${PORT} ssh2$`),
    kind: failedKind,
  },
  {
    id: 'failed-auth',
    needle: 'Failed ',
    // Older sshd: SSH-1, no protocol, or not even a port. A modern line ends in `ssh2` and never reaches
    // this rule; an SSH-1 line with a remote user (the attacker's, below) could end in a forged tail.
    re: new RegExp(`^(?:\\[ID \\d+ [\\w.]+\\] )?${FAILED} from ${ADDR}(?:${PORT}(?: ssh1)?)?$`),
    guard: (message) => !message.includes(RUSER),
    kind: failedKind,
  },
  {
    id: 'failed-auth',
    needle: RUSER,
    // SSH-1 rhosts: the remote user (the attacker's) follows the real tail. Taken only when the tail occurs once.
    re: new RegExp(`^${FAILED} from ${ADDR}${PORT} ssh1: ruser `),
    guard: (message) => message.indexOf(RUSER) === message.lastIndexOf(RUSER),
    kind: failedKind,
  },
  {
    id: 'failed-publickey-invalid-user',
    needle: 'Failed publickey for invalid user ',
    // The key description is `TYPE FINGERPRINT`, no spaces: nothing can follow the real tail.
    re: new RegExp(`^Failed publickey for invalid user (?<user>.*) from ${ADDR}${PORT} ssh2: [\\w@.-]{1,60} \\S{1,200}$`),
    kind: 'invalid-user',
  },
  {
    id: 'failed-hostbased',
    needle: 'Failed hostbased for ',
    // Client user and host are the attacker's: quoted, without quotes inside, and the marker before them
    // must occur once, so a tail forged inside them is refused.
    guard: (message) => message.indexOf(CLIENT_USER) === message.lastIndexOf(CLIENT_USER),
    re: new RegExp(
      `^Failed hostbased for (?<invalid>invalid user )?(?<user>.*) from ${ADDR}${PORT} ssh2: [\\w@.-]{1,60} \\S{1,200}, client user "[^"]*", client host "[^"]*"$`,
    ),
    kind: failedKind,
  },
  // One rule per wording: a needle as short as ` user ` is slow to search on a crafted line (MIN_NEEDLE_LENGTH).
  {
    id: 'invalid-user',
    needle: 'Invalid user ',
    re: new RegExp(`^Invalid user (?<user>.*) from ${ADDR}(?:${PORT})?$`),
    kind: 'invalid-user',
  },
  {
    id: 'invalid-user',
    needle: 'Illegal user ',
    re: new RegExp(`^Illegal user (?<user>.*) from ${ADDR}(?:${PORT})?$`),
    kind: 'invalid-user',
  },
  {
    id: 'user-not-allowed',
    needle: ' not allowed because ',
    re: new RegExp(
      `^User (?<user>.*) from ${ADDR} not allowed because (?:not listed in AllowUsers|listed in DenyUsers|not in any group|a group is listed in DenyGroups|none of user's groups are listed in AllowGroups)$`,
    ),
    kind: 'invalid-user',
  },
  {
    id: 'root-login-refused',
    needle: 'ROOT LOGIN REFUSED FROM ',
    re: new RegExp(`^ROOT LOGIN REFUSED FROM ${ADDR}(?:${PORT})?(?: \\[preauth\\])?$`),
    kind: 'auth-failure',
  },
  {
    id: 'max-auth-attempts',
    needle: 'maximum authentication attempts exceeded for ',
    re: new RegExp(
      `^(?:error: )?maximum authentication attempts exceeded for (?:invalid user )?(?<user>.*) from ${ADDR}${PORT} ssh2 \\[preauth\\]$`,
    ),
    kind: 'auth-failure',
  },
  {
    id: 'too-many-auth-failures',
    needle: ': Too many authentication failures',
    re: new RegExp(`^Disconnecting (?:authenticating|invalid) user (?<user>.*) ${ADDR}${PORT}: Too many authentication failures \\[preauth\\]$`),
    kind: 'auth-failure',
  },
  {
    id: 'user-change',
    needle: 'Change of username or service not allowed',
    // Both user names in the parentheses are the attacker's: they may not contain `,` or `)`.
    re: new RegExp(
      `^Disconnecting (?:authenticating|invalid) user (?<user>.*) ${ADDR}${PORT}: Change of username or service not allowed: \\([^,)]*,[^,)]*\\) -> \\([^,)]*,[^,)]*\\) \\[preauth\\]$`,
    ),
    kind: 'protocol-abuse',
  },
  {
    id: 'closed-authenticating',
    needle: 'authenticating user ',
    re: closedUser('authenticating'),
    kind: 'auth-failure',
  },
  {
    id: 'closed-authenticating',
    needle: 'invalid user ',
    re: closedUser('invalid'),
    kind: 'invalid-user',
  },
  {
    id: 'closed-preauth',
    needle: ' [preauth]',
    re: new RegExp(`^(?:Connection (?:closed|reset) by|Disconnected from) ${ADDR}(?:${PORT})? \\[preauth\\]$`),
    kind: 'probe',
  },
  {
    id: 'pam-auth-failure',
    needle: '(sshd:auth): authentication failure;',
    // ruser and user are the attacker's and surround rhost: the address is taken only when ` rhost=` occurs once.
    re: new RegExp(
      `^pam_[a-z0-9_]{1,20}\\(sshd:auth\\): authentication failure; logname=\\S* uid=\\d+ euid=\\d+ tty=\\S* ruser=.*? rhost=${ADDR}(?: {1,2}user=(?<user>.*?))?(?: \\[preauth\\])?$`,
    ),
    guard: (message) => message.indexOf(' rhost=') === message.lastIndexOf(' rhost='),
    kind: 'auth-failure',
  },
  {
    id: 'pam-error',
    // In all three wordings (`Authentication failure`, `authentication error`, `… authentication module`).
    needle: 'uthentication ',
    // OpenSSH's own PAM messages: the user comes first, the address last (OS X adds `via LOCALADDR`).
    re: new RegExp(
      `^(?:error: )?PAM: (?:[Aa]uthentication (?:failure|error)|User not known to the underlying authentication module) for (?:illegal user )?(?<user>.*) from ${ADDR}(?: via [0-9A-Fa-f:.]{2,45})? ?$`,
    ),
    kind: 'auth-failure',
  },
  {
    id: 'received-disconnect',
    needle: 'Received disconnect from ',
    // The address precedes the client's reason text; the reason only decides the kind.
    re: new RegExp(`^(?:error: )?Received disconnect from ${ADDR}(?:${PORT})?: ?(?<code>\\d{1,2}): `),
    kind: (m, message) => {
      const code = Number(m.groups!.code);
      // 14: no more authentication methods; 3 with "Auth fail": JSch's failed login.
      if (code === 14 || (code === 3 && JSCH_AUTH_FAIL.test(message))) return 'auth-failure';
      return message.endsWith(' [preauth]') ? 'probe' : null;
    },
  },
  {
    id: 'no-identification',
    needle: 'Did not receive identification string from ',
    re: new RegExp(`^Did not receive identification string from ${ADDR}(?:${PORT})?$`),
    kind: 'probe',
  },
  {
    id: 'bad-protocol-version',
    needle: 'Bad protocol version identification ',
    re: new RegExp(`^Bad protocol version identification '.*' from ${ADDR}(?:${PORT})?$`),
    kind: 'protocol-abuse',
  },
  {
    id: 'protocol-major-differ',
    needle: 'Protocol major versions differ for ',
    re: new RegExp(`^Protocol major versions differ for ${ADDR}(?:${PORT})?: `),
    kind: 'protocol-abuse',
  },
  {
    id: 'banner-exchange',
    needle: 'banner exchange: Connection from ',
    re: new RegExp(`^banner exchange: Connection from ${ADDR}${PORT}: `),
    kind: 'protocol-abuse',
  },
  {
    id: 'unable-to-negotiate',
    needle: 'Unable to negotiate with ',
    re: new RegExp(`^(?:fatal: )?Unable to negotiate with ${ADDR}${PORT}: no matching [\\w -]{1,40} found\\.`),
    kind: 'probe',
  },
  {
    id: 'dispatch-fatal',
    needle: 'ssh_dispatch_run_fatal: Connection from ',
    re: new RegExp(`^ssh_dispatch_run_fatal: Connection from ${ADDR}${PORT}: `),
    kind: 'protocol-abuse',
  },
  {
    id: 'tcpwrappers-refused',
    needle: 'refused connect from ',
    re: new RegExp(`^refused connect from \\S{1,300} \\(${ADDR}\\)$`),
    kind: 'probe',
  },
];

/** Rules whose line names no peer: the address comes from the same sshd process's earlier or next line. */
const CONNECTION_RULES: readonly SshdRule[] = [
  {
    id: 'too-many-auth-failures',
    needle: 'Disconnecting: Too many authentication failures',
    re: /^Disconnecting: Too many authentication failures(?: for .*)? \[preauth\]$/,
    kind: 'auth-failure',
  },
  {
    id: 'kex-identification',
    needle: 'kex_exchange_identification: ',
    re: /^(?:error: )?kex_exchange_identification: (?:client sent invalid protocol identifier|Connection closed by remote host|read: Connection reset by peer)/,
    kind: 'probe',
  },
  {
    id: 'unable-to-negotiate',
    needle: 'Unable to negotiate a key exchange method',
    re: /^(?:fatal: )?Unable to negotiate a key exchange method \[preauth\]$/,
    kind: 'probe',
  },
  {
    id: 'no-matching-algorithm',
    needle: 'no matching ',
    re: /^(?:fatal: )?no matching [\w -]{1,40} found: client /,
    kind: 'probe',
  },
  {
    id: 'reset-preauth',
    needle: 'Connection reset by peer [preauth]',
    re: /^fatal: Read from socket failed: Connection reset by peer \[preauth\]$/,
    kind: 'probe',
  },
];

/** Lines that only tell which peer an sshd process serves. */
const CONNECTION_FROM = new RegExp(`^Connection from ${ADDR}${PORT}(?: on [0-9A-Fa-f:.]{2,45}${PORT}(?: rdomain "[^"]*")?)?$`);
/** Some distributions' audit patch logs the peer as `ADDR-PORT` first thing in a connection. */
const AUDIT_REMOTE = new RegExp(`^SSH: Server;Ltype: \\w+;Remote: ${ADDR}-\\d{1,5};`);
/** The end of a connection whose earlier line named no peer. */
const CONNECTION_END = new RegExp(`^Connection (?:closed|reset) by ${ADDR}${PORT}$`);

/** How long (log time) a process's peer or held event stays relevant: sshd's LoginGraceTime is 2 minutes by default. */
const CONNECTION_TTL_MS = 10 * 60_000;
const MAX_CONNECTIONS = 10_000;

/** Connection flag: an `Invalid user` line was counted and its `Failed … for invalid user` is still to come. */
const INVALID_ANNOUNCED = 1;

interface Held {
  kind: EventKind;
  pattern: string;
  time: number;
}

/**
 * The longest message sshd can log: OpenSSH writes at most 500 characters to syslog (`%.500s` in its
 * log.c) and 1,021 to stderr (`sshd -e`, read by the journal); PAM modules logging under sshd's name
 * write short fixed texts around names sshd has validated. A longer line tagged sshd was written by
 * somebody else: it is skipped before any pattern scans it (a 16 KiB crafted line cost up to 0.4 ms).
 */
const MAX_MESSAGE_LENGTH = 2048;

const PATTERN_IDS = [...new Set([...RULES, ...CONNECTION_RULES].map((r) => r.id))];
const ANY_NEEDLE = needleGate(RULES.map((r) => r.needle));

export class SshdFilter implements Filter {
  readonly name = 'sshd';
  readonly service = 'ssh';
  readonly programs = ['sshd', 'sshd-session', 'sshd-auth'] as const;
  readonly bareLines = false;
  readonly patterns = PATTERN_IDS;
  readonly maxMessageLength = MAX_MESSAGE_LENGTH;

  /** Peer per host and pid: the address, when last seen, attempts counted, flags. */
  private readonly peers = new ConnectionTable(MAX_CONNECTIONS, CONNECTION_TTL_MS);
  /** Address-less events waiting for their process to name the peer, by the peers' key. */
  private readonly held = new Map<number, Held>();

  match(line: LogLine): FilterMatch | null {
    const message = line.message;
    if (message.length > MAX_MESSAGE_LENGTH) return null;
    const key = line.pid === null ? -1 : this.peers.key(line.host, line.pid);
    // One scan decides whether any rule can apply; most sshd lines (sessions, accepted logins) stop here.
    if (!ANY_NEEDLE.test(message)) return key === -1 ? null : this.peerLine(message, key, line.time);
    for (const rule of RULES) {
      const m = run(rule, message);
      if (m === null) continue;
      const address = canonicalAddress(m.groups!.addr!);
      if (address === null) continue;
      const kind = typeof rule.kind === 'function' ? rule.kind(m, message) : rule.kind;
      if (kind === null) continue;
      let repeat = false;
      if (key !== -1) {
        const peer = this.remember(key, address, line.time);
        const held = this.held.size > 0 ? this.takeHeld(key, line.time) : null;
        if (held !== null) {
          this.peers.counted[peer]!++;
          return { kind: held.kind, address, user: null, pattern: held.pattern };
        }
        repeat = this.isRepeat(peer, rule.id, kind);
      }
      const match: FilterMatch = { kind, address, user: m.groups!.user ?? null, pattern: rule.id };
      if (repeat) match.repeat = true;
      return match;
    }
    if (key === -1) return null;
    return this.peerLine(message, key, line.time);
  }

  /** Lines that name no peer themselves, or only tell which peer a process serves. */
  private peerLine(message: string, key: number, time: number): FilterMatch | null {
    for (const rule of CONNECTION_RULES) {
      if (run(rule, message) === null) continue;
      const kind = rule.kind as EventKind;
      const peer = this.peers.find(key);
      if (peer !== -1 && time - this.peers.times[peer]! <= CONNECTION_TTL_MS) return { kind, address: this.peers.address(peer), user: null, pattern: rule.id };
      this.hold(key, { kind, pattern: rule.id, time: time });
      return null;
    }
    if (message.startsWith('Connection from ') || message.startsWith('SSH: Server;')) {
      const m = (message.charCodeAt(0) === 67 /* C */ ? CONNECTION_FROM : AUDIT_REMOTE).exec(message);
      const address = m === null ? null : canonicalAddress(m.groups!.addr!);
      if (address !== null) this.remember(key, address, time);
      return null;
    }
    if (message.startsWith('Connection ') && this.held.size > 0) {
      const m = CONNECTION_END.exec(message);
      const address = m === null ? null : canonicalAddress(m.groups!.addr!);
      if (address === null) return null;
      const held = this.takeHeld(key, time);
      if (held !== null) return { kind: held.kind, address, user: null, pattern: held.pattern };
    }
    return null;
  }

  /** The slot of the process's connection, now serving `address` at `time`. */
  private remember(key: number, address: string, time: number): number {
    const peers = this.peers;
    const peer = peers.find(key);
    if (peer === -1) return peers.add(key, address, time);
    // A pid reused by a later connection starts counting afresh.
    if (!peers.serves(peer, address) || time - peers.times[peer]! > CONNECTION_TTL_MS) {
      peers.counted[peer] = 0;
      peers.flags[peer] = 0;
      peers.setAddress(peer, address);
    }
    peers.times[peer] = time;
    return peer;
  }

  /**
   * Whether a matched line repeats an attempt its connection already reported,
   * updating the connection's tally. `Invalid user U` is followed by `Failed …
   * for invalid user U` for the same guess; a summary such as `Connection closed
   * by authenticating user` adds nothing after a counted failure.
   */
  private isRepeat(peer: number, rule: string, kind: EventKind): boolean {
    const { flags, counted } = this.peers;
    if (rule === 'invalid-user') {
      flags[peer]! |= INVALID_ANNOUNCED;
    } else if (rule === 'failed-auth' && kind === 'invalid-user' && (flags[peer]! & INVALID_ANNOUNCED) !== 0) {
      flags[peer]! &= ~INVALID_ANNOUNCED;
      return true;
    } else if (rule === 'closed-authenticating' && counted[peer]! > 0) {
      return true;
    }
    counted[peer]!++;
    return false;
  }

  private hold(key: number, held: Held): void {
    this.held.set(key, held);
    if (this.held.size > MAX_CONNECTIONS) evictHeld(this.held, held.time);
  }

  private takeHeld(key: number, time: number): Held | null {
    const held = this.held.get(key);
    if (held === undefined) return null;
    this.held.delete(key);
    return time - held.time <= CONNECTION_TTL_MS ? held : null;
  }
}

/** Makes room for held events as the connection table does: the stale, then the older half. */
function evictHeld(map: Map<number, Held>, now: number): void {
  for (const [k, v] of map) if (now - v.time > CONNECTION_TTL_MS) map.delete(k);
  if (map.size <= MAX_CONNECTIONS * 0.9) return;
  let drop = map.size - MAX_CONNECTIONS / 2;
  for (const k of map.keys()) {
    if (drop-- <= 0) break;
    map.delete(k);
  }
}

function run(rule: SshdRule, message: string): RegExpExecArray | null {
  if (!message.includes(rule.needle)) return null;
  if (rule.guard && !rule.guard(message)) return null;
  return rule.re.exec(message);
}

/** The built-in sshd filter. It keeps per-connection state: use one instance per pipeline (or `new SshdFilter()`). */
export const sshd = new SshdFilter();
