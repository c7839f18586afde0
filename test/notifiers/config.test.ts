import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromFiles } from '../../src/config/load.js';

/** `http:` and `notify:` in the config: defaults, and mistakes reported at file:line:column. */

const load = (text: string) => configFromFiles([{ file: '/etc/portcullis/portcullis.yaml', text }]);

test('defaults: HTTP on 127.0.0.1:9470 without TLS, no alerts', () => {
  const c = load('');
  assert.deepEqual(c.http, { enabled: true, listen: '127.0.0.1:9470', tokenFile: null, token: null, certFile: null, keyFile: null });
  assert.deepEqual(c.notify, { email: null, webhooks: [] });
});

test('e-mail and webhooks with their defaults filled in', () => {
  const c = load([
    'http: { listen: "[::1]:9471", token_file: /etc/portcullis/token }',
    'notify:',
    '  email:',
    '    to: admin@example.org',
    '    smtp: { host: mail.example.org, user: alerts, password: pw }',
    '    bans: digest',
    '    digest_every: 15m',
    '  webhooks:',
    '    - url: https://chat.example.org/hooks/abc',
    `      template: '{"text": "{summary}"}'`,
    '      on: [ban, unban]',
  ].join('\n'));
  assert.equal(c.http.listen, '[::1]:9471');
  const e = c.notify.email!;
  assert.deepEqual(e.to, ['admin@example.org']);
  assert.deepEqual(e.smtp, { host: 'mail.example.org', port: 587, tls: 'starttls', user: 'alerts', password: 'pw', caFile: null, verify: true });
  assert.equal(e.bans, 'digest');
  assert.equal(e.digestEveryMs, 900_000);
  assert.equal(e.maxPerHour, 20);
  assert.deepEqual(e.on, ['start', 'stop', 'ban', 'siege']);
  const w = c.notify.webhooks[0]!;
  assert.deepEqual(w.on, ['ban', 'unban']);
  assert.equal(w.retries, 5);
  assert.equal(w.backoffMs, 1000);
});

test('mistakes name the file, line and column, and what is allowed', () => {
  const bad = (text: string, re: RegExp): void => assert.throws(() => load(text), (e: Error) => (assert.match(e.message, re), true));
  bad('http: { listen: "localhost" }', /portcullis\.yaml:1:17: http\.listen: "localhost" is not valid; expected HOST:PORT/);
  bad('notify:\n  email:\n    to: a@example.org\n    smtp: { host: h, pasword: x }', /:4:22: unknown key "pasword" in notify\.email\.smtp \(did you mean "password"\?\)/);
  bad(`notify:\n  webhooks:\n    - url: https://x.example/h\n      template: '{"text": {summary}}'`, /:4:7: notify\.webhooks\[0\]\.template: is not JSON once its placeholders are filled in/);
  bad('notify:\n  webhooks:\n    - url: ftp://x.example/h', /:3:7: notify\.webhooks\[0\]\.url: "ftp:\/\/x\.example\/h" is not an http:\/\/ or https:\/\/ URL/);
  bad('notify:\n  email:\n    to: a@example.org\n    smtp: { host: h }\n    bans: sometimes', /:5:11: notify\.email\.bans: "sometimes" is not allowed; use one of each, digest/);
  bad('notify:\n  email:\n    to: a@example.org\n    smtp: { host: h, password_file: /nonexistent/pw, user: u }', /notify\.email\.smtp\.password_file: cannot read \/nonexistent\/pw/);
});
