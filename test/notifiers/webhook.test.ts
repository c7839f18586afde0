import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../src/core/log.js';
import type { DecisionNotice, WebhookOptions } from '../../src/notifiers/notifier.js';
import { WebhookNotifier } from '../../src/notifiers/webhook.js';
import { waitFor } from '../helpers/daemon.js';

/** Webhooks against local HTTP receivers: JSON bodies, chat templates, a receiver that fails and recovers. */

interface Received {
  headers: IncomingMessage['headers'];
  body: unknown;
}

const servers: Server[] = [];
after(async () => { for (const s of servers) await new Promise((r) => s.close(r)); });

/** A receiver answering each request with `answer(n)` (n counts from 0). */
async function receiver(answer: (n: number) => number = () => 200, port = 0): Promise<{ url: string; got: Received[]; attempts: () => number }> {
  const got: Received[] = [];
  let n = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = answer(n++);
      if (status < 300) got.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(status).end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook/SECRET`, got, attempts: () => n };
}

function options(url: string, overrides: Partial<WebhookOptions> = {}): WebhookOptions {
  return { url, on: ['start', 'stop', 'ban', 'siege'], template: null, headers: {}, retries: 5, backoffMs: 20, timeoutMs: 2000, maxQueue: 100, ...overrides };
}

function ban(target: string, reason = '3 failures within 10m'): DecisionNotice {
  const now = Date.parse('2030-01-02T03:04:05Z');
  return { kind: 'ban', time: now, node: 'web1', decision: { action: 'ban', target, jail: 'sshd', time: now, until: now + 3_600_000, reason, origin: 'web1', evidence: ['sshd[1]: Failed password for root from 198.51.100.9 port 22 ssh2'] } };
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const keep = (m: string): void => { lines.push(m); };
  return { log: { debug: keep, info: keep, warn: keep, error: keep }, lines };
}

test('the notice as JSON: start, ban (with duration and log lines) and stop, in order', async () => {
  const r = await receiver();
  const hook = new WebhookNotifier(options(r.url, { headers: { 'x-portcullis-key': 'k1' } }), capture().log);
  hook.notify({ kind: 'start', time: Date.parse('2030-01-02T03:00:00Z'), node: 'web1', jails: ['sshd'] });
  hook.notify(ban('198.51.100.9'));
  hook.notify({ kind: 'unban', time: 0, node: 'web1', decision: { ...ban('198.51.100.9').decision, action: 'unban' } });
  hook.notify({ kind: 'stop', time: Date.parse('2030-01-02T04:00:00Z'), node: 'web1' });
  await hook.close();
  assert.deepEqual(r.got.map((g) => (g.body as { event: string }).event), ['start', 'ban', 'stop'], 'unban is not subscribed by default');
  assert.deepEqual(r.got[1]!.body, {
    event: 'ban', node: 'web1', time: '2030-01-02T03:04:05.000Z', summary: '[sshd] banned 198.51.100.9 for 1h: 3 failures within 10m',
    jail: 'sshd', target: '198.51.100.9', until: '2030-01-02T04:04:05.000Z', duration: '1h', reason: '3 failures within 10m', origin: 'web1',
    evidence: ['sshd[1]: Failed password for root from 198.51.100.9 port 22 ssh2'],
  });
  assert.equal(r.got[0]!.headers['content-type'], 'application/json');
  assert.equal(r.got[0]!.headers['x-portcullis-key'], 'k1');
});

test('a chat template: placeholders filled in as JSON strings, attacker text kept from forming markup or mentions', async () => {
  const r = await receiver();
  const hook = new WebhookNotifier(options(r.url, { template: '{"text": ":lock: {summary}", "username": "portcullis@{node}"}' }), capture().log);
  hook.notify(ban('198.51.100.9', 'user "<!channel> @all \\"quoted\\"\n"'));
  await hook.close();
  const body = r.got[0]!.body as { text: string; username: string };
  assert.equal(body.username, 'portcullis@web1');
  assert.ok(body.text.startsWith(':lock: [sshd] banned 198.51.100.9 for 1h: user "'), body.text);
  assert.ok(body.text.includes('&lt;!channel&gt;'), body.text);
  assert.ok(body.text.includes('@\u2060all'), body.text);
  assert.ok(body.text.includes('\\"quoted\\"\n'), 'quotes and newlines survive as JSON string content');
});

test('a receiver that fails with 503 three times, then recovers: delivered in order, with backoff', async () => {
  const r = await receiver((n) => (n < 3 ? 503 : 200));
  const { log, lines } = capture();
  const hook = new WebhookNotifier(options(r.url, { retries: 5, backoffMs: 30 }), log);
  const started = Date.now();
  hook.notify(ban('198.51.100.1'));
  hook.notify(ban('198.51.100.2'));
  await waitFor(() => r.got.length === 2, 10_000, () => lines.join('\n'));
  assert.deepEqual(r.got.map((g) => (g.body as { target: string }).target), ['198.51.100.1', '198.51.100.2']);
  assert.equal(r.attempts(), 5);
  assert.equal(hook.stats.retries, 3);
  assert.ok(Date.now() - started >= 30 + 60 + 120, 'waits 30, 60 and 120 ms between attempts');
  assert.ok(lines.some((l) => /receiver answered 503 .*retrying with backoff/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => /delivered after 3 retries/.test(l)), lines.join('\n'));
  assert.ok(lines.every((l) => !l.includes('SECRET')), 'the URL path (a chat secret) is never logged');
  await hook.close();
});

test('a receiver that is down (connection refused) and comes up later gets the notice', async () => {
  const probe = await receiver();
  const port = Number(new URL(probe.url).port);
  await new Promise((r) => servers.pop()!.close(r));
  const { log, lines } = capture();
  const hook = new WebhookNotifier(options(probe.url, { retries: 20, backoffMs: 50 }), log);
  hook.notify(ban('198.51.100.3'));
  await waitFor(() => lines.some((l) => /retrying with backoff/.test(l)), 5000, () => lines.join('\n'));
  const r = await receiver(() => 200, port);
  await waitFor(() => r.got.length === 1, 10_000, () => lines.join('\n'));
  assert.equal((r.got[0]!.body as { target: string }).target, '198.51.100.3');
  await hook.close();
});

test('a 4xx answer is final; retries stop at the configured count; close() does not wait out the backoff', async () => {
  const bad = await receiver(() => 400);
  const { log, lines } = capture();
  const hook = new WebhookNotifier(options(bad.url, { retries: 5 }), log);
  hook.notify(ban('198.51.100.4'));
  await hook.close();
  assert.equal(bad.attempts(), 1);
  assert.equal(hook.stats.failed, 1);
  assert.ok(lines.some((l) => /giving up .*receiver answered 400/.test(l)));

  const down = await receiver(() => 500);
  const limited = new WebhookNotifier(options(down.url, { retries: 2, backoffMs: 10 }), log);
  limited.notify(ban('198.51.100.5'));
  await waitFor(() => limited.stats.failed === 1, 5000);
  assert.equal(down.attempts(), 3);

  const slow = new WebhookNotifier(options(down.url, { retries: 10, backoffMs: 60_000 }), log);
  slow.notify(ban('198.51.100.6'));
  await waitFor(() => slow.stats.retries === 1, 5000);
  const t = Date.now();
  await slow.close();
  assert.ok(Date.now() - t < 10_000, 'shutdown is not held for a minute-long backoff');
});
