import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SshdFilter } from '../../src/filters/sshd.js';
import { assertFixture, hostileBodies, lineOf, type Expected } from './fixture.js';

const EXPECTED: Expected = {
  1: ['auth-failure', '200.72.41.31'],
  3: ['invalid-user', '200.72.41.31'],
  5: ['invalid-user', '200.72.41.31'],
  7: ['invalid-user', '198.51.100.7'],
  8: ['auth-failure', '198.51.100.7'],
  9: ['invalid-user', '198.51.100.7'],
  10: ['invalid-user', '198.51.100.7'],
  11: ['auth-failure', '2001:db8::42'],
  12: ['auth-failure', '2001:db8::42'],
  13: ['auth-failure', '2001:db8::42'],
  14: ['auth-failure', '2001:db8::42'],
  15: ['auth-failure', '203.0.113.9'],
  16: ['auth-failure', '203.0.113.10'],
  17: ['invalid-user', '203.0.113.11'],
  19: ['invalid-user', '203.0.113.12'],
  20: ['probe', '203.0.113.20'],
  21: ['protocol-abuse', '203.0.113.21'],
  22: ['probe', '203.0.113.22'],
  // 23 names no peer: held until the same process names it (24).
  24: ['probe', '203.0.113.23'],
  26: ['probe', '203.0.113.24'],
  28: ['probe', '203.0.113.25'],
  30: ['probe', '203.0.113.26'],
  31: ['probe', '203.0.113.27'],
  32: ['auth-failure', '203.0.113.28'],
};

test('sshd fixture: failures, probes and near-misses', () => {
  assertFixture('sshd.log', new SshdFilter(), EXPECTED);
});

const match = (message: string, program = 'sshd') => new SshdFilter().match(lineOf(message, program));

test('sshd: a peer named in attacker text is never banned', () => {
  const cases: Array<[string, string | null]> = [
    ['Invalid user x from 8.8.8.8 port 22 from 192.0.2.1 port 4242', '192.0.2.1'],
    ['Invalid user x from 8.8.8.8 from 192.0.2.1', '192.0.2.1'],
    ['Failed password for invalid user x from 8.8.8.8 port 22 ssh2 from 192.0.2.1 port 4242 ssh2', '192.0.2.1'],
    ['Failed password for x from 8.8.8.8 from 192.0.2.1 port 4242 ssh2', '192.0.2.1'],
    // SSH-1 rhosts user after the real tail: the real tail, or nothing when it is forged twice.
    ['Failed password for x from 192.0.2.1 port 22 ssh1: ruser y from 8.8.8.8 port 1', '192.0.2.1'],
    ['Failed password for x from 192.0.2.1 port 22 ssh1: ruser y from 8.8.8.8 port 1 ssh1: ruser z', null],
    ['Failed publickey for invalid user x from 8.8.8.8 port 1 ssh2: RSA SHA256:abc from 192.0.2.1 port 22 ssh2: RSA SHA256:def', '192.0.2.1'],
    ['Failed hostbased for bob from 192.0.2.1 port 22 ssh2: RSA SHA256:abc, client user "x from 8.8.8.8 port 1 ssh2: RSA SHA256:abc, client user ", client host "h"', null],
    ['Failed hostbased for bob from 192.0.2.1 port 22 ssh2: RSA SHA256:abc, client user "u", client host "h" from 8.8.8.8 port 1 ssh2: RSA SHA256:abc, client user "a", client host "b"', null],
    ['Failed hostbased for bob from 192.0.2.1 port 22 ssh2: RSA SHA256:abc, client user "u", client host "h"', '192.0.2.1'],
    ['pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=x rhost=8.8.8.8  user= rhost=192.0.2.1  user=root', null],
    ['pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1  user=x rhost=8.8.8.8', null],
    ['pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1  user=x from 8.8.8.8', '192.0.2.1'],
    ['Connection closed by authenticating user x 8.8.8.8 port 1 [preauth] 192.0.2.1 port 22 [preauth]', '192.0.2.1'],
    ['Connection closed by invalid user 8.8.8.8 192.0.2.1 port 22 [preauth]', '192.0.2.1'],
    ['User x from 8.8.8.8 not allowed because listed in DenyUsers from 192.0.2.1 not allowed because listed in DenyUsers', '192.0.2.1'],
    ["Bad protocol version identification 'x' from 8.8.8.8 port 1' from 192.0.2.1 port 22", '192.0.2.1'],
    ['Received disconnect from 192.0.2.1 port 22:11: from 8.8.8.8 port 1 [preauth]', '192.0.2.1'],
    ['error: PAM: Authentication failure for x from 8.8.8.8 via from 192.0.2.1', '192.0.2.1'],
    ['error: maximum authentication attempts exceeded for x from 8.8.8.8 port 1 ssh2 [preauth] from 192.0.2.1 port 22 ssh2 [preauth]', '192.0.2.1'],
    ['Disconnecting invalid user x 8.8.8.8 port 1: Change of username or service not allowed: (a,b) -> (c,d) [preauth] 192.0.2.1 port 22: Change of username or service not allowed: (x 8.8.8.8 port 1: Change of username or service not allowed: (a,b) -> (c,d) [preauth],ssh-connection) -> (y,ssh-connection) [preauth]', null],
    // Tails that are not sshd's: nothing.
    ['Invalid user x from 192.0.2.1 port 22 extra', null],
    ['Failed password for root from 192.0.2.1 port 22 ssh2 x', null],
    ['Failed password for root from 999.1.1.1 port 22 ssh2', null],
  ];
  for (const [message, address] of cases) assert.equal(match(message)?.address ?? null, address, message);
});

test('sshd: the per-process peer is kept per host and pid', () => {
  const f = new SshdFilter();
  assert.equal(f.match(lineOf('Connection from 192.0.2.7 port 5000 on 192.0.2.1 port 22', 'sshd', 10)), null);
  assert.equal(f.match(lineOf('Disconnecting: Too many authentication failures [preauth]', 'sshd', 11)), null);
  assert.deepEqual(f.match(lineOf('Disconnecting: Too many authentication failures for root [preauth]', 'sshd', 10)), {
    kind: 'auth-failure',
    address: '192.0.2.7',
    user: null,
    pattern: 'too-many-auth-failures',
  });
  // Pid 11's held failure is not given to another process's peer.
  assert.equal(f.match(lineOf('Connection closed by 192.0.2.8 port 5001', 'sshd', 12)), null);
});

test('sshd: hostile lines give the real peer or nothing; lines longer than sshd can write give nothing', () => {
  // sshd logs at most 500 characters (1,021 to stderr): up to the filter's 2,048 the real peer is found,
  // a 16 KiB line tagged sshd is somebody else's and matches nothing.
  for (const full of hostileBodies([' port 1', ' rhost=1.2.3.4', ' ssh1: ruser ', ', client user "', ' [preauth]'])) {
    for (const message of [`Failed password for ${full} from 192.0.2.1 port 22 ssh2`, `Invalid user ${full} from 192.0.2.1 port 22`, full]) {
      assert.equal(match(message), null, message.slice(0, 80));
    }
    const body = full.slice(0, 1900);
    const cases: Array<[string, string | null]> = [
      [`Failed password for ${body} from 192.0.2.1 port 22 ssh2`, '192.0.2.1'],
      [`Failed password for invalid user ${body}`, null],
      [`Invalid user ${body} from 192.0.2.1 port 22`, '192.0.2.1'],
      [`Invalid user ${body}`, null],
      [`Failed publickey for invalid user ${body}`, null],
      [`Failed hostbased for ${body}`, null],
      [`pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=${body}`, null],
      [`PAM: Authentication failure for ${body}`, null],
      [`Connection closed by authenticating user ${body} 192.0.2.1 port 22 [preauth]`, '192.0.2.1'],
      [`Connection closed by authenticating user ${body}`, null],
      [`Received disconnect from 192.0.2.1 port 22:11: ${body} [preauth]`, '192.0.2.1'],
      [`Bad protocol version identification '${body}`, null],
      [`User ${body} not allowed because listed in DenyUsers`, null],
      [`Disconnecting invalid user ${body}`, null],
      [`error: maximum authentication attempts exceeded for ${body}`, null],
      [`Failed password for x from 192.0.2.1 port 22 ssh1: ruser ${body}`, body.includes(' ssh1: ruser ') ? null : '192.0.2.1'],
      [body, null],
    ];
    for (const [message, address] of cases) assert.equal(match(message)?.address ?? null, address, message.slice(0, 80));
  }
});
