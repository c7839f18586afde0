import { formatDuration } from '../core/duration.js';
import type { Logger } from '../core/log.js';
import type { Decision } from '../core/types.js';
import type { Daemon } from '../daemon/daemon.js';

/**
 * Notifiers tell people what the daemon did: e-mail, webhooks (chat services).
 * They receive notices, never log lines; a notifier must not block the daemon,
 * so `notify` only queues and delivery happens in the background.
 */

export type NoticeKind = 'start' | 'stop' | 'ban' | 'unban' | 'siege';

export type Notice =
  | { kind: 'start'; time: number; node: string; jails: string[] }
  | { kind: 'stop'; time: number; node: string }
  | { kind: 'ban' | 'unban' | 'siege'; time: number; node: string; decision: Decision };

export type DecisionNotice = Extract<Notice, { decision: Decision }>;

export interface Notifier {
  readonly name: string;
  /** Queues a notice; never throws, never waits. */
  notify(notice: Notice): void;
  /** Delivers what is still queued (as far as the receiver allows), then stops. */
  close(): Promise<void>;
}

export const NOTICE_KINDS: readonly NoticeKind[] = ['start', 'stop', 'ban', 'unban', 'siege'];

/** SMTP settings and mail policy (`notify.email` in the config). */
export interface EmailOptions {
  to: string[];
  from: string;
  smtp: {
    host: string;
    port: number;
    /** `starttls`: plain connection upgraded (required); `implicit`: TLS from the first byte (465); `none`: no TLS (local relay only). */
    tls: 'starttls' | 'implicit' | 'none';
    user: string | null;
    password: string | null;
    /** PEM bundle trusted for the server's certificate (default: the system's CAs). */
    caFile: string | null;
    /** Check the server's certificate (default true). */
    verify: boolean;
  };
  on: NoticeKind[];
  /** `each`: one mail per ban (within the cap); `digest`: bans collected and mailed every `digestEvery`. */
  bans: 'each' | 'digest';
  digestEveryMs: number;
  /** At most this many mails in any hour; what does not fit goes into the next digest. */
  maxPerHour: number;
  /** Matching log lines quoted per ban. */
  maxLines: number;
  subjectPrefix: string;
}

/** One webhook receiver (`notify.webhooks[]`). */
export interface WebhookOptions {
  url: string;
  on: NoticeKind[];
  /** JSON body with `{placeholder}`s; null sends the notice as JSON. */
  template: string | null;
  headers: Record<string, string>;
  /** Further attempts after the first failed one. */
  retries: number;
  /** Wait before the first retry; doubles each time (at most 5 minutes). */
  backoffMs: number;
  timeoutMs: number;
  /** Notices waiting for delivery beyond this are dropped (oldest first), with a warning. */
  maxQueue: number;
}

export interface NotifyOptions {
  email: EmailOptions | null;
  webhooks: WebhookOptions[];
}

/** Which notice kinds a notifier subscribed to with `on:` accepts. */
export function wants(on: readonly NoticeKind[], notice: Notice): boolean {
  return on.includes(notice.kind);
}

/**
 * Subscribes notifiers to the daemon: start, stop, and every ban, unban and
 * siege transition after it is committed. Returns a function that detaches.
 */
export function connectNotifiers(daemon: Daemon, notifiers: readonly Notifier[]): () => void {
  const send = (n: Notice): void => { for (const x of notifiers) x.notify(n); };
  // Asked once: status() reads the database, too costly for every ban of a flood.
  const status = daemon.status();
  const node = status.node;
  const onStarted = (): void => send({ kind: 'start', time: Date.now(), node, jails: status.jails.map((j) => j.name) });
  const onStopping = (): void => send({ kind: 'stop', time: Date.now(), node });
  // A notice's time is when the daemon decided (the decision keeps the log line's own time).
  const onDecision = (d: Decision): void => {
    if (d.action === 'ban' || d.action === 'unban') send({ kind: d.action, time: Date.now(), node, decision: d });
    else if (d.action === 'siege-on' || d.action === 'siege-off') send({ kind: 'siege', time: Date.now(), node, decision: d });
  };
  daemon.events.on('started', onStarted);
  daemon.events.on('stopping', onStopping);
  daemon.events.on('decision', onDecision);
  return () => {
    daemon.events.off('started', onStarted);
    daemon.events.off('stopping', onStopping);
    daemon.events.off('decision', onDecision);
  };
}

export async function closeNotifiers(notifiers: readonly Notifier[], log: Logger): Promise<void> {
  await Promise.all(notifiers.map((n) => n.close().catch((e: Error) => log.error(`${n.name}: ${e.message}`))));
}

/**
 * How long a ban lasts, for people: `1h`, `permanent`. Counted from the notice's
 * time (when the daemon banned), not the log line's: a live ban runs from the wall clock.
 */
export function banDuration(n: DecisionNotice): string {
  const d = n.decision;
  if (d.until === null) return 'permanent';
  // The time left shrinks while a notice waits; the granted duration does not.
  if (d.duration !== undefined && d.duration !== null) return formatDuration(d.duration);
  return formatDuration(Math.max(0, Math.round((d.until - n.time) / 1000) * 1000));
}

/** One line for a notice: what digests list and chat messages say. */
export function summarize(n: Notice): string {
  switch (n.kind) {
    case 'start':
      return `Portcullis started on ${n.node} (jails: ${n.jails.join(', ') || 'none'})`;
    case 'stop':
      return `Portcullis stopped on ${n.node}`;
    case 'ban':
      return `[${n.decision.jail}] banned ${n.decision.target} for ${banDuration(n)}: ${n.decision.reason}`;
    case 'unban':
      return `[${n.decision.jail}] unbanned ${n.decision.target}: ${n.decision.reason}`;
    case 'siege':
      return `[${n.decision.jail}] ${n.decision.action === 'siege-on' ? 'siege mode entered' : 'siege mode left'}: ${n.decision.reason}`;
  }
}

/**
 * Text that came from a log line (attacker-controlled: user names, SIP headers)
 * made safe to show: control characters and invalid text become visible escapes,
 * and it is cut to `max` characters.
 */
export function escapeLogText(text: string, max = 500): string {
  const safe = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\t\n\r]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return safe.length > max ? `${safe.slice(0, max)}… (${safe.length - max} more characters)` : safe;
}
