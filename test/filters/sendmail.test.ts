import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendmail } from '../../src/filters/sendmail.js';
import { hostile, outcomes } from './fixture-lines.js';

test('sendmail fixture: matches, near-misses and injection attempts', () => {
  assert.deepEqual(outcomes(sendmail, 'sendmail'), [
    '198.51.100.17 probe no-mail-transaction', // seed 003: connection flood
    '198.51.100.18 probe no-mail-transaction',
    '2001:db8::19 probe no-mail-transaction',
    'null health refusing-connections', // all MTA children busy
    'null health refusing-connections',
    '198.51.100.20 auth-failure auth-failure',
    '198.51.100.21 auth-failure auth-failure', // no user= field
    '198.51.100.22 invalid-user auth-unknown-user',
    '198.51.100.23 protocol-abuse smtp-attack',
    '198.51.100.24 protocol-abuse smtp-attack',
    '198.51.100.30 protocol-abuse reject-relaying-denied',
    '198.51.100.31 invalid-user reject-user-unknown',
    '198.51.100.32 protocol-abuse reject-permanent',
    '-', // message too big: honest senders get it
    '198.51.100.34 flood reject-connection-limit',
    '198.51.100.35 flood reject-connection-limit',
    '-', // temporary DNS trouble of the sender's domain
    '198.51.100.37 protocol-abuse pregreet',
    '198.51.100.38 probe expn-vrfy',
    '198.51.100.39 probe expn-vrfy',
    '198.51.100.40 probe lost-input-channel',
    '-', // lost during DATA: often the network
    '-', // No such user here: no address yet…
    '-',
    '198.51.100.50 invalid-user no-such-user-session', // …the session summary of the same queue id names it
    '-', // empty session of another queue id
    '-', // a delivered message
    '198.51.100.60 auth-failure auth-failure', // fake relay= in the user name
    '198.51.100.61 auth-failure auth-failure',
    '-', // quoted RCPT address carrying a fake relay= and reject=: refused, never misread
    '198.51.100.63 protocol-abuse reject-relaying-denied', // address literal in RCPT
    '-',
    '-',
    '198.51.100.64 invalid-user no-such-user-session', // fake relay= in the sender
    '198.51.100.65 probe expn-vrfy', // fake client in the EXPN argument
  ]);
});

test('sendmail: a No such user here only counts for its own host and queue id', () => {
  const noUser = 'Nov 14 02:00:00 a sendmail[1]: tAE70000000001: <x@example.org>... No such user here';
  const session = (host: string, qid: string) =>
    `Nov 14 02:00:01 ${host} sendmail[1]: ${qid}: from=<y@example.net>, size=0, class=0, nrcpts=0, proto=SMTP, daemon=MTA, relay=[198.51.100.70]`;
  assert.deepEqual(outcomes(sendmail, [noUser, session('b', 'tAE70000000001'), session('a', 'tAE70000000002'), session('a', 'tAE70000000001'), session('a', 'tAE70000000001')]), [
    '-',
    '-',
    '-',
    '198.51.100.70 invalid-user no-such-user-session',
    '-', // counted once
  ]);
});

test('sendmail: hostile lines up to what sendmail can write are handled and not misread; longer ones are skipped', () => {
  const head = 'Nov 14 03:00:00 gw sm-mta[1]: tAE80000000001: ';
  // sendmail keeps a message under 1,024 bytes: a 16 KiB line under its name is somebody else's.
  const build = (length: number): string[] => {
    const line = (start: string, unit: string, tail = '') => hostile(start, unit, tail, length);
    return [
      line(`${head}AUTH failure (LOGIN): `, ', user=x, relay=[192.0.2.1] x', ', relay=[198.51.100.80]'),
      line(`${head}AUTH failure (LOGIN): `, ' '),
      line(`${head}ruleset=check_rcpt, arg1=`, '['),
      line(`${head}ruleset=check_rcpt, arg1=<a>, relay=`, 'from '),
      line(`${head}`, '1.', ' did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA'),
      line(`${head}[198.51.100.81]: EXPN `, '[192.0.2.2] ', ' [rejected]'),
      line(`${head}from=<`, ', size=0, class=0, nrcpts=0, a=b, relay=[192.0.2.3] '),
    ];
  };
  assert.deepEqual(outcomes(sendmail, build(16 * 1024)), build(16 * 1024).map(() => '-'));
  assert.deepEqual(outcomes(sendmail, build(2000)), [
    '198.51.100.80 auth-failure auth-failure',
    '-',
    '-',
    '-',
    '-',
    '198.51.100.81 probe expn-vrfy',
    '-',
  ]);
});
