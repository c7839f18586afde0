import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nginxHttpAuth, nginxLimitReq } from '../../src/filters/nginx.js';
import { assertFixture, hostileBodies, lineOf } from './fixture.js';

test('nginx-http-auth fixture: basic-auth failures, TLS garbage, near-misses', () => {
  assertFixture('nginx-error.log', nginxHttpAuth, {
    1: ['invalid-user', '192.0.43.10'],
    2: ['auth-failure', '10.0.2.2'],
    3: ['probe', '2001:db8::7'],
    7: ['probe', '142.93.180.14'],
  });
});

test('nginx-limit-req fixture: rejections only, not delays or dry runs', () => {
  assertFixture('nginx-error.log', nginxLimitReq, { 4: ['flood', '198.51.100.3'] });
});

const HEAD = '[error] 1#0: *1 ';
const address = (message: string) => (nginxHttpAuth.match(lineOf(message)) ?? nginxLimitReq.match(lineOf(message)))?.address ?? null;

test('nginx: user names, requests and headers cannot supply the address', () => {
  const cases: Array<[string, string | null]> = [
    // A basic-auth user name ends at the first colon: a forged `, client:` cannot be one.
    [`${HEAD}user "x, client: 8.8.8.8," was not found in "/etc/htpasswd", client: 192.0.2.1, server: s, request: "GET / HTTP/1.1"`, null],
    [`${HEAD}user "x, client 8.8.8.8," was not found in "/etc/htpasswd", client: 192.0.2.1, server: s, request: "GET / HTTP/1.1"`, '192.0.2.1'],
    [`${HEAD}user "a" was not found in "b" was not found in "/etc/htpasswd", client: 192.0.2.1, server: s, request: "GET / HTTP/1.1"`, '192.0.2.1'],
    [`${HEAD}user "bob": password mismatch, client: 192.0.2.1, server: s, request: "GET /" was not found in "/f", client: 8.8.8.8, server: x HTTP/1.1", host: "h"`, '192.0.2.1'],
    [`${HEAD}user "bob": password mismatch, client: 192.0.2.1, server: s, request: "GET / HTTP/1.1", host: "h", referrer: ": password mismatch, client: 8.8.8.8, server: "`, '192.0.2.1'],
    [`${HEAD}open() "/x/user "a": password mismatch, client: 8.8.8.8, server: " failed, client: 192.0.2.1, server: s`, null],
    [`${HEAD}limiting requests, excess: 1.0 by zone "z", client: 192.0.2.1, server: s, request: "GET /, client: 8.8.8.8, server: "`, '192.0.2.1'],
  ];
  for (const [message, expected] of cases) assert.equal(address(message), expected, message);
});

test('nginx: hostile lines up to what nginx can write give the real peer or nothing; longer ones nothing', () => {
  // An nginx error-log line is at most 2,048 bytes (4,096 in debug builds): a 16 KiB one is somebody else's.
  for (const full of hostileBodies([', client: 1.2.3.4, server: ', 'user "', '"'])) {
    assert.equal(address(`${HEAD}user "bob": password mismatch, client: 192.0.2.1, server: ${full}`), null);
    const body = full.slice(0, 3900);
    const cases: Array<[string, string | null]> = [
      [`${HEAD}user "${body}`, null],
      [`${HEAD}user "x" was not found in "${body}`, null],
      [`${HEAD}user "bob": password mismatch, client: 192.0.2.1, server: ${body}`, '192.0.2.1'],
      [`${HEAD}limiting requests, excess: ${body}`, null],
      [`${HEAD}${body}`, null],
    ];
    for (const [message, expected] of cases) assert.equal(address(message), expected, message.slice(0, 80));
  }
});
