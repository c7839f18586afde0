import type { Logger } from '../core/log.js';
import { banDuration, escapeLogText, summarize, wants, type Notice, type Notifier, type WebhookOptions } from './notifier.js';

/**
 * JSON POSTs of the same notices the mail gets. Delivery is in order, one at a
 * time; a failing receiver (network error, 5xx, 408, 429) is retried with
 * exponential backoff (honouring Retry-After), other 4xx answers are final.
 * A receiver that stays down cannot make the daemon grow: the queue is bounded
 * and the oldest notices are dropped first, with a warning.
 *
 * With a `template`, the body is that JSON text with placeholders filled in —
 * e.g. `{"text": "{summary}"}` for Slack or Mattermost. Values are escaped for
 * a JSON string, and for chat markup: `&`, `<`, `>` as entities and `@` kept
 * from forming mentions, because reasons carry attacker-chosen user names.
 */

const MAX_BACKOFF_MS = 300_000;

export const TEMPLATE_PLACEHOLDERS = ['event', 'node', 'time', 'jail', 'target', 'until', 'duration', 'reason', 'origin', 'summary', 'evidence'] as const;
type Placeholder = (typeof TEMPLATE_PLACEHOLDERS)[number];

export class WebhookNotifier implements Notifier {
  readonly name: string;
  private readonly queue: Notice[] = [];
  private running = false;
  private closed = false;
  private dropped = 0;
  private wake: (() => void) | null = null;
  private idle: Promise<void> = Promise.resolve();
  readonly stats = { delivered: 0, failed: 0, retries: 0, dropped: 0 };

  constructor(private readonly options: WebhookOptions, private readonly log: Logger) {
    this.name = `webhook ${redactUrl(options.url)}`;
  }

  notify(notice: Notice): void {
    if (this.closed || !wants(this.options.on, notice)) return;
    if (this.queue.length >= this.options.maxQueue) {
      this.queue.shift();
      this.stats.dropped++;
      if (this.dropped++ === 0) this.log.warn(`${this.name}: receiver too slow or down, dropping the oldest queued notices (queue limit ${this.options.maxQueue})`);
    }
    this.queue.push(notice);
    if (!this.running) {
      this.running = true;
      this.idle = this.run();
    }
  }

  private async run(): Promise<void> {
    while (this.queue.length) {
      const notice = this.queue.shift()!;
      await this.deliver(notice);
    }
    if (this.dropped) this.log.warn(`${this.name}: ${this.dropped} notice(s) were dropped while the receiver lagged`);
    this.dropped = 0;
    this.running = false;
  }

  private async deliver(notice: Notice): Promise<void> {
    const body = this.options.template === null ? JSON.stringify(noticeJson(notice)) : renderTemplate(this.options.template, notice);
    let delay = this.options.backoffMs;
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.post(body);
      if (outcome.ok) {
        this.stats.delivered++;
        if (attempt > 0) this.log.info(`${this.name}: delivered after ${attempt} retr${attempt === 1 ? 'y' : 'ies'}`);
        return;
      }
      if (!outcome.retry || attempt >= this.options.retries || this.closed) {
        this.stats.failed++;
        this.log.error(`${this.name}: giving up on "${summarize(notice).slice(0, 120)}": ${outcome.error}${outcome.retry ? ` after ${attempt + 1} attempt(s)` : ''}`);
        return;
      }
      this.stats.retries++;
      const wait = Math.min(outcome.retryAfterMs ?? delay, MAX_BACKOFF_MS);
      if (attempt === 0) this.log.warn(`${this.name}: ${outcome.error}; retrying with backoff (up to ${this.options.retries} times)`);
      await this.sleep(wait);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }

  private async post(body: string): Promise<{ ok: true } | { ok: false; retry: boolean; error: string; retryAfterMs?: number }> {
    try {
      const res = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'portcullis', ...this.options.headers },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return { ok: true };
      const retry = res.status >= 500 || res.status === 408 || res.status === 429;
      const after = Number(res.headers.get('retry-after'));
      return { ok: false, retry, error: `receiver answered ${res.status} ${res.statusText}`, ...(Number.isFinite(after) && after > 0 ? { retryAfterMs: after * 1000 } : {}) };
    } catch (e) {
      const err = e as Error & { cause?: Error };
      return { ok: false, retry: true, error: err.name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : (err.cause?.message ?? err.message) };
    }
  }

  /** Waits for a retry; close() cuts the wait short so shutdown is not held up by a dead receiver. */
  private sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = null; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
    });
  }

  /** Sends what is queued (one attempt each for notices still failing), then stops. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.idle;
  }
}

function redactUrl(url: string): string {
  // Chat webhook URLs carry their secret in the path: show only where they go.
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'webhook';
  }
}

/** The notice as the default JSON body. */
export function noticeJson(n: Notice): Record<string, unknown> {
  const base = { event: n.kind, node: n.node, time: new Date(n.time).toISOString(), summary: summarize(n) };
  if (n.kind === 'start') return { ...base, jails: n.jails };
  if (n.kind === 'stop') return base;
  const d = n.decision;
  return {
    ...base,
    event: n.kind === 'siege' ? d.action : n.kind,
    jail: d.jail, target: d.target, until: d.until === null ? null : new Date(d.until).toISOString(),
    ...(n.kind === 'ban' ? { duration: banDuration(n) } : {}),
    reason: d.reason, origin: d.origin, evidence: (d.evidence ?? []).slice(-10).map((l) => escapeLogText(l)),
  };
}

function placeholderValues(n: Notice): Record<Placeholder, string> {
  const j = noticeJson(n);
  const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));
  return {
    event: str(j.event), node: str(j.node), time: str(j.time), jail: str(j.jail), target: str(j.target), until: str(j.until ?? (n.kind === 'ban' ? 'permanent' : '')),
    duration: str(j.duration), reason: str(j.reason), origin: str(j.origin), summary: str(j.summary),
    evidence: ((j.evidence as string[] | undefined) ?? []).join('\n'),
  };
}

/** Fills `{placeholder}`s of a JSON template; unknown names stay as written. */
export function renderTemplate(template: string, n: Notice): string {
  const values = placeholderValues(n);
  return template.replace(/\{([a-z]+)\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? jsonStringBody(chatSafe(values[name as Placeholder])) : whole);
}

/** Keeps chat services from reading markup or mentions (`<!channel>`, `@all`) into attacker-chosen text. */
function chatSafe(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/@(?=\w)/g, '@\u2060');
}

function jsonStringBody(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}

/** A sample notice for checking a template at load time. */
export function sampleNotice(): Notice {
  return {
    kind: 'ban', time: 0, node: 'host',
    decision: { action: 'ban', target: '192.0.2.1', jail: 'sshd', time: 0, until: 3_600_000, reason: 'sample "reason"', origin: 'host', evidence: ['line'] },
  };
}
