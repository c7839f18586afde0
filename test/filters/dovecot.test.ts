import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dovecot } from '../../src/filters/dovecot.js';
import { hostile, outcomes } from './fixture-lines.js';

test('dovecot fixture: matches, near-misses and injection attempts', () => {
  assert.deepEqual(outcomes(dovecot, 'dovecot'), [
    '198.51.100.10 auth-failure login-auth-failed',
    '2001:db8::11 auth-failure login-auth-failed',
    '198.51.100.12 auth-failure login-auth-failed', // reason with parentheses before (auth failed…)
    '198.51.100.13 auth-failure login-auth-failed', // Dovecot 2.3.x "Login aborted" wording
    '198.51.100.14 probe login-no-auth-attempts',
    '198.51.100.15 protocol-abuse login-plaintext-disabled',
    '-', // successful login
    '-', // logout
    '198.51.100.17 invalid-user passdb-unknown-user',
    '198.51.100.18 auth-failure passdb-pam-failed',
    '198.51.100.19 auth-failure passdb-password-mismatch',
    '198.51.100.20 auth-failure passdb-password-mismatch',
    '198.51.100.21 auth-failure pam-unix-same-user',
    '198.51.100.22 auth-failure pam-unix',
    '198.51.100.23 auth-failure login-proxy-auth-failed',
    '-', // our own configuration error
    '198.51.100.24 invalid-user passdb-unknown-user', // Dovecot's own log file
    '198.51.100.25 auth-failure login-auth-failed', // Dovecot's own log file, ISO date
    '198.51.100.26 auth-failure login-auth-failed', // multilog TAI64N label
    '198.51.100.40 auth-failure login-auth-failed', // fake rip= inside the user name
    '198.51.100.41 invalid-user passdb-unknown-user', // fake ,ADDR): result inside the user name
    '-', // plain given password logged after the result: refused, never misread
    '198.51.100.43 auth-failure pam-unix', // fake rhost= in ruser
    '198.51.100.44 auth-failure pam-unix-same-user', // fake rhost= in both copies of the user name
    '-', // ruser holding a fake user= suffix: refused
  ]);
});

test('dovecot: hostile lines up to what Dovecot can write are handled and not misread; longer ones are skipped', () => {
  const head = 'Apr  3 11:00:00 mail dovecot: ';
  // Dovecot's log pipe cuts a message at 4,096 bytes: a 16 KiB line under its name is somebody else's.
  const build = (length: number): string[] => {
    const line = (start: string, unit: string, tail = '') => hostile(start, unit, tail, length);
    return [
      line(`${head}imap-login: Disconnected (auth failed, 1 attempts): user=<`, ', rip=192.0.2.1, lip=192.0.2.2 ', '>, rip=198.51.100.80, lip=192.0.2.1'),
      line(`${head}imap-login: Disconnected (auth failed, 1 attempts): user=<`, '(auth failed, 1 attempts): user=<'),
      line(`${head}imap-login: `, '('),
      line(`${head}auth: pam(`, 'x,192.0.2.3): ', ',198.51.100.81): unknown user'),
      line(`${head}auth: pam(`, ',1.2.3.4): unknown user '),
      line('Apr  3 11:00:00 mail auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=', ' rhost=192.0.2.4  user=', ' rhost=198.51.100.82'),
      line('Apr  3 11:00:00 mail auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=', ' '),
    ];
  };
  assert.deepEqual(outcomes(dovecot, build(16 * 1024)), build(16 * 1024).map(() => '-'));
  assert.deepEqual(outcomes(dovecot, build(8192)), [
    '198.51.100.80 auth-failure login-auth-failed',
    '-',
    '-',
    '198.51.100.81 invalid-user passdb-unknown-user',
    '-',
    '-', // ruser holding `  user=` without a matching suffix is refused
    '-',
  ]);
});
