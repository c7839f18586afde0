import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exim } from '../../src/filters/exim.js';
import { hostile, outcomes } from './fixture-lines.js';

test('exim fixture: matches, near-misses and injection attempts', () => {
  assert.deepEqual(outcomes(exim, 'exim'), [
    '198.51.100.10 auth-failure auth-failed',
    '198.51.100.11 auth-failure auth-failed', // name, address-literal HELO, ports and interface
    '198.51.100.12 auth-failure auth-failed',
    '-', // 435: our authentication backend failed
    '198.51.100.14 protocol-abuse protocol-error',
    '198.51.100.15 protocol-abuse synchronization-error-greeting',
    '198.51.100.16 protocol-abuse synchronization-error-pipelining',
    '198.51.100.17 protocol-abuse call-dropped',
    '198.51.100.18 protocol-abuse call-dropped',
    '198.51.100.19 protocol-abuse dropped-by-acl', // with pid and message id
    '198.51.100.20 probe no-mail',
    '198.51.100.21 protocol-abuse sender-verify-failed',
    '198.51.100.22 invalid-user rcpt-unknown-user',
    '198.51.100.23 protocol-abuse rcpt-rejected',
    '-', // temporary reject (greylisting)
    '198.51.100.25 protocol-abuse helo-rejected',
    '-', // a delivery
    '-', // bad reverse DNS is not the client's behaviour
    '-', // connection lost
    '198.51.100.29 auth-failure auth-failed', // mainlog written through an rsyslog template: host exim[pid]:
    '198.51.100.30 probe no-mail', // over syslog, with Exim's own timestamp
    '198.51.100.40 protocol-abuse protocol-error', // fake host part inside the quoted command
    '198.51.100.41 auth-failure auth-failed', // set_id holding a fake second failure
    '-', // junk HELO (helo_accept_junk_hosts): refused, never misread
    '-', // quoted command and next input both carry host parts: ambiguous, refused
    '198.51.100.44 protocol-abuse rcpt-rejected', // address literal in RCPT
    '-', // junk HELO holding a fake host part
    '198.51.100.46 protocol-abuse synchronization-error-pipelining', // fake H= in the next input only
  ]);
});

test('exim: hostile lines up to what Exim can write are handled and not misread; longer ones are skipped', () => {
  const head = '2024-02-10 09:00:00 ';
  // Exim builds a log line in 8,192 bytes: a 16 KiB line under its name is somebody else's.
  const build = (length: number): string[] => {
    const line = (start: string, unit: string, tail = '') => hostile(start, unit, tail, length);
    return [
      line(`${head}SMTP protocol error in "`, '" H=(x) [192.0.2.1] ', '" H=(y) [198.51.100.80] AUTH command used when not advertised'),
      line(`${head}SMTP protocol error in "`, ' '),
      line(`${head}login authenticator failed for (x) [198.51.100.81]: 535 Incorrect authentication data (set_id=`, '[192.0.2.2]: ', ')'),
      line(`${head}login authenticator failed for `, '('),
      line(`${head}H=`, '[1.2.3.4] '),
      line(`${head}no MAIL in SMTP connection from `, 'from '),
      line(`${head}`, '1.', ' dropped: too many syntax or protocol errors'),
    ];
  };
  assert.deepEqual(outcomes(exim, build(16 * 1024)), build(16 * 1024).map(() => '-'));
  assert.deepEqual(outcomes(exim, build(8192)), [
    '198.51.100.80 protocol-abuse protocol-error',
    '-',
    '198.51.100.81 auth-failure auth-failed',
    '-',
    '-',
    '-',
    '-',
  ]);
});
