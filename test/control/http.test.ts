import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { configFromFiles } from '../../src/config/load.js';
import { HttpServer } from '../../src/control/http.js';
import type { Logger } from '../../src/core/log.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { waitFor } from '../helpers/daemon.js';
import { makeSetup, sshFailure, TOKEN, vpnSaturation, type Setup } from './fixture.js';

/**
 * The JSON API against an in-process daemon (dry-run enforcer): reads,
 * filters and pages, the bearer token on every mutation with audit lines,
 * server-sent events, TLS, and a port already in use.
 */

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const keep = (m: string): void => { lines.push(m); };
  return { log: { debug: () => {}, info: keep, warn: keep, error: keep }, lines };
}

async function boot(s: Setup, httpYaml?: string): Promise<{ daemon: Daemon; http: HttpServer; url: string; lines: string[] }> {
  let text = readFileSync(s.config, 'utf8');
  if (httpYaml) text = text.replace(/^http: .*$/m, httpYaml);
  const config = configFromFiles([{ file: s.config, text }]);
  const { log, lines } = capture();
  const daemon = new Daemon(config, { log, dryRun: true });
  const http = new HttpServer(daemon, config, log);
  assert.equal(await http.listen(), true, lines.join('\n'));
  await daemon.start();
  return { daemon, http, url: http.url!, lines };
}

describe('HTTP API', () => {
  const s = makeSetup('pc-http-');
  let daemon: Daemon;
  let http: HttpServer;
  let url: string;
  let lines: string[];
  const auth = { authorization: `Bearer ${TOKEN}` };

  before(async () => ({ daemon, http, url, lines } = await boot(s)));
  after(async () => {
    await http.close();
    await daemon.stop();
    rmSync(s.dir, { recursive: true, force: true });
  });

  const get = async (path: string): Promise<{ status: number; body: any; headers: Headers }> => {
    const r = await fetch(url + path);
    return { status: r.status, body: await r.json(), headers: r.headers };
  };
  const send = async (method: string, path: string, body?: unknown, headers: Record<string, string> = auth): Promise<{ status: number; body: any }> => {
    const r = await fetch(url + path, { method, headers: { 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    return { status: r.status, body: await r.json() };
  };

  test('mutations without the right bearer token are refused with 401 and audited', async () => {
    const none = await send('POST', '/api/bans', { target: '198.51.100.1' }, {});
    assert.equal(none.status, 401);
    assert.match(none.body.error, /no bearer token/);
    const wrong = await send('DELETE', '/api/bans/198.51.100.1', undefined, { authorization: 'Bearer not-the-token-at-all' });
    assert.equal(wrong.status, 401);
    assert.match(lines.join('\n'), /http audit: refused POST \/api\/bans from 127\.0\.0\.1: no bearer token/);
    assert.match(lines.join('\n'), /http audit: refused DELETE \/api\/bans\/198\.51\.100\.1 from 127\.0\.0\.1: wrong token/);
    assert.deepEqual((await get('/api/bans')).body, []);
  });

  test('ban and unban with the token; bad requests say what is wrong', async () => {
    const made = await send('POST', '/api/bans', { target: '198.51.100.1', jail: 'sshd', for: '2h' });
    assert.equal(made.status, 201);
    assert.equal(made.body.target, '198.51.100.1');
    assert.equal(Date.parse(made.body.until) - Date.parse(made.body.time), 7_200_000);
    assert.equal(made.body.origin, 'http 127.0.0.1');
    assert.match(lines.join('\n'), /http audit: POST \/api\/bans from 127\.0\.0\.1: banned 198\.51\.100\.1 in sshd/);
    assert.equal((await send('POST', '/api/bans', { target: '2001:DB8::0:1', for: 'permanent' })).body.until, null);
    assert.equal((await send('POST', '/api/bans', { target: '203.0.113.0/24', jail: 'openvpn' })).status, 201);

    assert.equal((await send('POST', '/api/bans', { target: 'example.org' })).status, 400);
    assert.match((await send('POST', '/api/bans', { target: '198.51.100.2', jail: 'nope' })).body.error, /no enabled jail named "nope"/);
    assert.match((await send('POST', '/api/bans', { target: '198.51.100.2', for: 'soon' })).body.error, /"for": "soon" is not a duration/);
    assert.equal((await send('POST', '/api/bans', '{not json')).status, 400);
    assert.equal((await send('PUT', '/api/bans', {})).status, 405);

    const lifted = await send('DELETE', `/api/bans/${encodeURIComponent('203.0.113.0/24')}`);
    assert.equal(lifted.status, 200);
    assert.deepEqual(lifted.body.map((d: { action: string; target: string }) => `${d.action} ${d.target}`), ['unban 203.0.113.0/24']);
    assert.equal((await send('DELETE', '/api/bans/203.0.113.0%2F24')).status, 404);
  });

  test('bans: a JSON list with target, jail, time, until, reason, origin; filtered and paged', async () => {
    for (let i = 10; i < 40; i++) await send('POST', '/api/bans', { target: `198.51.100.${i}`, jail: i % 2 ? 'openvpn' : 'sshd' });
    const all = await get('/api/bans');
    assert.equal(all.headers.get('x-total-count'), '32');
    for (const key of ['target', 'jail', 'time', 'until', 'reason', 'origin']) assert.ok(key in all.body[0], key);
    assert.equal(all.body[0].target, '198.51.100.39', 'newest first');
    const page = await get('/api/bans?offset=10&limit=5');
    assert.deepEqual(page.body.map((b: { target: string }) => b.target), ['198.51.100.29', '198.51.100.28', '198.51.100.27', '198.51.100.26', '198.51.100.25']);
    assert.equal((await get('/api/bans?jail=openvpn')).headers.get('x-total-count'), '15');
    assert.equal((await get('/api/bans?prefix=198.51.100.3')).headers.get('x-total-count'), '10');
    assert.equal((await get(`/api/bans?prefix=${encodeURIComponent('198.51.100.32/30')}`)).headers.get('x-total-count'), '4');
    const inNet = await get(`/api/bans?prefix=${encodeURIComponent('198.51.100.32/30')}&jail=sshd&offset=1&limit=5`);
    assert.equal(inNet.headers.get('x-total-count'), '2');
    assert.deepEqual(inNet.body.map((b: { target: string }) => b.target), ['198.51.100.32'], 'a network\'s page: newest first, the other filters too');
    const sshd = (await get('/api/bans?jail=sshd')).headers.get('x-total-count');
    assert.equal((await get('/api/bans?q=MANUAL&jail=sshd')).headers.get('x-total-count'), sshd, 'q is matched whatever the case');
    assert.equal((await get('/api/bans?q=nothing-like-it')).headers.get('x-total-count'), '0');
    assert.equal((await get('/api/bans?reason=manual%20ban')).headers.get('x-total-count'), '32');
    assert.equal((await get('/api/bans?q=2001:db8')).body[0].target, '2001:db8::1');
    assert.equal((await get('/api/bans?limit=0')).status, 400);
  });

  test('status, jails, history, explain, recent events, series and top offenders', async () => {
    for (let n = 0; n < 3; n++) sshFailure(s, '192.0.2.50');
    sshFailure(s, '192.0.2.51');
    vpnSaturation(s);
    await waitFor(async () => (await get('/api/bans?q=192.0.2.50')).body.length === 1, 10_000, () => lines.join('\n'));

    const status = (await get('/api/status')).body;
    assert.deepEqual(status.jails.map((j: { name: string }) => j.name), ['sshd', 'openvpn']);
    assert.equal((await get('/api/jails')).body[0].siege, false);

    const history = (await get('/api/history?target=203.0.113.0/24')).body;
    assert.equal(history.length, 1);
    assert.match(history[0].liftReason, /manual unban by http 127\.0\.0\.1/);

    const explained = (await get('/api/explain/192.0.2.50')).body;
    assert.equal(explained.bans[0].jail, 'sshd');
    assert.equal(explained.bans[0].evidence.length, 3);
    assert.equal((await get('/api/explain/not-an-address')).status, 400);

    const recent = (await get('/api/recent?limit=5')).body;
    assert.equal(recent[0].kind, 'health');
    assert.deepEqual(recent[0].jails, ['openvpn']);
    assert.equal(recent[1].address, '192.0.2.51');
    assert.deepEqual(recent[1].jails, ['sshd']);
    assert.equal((await get('/api/recent?kind=health')).body.length, 1);

    const series = (await get('/api/series?range=1h')).body;
    assert.equal(series.times.length, 60);
    assert.equal(series.failures.sshd.reduce((a: number, b: number) => a + b, 0), 4);
    assert.ok(series.bans.reduce((a: number, b: number) => a + b, 0) >= 34);
    assert.equal((await get('/api/series?range=1d')).body.times.length, 144);
    assert.equal((await get('/api/series?range=1y')).status, 400);

    const top = (await get('/api/top')).body;
    assert.deepEqual(top.addresses[0], { key: '192.0.2.50', failures: 3, bans: 1, jails: ['sshd'], last: top.addresses[0].last });
    assert.equal(top.networks.find((n: { key: string }) => n.key === '192.0.2.0/24').addresses, 2);
    assert.equal((await get('/api/nothing')).status, 404);
  });

  test('server-sent events carry each decision as it is made', async () => {
    const res = await fetch(`${url}/api/events`);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (re: RegExp): Promise<void> => {
      while (!re.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += value;
      }
    };
    await until(/event: hello/);
    await send('POST', '/api/bans', { target: '198.51.100.200' });
    await until(/event: decision\ndata: \{"action":"ban","target":"198\.51\.100\.200"/);
    sshFailure(s, '192.0.2.99');
    await until(/event: activity\ndata: .*"192\.0\.2\.99"/);
    await reader.cancel();
  });

  test('the dashboard and its chart library are served by the daemon, with a strict content policy', async () => {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'self'/);
    assert.match(await page.text(), /<script src="\/vendor\/uPlot\.iife\.min\.js"/);
    const lib = await fetch(`${url}/vendor/uPlot.iife.min.js`);
    assert.equal(lib.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const etag = lib.headers.get('etag')!;
    assert.equal((await fetch(`${url}/vendor/uPlot.iife.min.js`, { headers: { 'if-none-match': etag } })).status, 304);
  });
});

describe('HTTP listener options', () => {
  test('without a configured token every mutation is refused, reads still work', async () => {
    const s = makeSetup('pc-http-notoken-');
    const { daemon, http, url, lines } = await boot(s, 'http: { listen: "127.0.0.1:0" }');
    try {
      assert.match(lines.join('\n'), /no token configured .* the API is read-only/);
      const r = await fetch(`${url}/api/bans`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"target":"198.51.100.1"}' });
      assert.equal(r.status, 401);
      assert.match(((await r.json()) as { error: string }).error, /no token is configured/);
      assert.equal((await fetch(`${url}/api/status`)).status, 200);
    } finally {
      await http.close();
      await daemon.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test('a changed token file takes effect without a restart', async () => {
    const s = makeSetup('pc-http-rotate-');
    const { daemon, http, url } = await boot(s);
    try {
      const ban = (token: string): Promise<number> => fetch(`${url}/api/bans`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{"target":"198.51.100.1"}' }).then((r) => r.status);
      assert.equal(await ban(TOKEN), 201);
      writeFileSync(s.tokenFile, 'a-brand-new-token-0123456789');
      utimesSync(s.tokenFile, new Date(), new Date(Date.now() + 5000));
      assert.equal(await ban(TOKEN), 401);
      assert.equal(await ban('a-brand-new-token-0123456789'), 201);
    } finally {
      await http.close();
      await daemon.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test('HTTPS with the configured certificate', async () => {
    const s = makeSetup('pc-https-');
    const cert = new URL('../fixtures/tls/localhost.crt', import.meta.url).pathname;
    const key = new URL('../fixtures/tls/localhost.key', import.meta.url).pathname;
    const { daemon, http, url } = await boot(s, `http: { listen: "127.0.0.1:0", token_file: ${s.tokenFile}, cert_file: ${cert}, key_file: ${key} }`);
    try {
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const body = await new Promise<string>((resolve, reject) => {
        httpsRequest(`${url}/api/status`, { ca: readFileSync(cert) }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text));
        }).on('error', reject).end();
      });
      assert.equal(JSON.parse(body).jails.length, 2);
    } finally {
      await http.close();
      await daemon.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test('without HTTP nothing follows the daemon\'s events (no dashboard bookkeeping per line); with it, until closed', async () => {
    const s = makeSetup('pc-http-off-');
    const { log } = capture();
    const start = (httpYaml: string): { daemon: Daemon; http: HttpServer; listeners: () => number } => {
      const config = configFromFiles([{ file: s.config, text: readFileSync(s.config, 'utf8').replace(/^http: .*$/m, httpYaml) }]);
      const daemon = new Daemon(config, { log, dryRun: true });
      const listeners = (): number => daemon.events.listenerCount('event') + daemon.events.listenerCount('decision');
      return { daemon, http: new HttpServer(daemon, config, log), listeners };
    };
    const off = start('http: { enabled: false }');
    const on = start('http: { listen: "127.0.0.1:0" }');
    try {
      const none = off.listeners();
      assert.equal(await off.http.listen(), false);
      assert.equal(off.listeners(), none);
      const before = on.listeners();
      assert.equal(await on.http.listen(), true);
      assert.ok(on.listeners() > before, 'a listening server follows events and decisions');
      await on.http.close();
      assert.equal(on.listeners(), before);
    } finally {
      await off.http.close();
      await on.http.close();
      await off.daemon.stop();
      await on.daemon.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  test('a port already in use is logged and the daemon runs on without HTTP', async () => {
    const a = makeSetup('pc-http-a-');
    const b = makeSetup('pc-http-b-');
    const first = await boot(a);
    const text = readFileSync(b.config, 'utf8').replace(/^http: .*$/m, `http: { listen: "${first.url!.slice('http://'.length)}" }`);
    const config = configFromFiles([{ file: b.config, text }]);
    const { log, lines } = capture();
    const daemon = new Daemon(config, { log, dryRun: true });
    const http = new HttpServer(daemon, config, log);
    try {
      assert.equal(await http.listen(), false);
      assert.match(lines.join('\n'), /http: cannot listen on 127\.0\.0\.1:\d+: the port is in use .* running without dashboard, API and \/metrics/);
      assert.equal(daemon.events.listenerCount('event'), 0, 'no activity kept without a server');
      await daemon.start();
    } finally {
      await http.close();
      await daemon.stop();
      await first.http.close();
      await first.daemon.stop();
      for (const s of [a, b]) rmSync(s.dir, { recursive: true, force: true });
    }
  });
});
