/**
 * The data model every stage of the pipeline speaks (see DESIGN.md):
 * sources produce LogLines, filters turn them into Events, detectors and
 * policy turn Events into Decisions, enforcers/notifiers/store consume Decisions.
 */

/** A log line after its envelope (syslog header, journal fields…) was parsed once. */
export interface LogLine {
  /** The original text (already cut to the configured maximum length). */
  raw: string;
  /** Milliseconds since the epoch, from the line itself when it carries a time, else arrival time. */
  time: number;
  /** True when `time` came from the line (or journal), false when it is the arrival time. */
  timeFromLine: boolean;
  host: string | null;
  /** Program/tag of the syslog envelope (`sshd`, `postfix/smtpd`), null for bare log formats. */
  program: string | null;
  pid: number | null;
  /** The text after the envelope: what filters match against. */
  message: string;
  /** Identifies where the line came from, e.g. `file:/var/log/auth.log`, `journal`, `stdin`. */
  source: string;
  /** 1-based line number within its source when known (replay, test-filter). */
  lineNo?: number;
  /**
   * Network address of the host that sent the line (syslog receiver), canonical form. Unlike `host`,
   * which the sender writes itself, this is the peer the receiver saw (and allowlisted).
   */
  sender?: string;
}

export type EvidenceKind = 'auth-failure' | 'invalid-user' | 'probe' | 'protocol-abuse' | 'flood';
/** `health` events are operational warnings: counted and shown, never a reason to ban. */
export type EventKind = EvidenceKind | 'health';

export interface Event {
  time: number;
  service: string;
  kind: EventKind;
  /** Canonical address of the offender; null only for health events that name no peer. */
  address: string | null;
  user: string | null;
  /** Name of the filter that matched. */
  filter: string;
  /** Identifier of the pattern inside the filter (for per-pattern hit counts). */
  pattern: string;
  /** Same attempt as an earlier line of the connection: shown, not counted again (see FilterMatch.repeat). */
  repeat?: boolean;
  line: LogLine;
}

export type DecisionAction = 'ban' | 'unban' | 'throttle' | 'siege-on' | 'siege-off';

export interface Decision {
  action: DecisionAction;
  /** Canonical address or CIDR; `*` for siege-on/siege-off (every source not allowlisted). */
  target: string;
  jail: string;
  /** Milliseconds since the epoch. */
  time: number;
  /** When the ban ends (ms since epoch), null when permanent or not applicable. */
  until: number | null;
  /** How long the ban was given for (ms; null when permanent), when the deciding node knows it. */
  duration?: number | null;
  reason: string;
  /** Node that made the decision (host name, or `local`/`cli`). */
  origin: string;
  /** The log lines that counted towards the decision (raw text). */
  evidence?: string[];
  /** Ports and protocol the ban applies to; absent means all. */
  ports?: number[];
  protocol?: 'tcp' | 'udp' | 'all';
  /**
   * For `siege-on`: while the siege lasts, new connections to `ports` from sources not
   * allowlisted are limited to `rateLimit` (e.g. `10/minute`, all such sources together),
   * or refused altogether when `allowlistOnly`. `siege-off` removes both.
   */
  siege?: { rateLimit: string; allowlistOnly: boolean };
}
