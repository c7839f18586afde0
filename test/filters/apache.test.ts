import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apacheAuth } from '../../src/filters/apache.js';
import { assertFixture, hostileBodies, lineOf } from './fixture.js';

test('apache-auth fixture: 2.2 and 2.4 error logs, syslog, near-misses', () => {
  assertFixture('apache-error.log', apacheAuth, {
    1: ['invalid-user', '194.228.20.113'],
    2: ['invalid-user', '2001:db8:220:1:248:1893:25c8:1946'],
    3: ['auth-failure', '127.0.0.1'],
    4: ['invalid-user', '198.51.100.9'],
    5: ['probe', '198.51.100.10'],
    6: ['auth-failure', '2001:db8::5'],
    7: ['auth-failure', '198.51.100.11'],
    11: ['probe', '192.0.2.1'],
    12: ['auth-failure', '192.0.2.3'],
  });
});

const address = (message: string) => apacheAuth.match(lineOf(message))?.address ?? null;

test('apache: paths and user names cannot supply the address', () => {
  const cases: Array<[string, string | null]> = [
    ['[error] [client 192.0.2.1] File does not exist: /x/[client 8.8.8.8] user root not found', null],
    ['[error] [client 192.0.2.1] user [client 8.8.8.8] root not found: /', '192.0.2.1'],
    ['[auth_basic:error] [pid 1:tid 2] [client 192.0.2.1:5] AH01618: user x] [client 8.8.8.8:1] AH01618: user y not found: /', '192.0.2.1'],
    ['[auth_basic:error] [pid 1] [client 8.8.8.8 192.0.2.1:5] AH01618: user y not found: /', null],
    ['[error] [client 999.1.1.1] user x not found: /', null],
  ];
  for (const [message, expected] of cases) assert.equal(address(message), expected, message);
});

test('apache: hostile lines up to what httpd can write give the real peer or nothing; longer ones are skipped', () => {
  const cases = (body: string): Array<[string, string | null]> => [
    [`[error] [client 192.0.2.1] user ${body}`, null],
    [`[error] [client 192.0.2.1] user ${body} not found: /`, '192.0.2.1'],
    [`[error] [client ${body}] user x not found: /`, null],
    [`[auth_basic:error] [pid 1:tid 2] [client ${body}`, null],
    [`[error] ${body}`, null],
  ];
  const units = ['[client 1.2.3.4] ', ']', 'user '];
  // httpd formats an error log line into 8,192 bytes: a 16 KiB line is somebody else's.
  for (const body of hostileBodies(units, 8192 - 64)) {
    for (const [message, expected] of cases(body)) assert.equal(address(message), expected, message.slice(0, 80));
  }
  for (const body of hostileBodies(units)) for (const [message] of cases(body)) assert.equal(address(message), null, message.slice(0, 80));
});
