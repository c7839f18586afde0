import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import type { Logger } from '../core/log.js';
import { banDuration, escapeLogText, summarize, wants, type DecisionNotice, type EmailOptions, type Notice, type Notifier } from './notifier.js';

/**
 * Mail through SMTP (STARTTLS or implicit TLS, with authentication): on start
 * and stop, on bans (one mail each, or a digest every N minutes) and on siege
 * transitions. A flood must not flood the mailbox: at most `maxPerHour` mails
 * in any hour. Whatever does not fit is folded into the next digest, which is
 * sent as soon as the cap allows; in `each` mode one mail of the hour is kept
 * for that digest, so a flood costs at most the cap and every ban is reported.
 */

const HOUR = 3_600_000;
/** Bans whose log lines a digest quotes (the rest are listed one line each). */
const DIGEST_EVIDENCE = 20;
/** A digest lists at most this many notices; beyond that it says how many more there were. */
const DIGEST_MAX = 100_000;

interface Mail {
  subject: string;
  text: string;
  /** The notices this mail reports (folded back into the next digest if sending fails). */
  notices: Notice[];
}

type Transport = Pick<ReturnType<typeof nodemailer.createTransport>, 'sendMail' | 'close'>;

export class EmailNotifier implements Notifier {
  readonly name = 'email';
  private readonly transport: Transport;
  /** When the mails of the last hour were sent (the cap counts these). */
  private sentAt: number[] = [];
  /** Notices waiting for the next digest. */
  private pending: Notice[] = [];
  /** Notices dropped because a digest would have grown past DIGEST_MAX. */
  private overflow = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private delivery: Promise<void> = Promise.resolve();
  private closed = false;
  /** Mails handed to the server, and mails it refused or that could not be sent. */
  readonly stats = { sent: 0, failed: 0 };

  constructor(private readonly options: EmailOptions, private readonly log: Logger, transport?: Transport) {
    this.transport = transport ?? createSmtpTransport(options);
  }

  notify(notice: Notice): void {
    if (this.closed || !wants(this.options.on, notice)) return;
    // In `each` mode one mail of the hour stays free for the digest of what did not fit.
    const reserve = this.options.maxPerHour > 1 ? 1 : 0;
    switch (notice.kind) {
      case 'stop':
        return this.sendStop(notice);
      case 'ban':
      case 'unban':
        // Bans wait behind earlier folded ones, so a digest is never overtaken by single mails.
        if (this.options.bans === 'digest' || this.pending.length > 0 || this.free() <= reserve) return this.fold(notice);
        return this.send(singleMail(notice, this.options));
      default:
        if (this.free() <= reserve) return this.fold(notice);
        return this.send(singleMail(notice, this.options));
    }
  }

  /** The stop mail carries whatever was waiting for a digest: there will be no later one. */
  private sendStop(notice: Notice): void {
    this.clearTimer();
    const folded = this.takePending();
    if (this.free() <= 0) {
      this.log.warn(`email: the stop notice${folded.length ? ` and ${folded.length} unreported notice(s)` : ''} not mailed: ${this.options.maxPerHour} mails in the last hour already (notify.email.max_per_hour)`);
      return;
    }
    const mail = singleMail(notice, this.options);
    if (folded.length) {
      const digest = digestMail(folded, this.takeOverflow(), this.options);
      mail.text += `\n\nNot reported until now:\n\n${digest.text}`;
      mail.notices.push(...folded);
    }
    this.send(mail);
  }

  private fold(notice: Notice): void {
    if (this.pending.length >= DIGEST_MAX) this.overflow++;
    else this.pending.push(notice);
    if (!this.flushTimer) this.schedule(this.options.digestEveryMs);
  }

  private schedule(delay: number): void {
    this.clearTimer();
    this.flushTimer = setTimeout(() => { this.flushTimer = null; this.flush(); }, Math.max(0, delay));
    this.flushTimer.unref();
  }

  private clearTimer(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    if (this.free() <= 0) {
      // The cap is used up: the digest goes when the oldest mail of the hour ages out.
      this.schedule(this.sentAt[0]! + HOUR - Date.now() + 1000);
      return;
    }
    const notices = this.takePending();
    this.send(digestMail(notices, this.takeOverflow(), this.options));
  }

  private takePending(): Notice[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }

  private takeOverflow(): number {
    const n = this.overflow;
    this.overflow = 0;
    return n;
  }

  /** Mails still allowed in the current hour. */
  private free(now = Date.now()): number {
    while (this.sentAt.length && this.sentAt[0]! <= now - HOUR) this.sentAt.shift();
    return this.options.maxPerHour - this.sentAt.length;
  }

  private send(mail: Mail): void {
    const stamp = Date.now();
    this.sentAt.push(stamp);
    this.delivery = this.delivery.then(async () => {
      try {
        await this.transport.sendMail({ from: this.options.from, to: this.options.to, subject: mail.subject, text: mail.text });
        this.stats.sent++;
      } catch (e) {
        this.stats.failed++;
        // Not delivered: give the hour's slot back and report these notices in the next digest.
        const i = this.sentAt.indexOf(stamp);
        if (i >= 0) this.sentAt.splice(i, 1);
        const reported = mail.notices.filter((n) => n.kind !== 'stop');
        this.log.error(`email: cannot send "${mail.subject}" through ${this.options.smtp.host}:${this.options.smtp.port}: ${(e as Error).message}${!this.closed && reported.length ? '; retrying in the next digest' : ''}`);
        if (!this.closed) for (const n of reported) this.fold(n);
      }
    });
  }

  async close(): Promise<void> {
    if (!this.closed && this.pending.length && this.free() > 0) this.send(digestMail(this.takePending(), this.takeOverflow(), this.options));
    this.closed = true;
    this.clearTimer();
    if (this.pending.length) this.log.warn(`email: ${this.pending.length} notice(s) not mailed at shutdown: the hourly cap (notify.email.max_per_hour) is used up`);
    await this.delivery;
    this.transport.close();
  }
}

function createSmtpTransport(o: EmailOptions): Transport {
  const s = o.smtp;
  return nodemailer.createTransport({
    host: s.host,
    port: s.port,
    secure: s.tls === 'implicit',
    requireTLS: s.tls === 'starttls',
    ignoreTLS: s.tls === 'none',
    ...(s.user !== null ? { auth: { user: s.user, pass: s.password ?? '' } } : {}),
    tls: { rejectUnauthorized: s.verify, servername: s.host, ...(s.caFile ? { ca: readFileSync(s.caFile, 'utf8') } : {}) },
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
  });
}

const iso = (ms: number): string => new Date(ms).toISOString();

function subject(o: EmailOptions, node: string, what: string): string {
  return `${o.subjectPrefix} ${node}: ${what}`.replace(/[\r\n]+/g, ' ');
}

function singleMail(n: Notice, o: EmailOptions): Mail {
  switch (n.kind) {
    case 'start':
      return { subject: subject(o, n.node, 'started'), text: `Portcullis started on ${n.node} at ${iso(n.time)}.\n\nJails: ${n.jails.join(', ') || 'none'}\n`, notices: [n] };
    case 'stop':
      return { subject: subject(o, n.node, 'stopped'), text: `Portcullis stopped on ${n.node} at ${iso(n.time)}.\n`, notices: [n] };
    case 'ban':
    case 'unban':
    case 'siege': {
      const d = n.decision;
      const what = n.kind === 'ban' ? `banned ${d.target} in ${d.jail}` : n.kind === 'unban' ? `unbanned ${d.target} in ${d.jail}` : `${d.action === 'siege-on' ? 'siege mode entered' : 'siege mode left'} in ${d.jail}`;
      const lines = [
        `Portcullis on ${n.node} ${what}.`,
        '',
        `Jail:      ${d.jail}`,
        `Address:   ${d.target}`,
        `Reason:    ${escapeLogText(d.reason)}`,
        `Time:      ${iso(d.time)}`,
      ];
      if (n.kind === 'ban') lines.push(`Duration:  ${banDuration(n)}${d.until === null ? '' : ` (until ${iso(d.until)})`}`);
      lines.push(`Origin:    ${d.origin}`);
      const evidence = evidenceLines(d.evidence ?? [], o.maxLines);
      if (evidence.length) lines.push('', 'Matching log lines:', ...evidence);
      return { subject: subject(o, n.node, what), text: `${lines.join('\n')}\n`, notices: [n] };
    }
  }
}

/** The last `max` lines (the ones that tripped the ban), escaped and cut. */
function evidenceLines(lines: readonly string[], max: number): string[] {
  if (max <= 0 || lines.length === 0) return [];
  const shown = lines.slice(-max).map((l) => `  ${escapeLogText(l)}`);
  if (lines.length > max) shown.unshift(`  (${lines.length - max} earlier line(s) not shown)`);
  return shown;
}

function digestMail(notices: readonly Notice[], overflow: number, o: EmailOptions): Mail {
  const bans = notices.filter((n): n is DecisionNotice => n.kind === 'ban');
  const byJail = new Map<string, number>();
  for (const b of bans) byJail.set(b.decision.jail, (byJail.get(b.decision.jail) ?? 0) + 1);
  const node = notices[0]?.node ?? 'unknown';
  const total = notices.length + overflow;
  const lines = [
    `Portcullis on ${node}: ${total} notice(s) collected for this digest (mails are capped at ${o.maxPerHour} per hour).`,
    '',
  ];
  if (bans.length) lines.push(`Bans by jail: ${[...byJail].map(([j, n]) => `${j} ${n}`).join(', ')}`, '');
  for (const n of notices) lines.push(`${iso(n.time)}  ${escapeLogText(summarize(n), 1000)}`);
  if (overflow) lines.push(`… and ${overflow} more not listed (a digest lists at most ${DIGEST_MAX})`);
  const quoted = bans.filter((b) => (b.decision.evidence ?? []).length > 0).slice(0, DIGEST_EVIDENCE);
  if (quoted.length && o.maxLines > 0) {
    lines.push('', `Matching log lines of the first ${quoted.length} ban(s):`);
    for (const b of quoted) lines.push('', `${b.decision.target} (${b.decision.jail}):`, ...evidenceLines(b.decision.evidence ?? [], o.maxLines));
  }
  const what = bans.length === notices.length ? `${total} ban(s) (digest)` : `${total} notice(s) (digest)`;
  return { subject: subject(o, node, what), text: `${lines.join('\n')}\n`, notices: [...notices] };
}
