import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postfix } from '../../src/filters/postfix.js';
import { hostile, outcomes } from './fixture-lines.js';

test('postfix fixture: matches, near-misses and injection attempts', () => {
  assert.deepEqual(outcomes(postfix, 'postfix'), [
    '-', // connect
    '198.51.100.23 auth-failure sasl-auth-failed',
    '198.51.100.23 probe lost-connection', // after AUTH
    '198.51.100.23 auth-failure disconnect-auth-failed', // auth=0/1 in the session summary
    '203.0.113.40 auth-failure sasl-auth-failed', // submission, client port, sasl_username
    '2001:db8::25 auth-failure sasl-auth-failed', // smtps, IPv6
    '203.0.113.41 auth-failure sasl-auth-failed', // multi-instance postfix-out/smtpd
    '-', // our auth server unreachable: not the client's fault
    '-', // unsupported mechanism
    '198.51.100.7 protocol-abuse reject-relay', // injected [192.0.2.99] in HELO is ignored
    '198.51.100.8 invalid-user reject-unknown-user',
    '198.51.100.9 protocol-abuse reject-temporary', // no reverse DNS (address in the reason is ignored)
    '-', // greylisting: honest senders get it
    '-', // 5.3.4 message too big: honest senders get it
    '198.51.100.10 protocol-abuse reject-permanent', // DNSBL
    '198.51.100.11 protocol-abuse reject-permanent', // bad HELO
    '-', // END-OF-MESSAGE content reject
    '198.51.100.12 protocol-abuse reject-permanent', // milter reject at DATA, long queue id
    '203.0.113.50 probe lost-connection',
    '203.0.113.50 probe disconnect-no-commands',
    '-', // lost connection during DATA: often the network
    '-', // ordinary session summary
    '203.0.113.51 probe lost-connection', // timeout after STARTTLS
    '203.0.113.52 protocol-abuse disconnect-all-commands-failed',
    '203.0.113.53 protocol-abuse improper-pipelining',
    '203.0.113.54 protocol-abuse too-many-errors',
    '203.0.113.55 flood rate-limit',
    '203.0.113.56 flood rate-limit',
    '-', // anvil statistics
    '-', // postscreen CONNECT
    '203.0.113.60 protocol-abuse postscreen-pregreet',
    '203.0.113.61 probe postscreen-dnsbl',
    '203.0.113.62 probe postscreen-hangup',
    '203.0.113.63 protocol-abuse postscreen-violation',
    '203.0.113.64 protocol-abuse postscreen-violation',
    '203.0.113.65 protocol-abuse reject-permanent', // postscreen's own reject
    '-', // PASS NEW
    '198.51.100.70 protocol-abuse reject-relay', // addresses injected in RCPT, MAIL FROM and HELO
    '198.51.100.71 auth-failure sasl-auth-failed', // injection in the SASL user name
    '198.51.100.72 protocol-abuse improper-pipelining', // injection in the pipelined text
    '-', // cleanup: a header quoting a postfix line is not smtpd's
  ]);
});

test('postfix: the client part itself cannot be forged by a host name', () => {
  // Postfix only keeps valid host names, but should one carry brackets, the line is refused, never misread.
  assert.deepEqual(
    outcomes(postfix, [
      'Mar  4 09:20:00 mx1 postfix/smtpd[1]: lost connection after CONNECT from evil[192.0.2.7].example[198.51.100.90]',
      'Mar  4 09:20:00 mx1 postfix/smtpd[1]: warning: x[192.0.2.8] y[198.51.100.91]: SASL LOGIN authentication failed: x',
    ]),
    ['-', '-'],
  );
});

test('postfix: hostile lines up to what Postfix can write are handled and not misread; longer ones are skipped', () => {
  const head = 'Mar  4 09:30:00 mx1 postfix/smtpd[1]: ';
  // Postfix writes at most 2,000 bytes of a message: a 16 KiB line under its name is somebody else's.
  const build = (length: number): string[] => [
    hostile(`${head}warning: unknown[198.51.100.80]: SASL LOGIN authentication failed: `, ' ', '', length),
    hostile(`${head}warning: unknown[198.51.100.81]: SASL LOGIN authentication failed: `, ', sasl_username=from unknown[192.0.2.1]', '', length),
    hostile(`${head}lost connection after CONNECT from `, 'from ', '', length),
    hostile(`${head}NOQUEUE: reject: RCPT from unknown[`, '[', '', length),
    hostile(`${head}NOQUEUE: reject: RCPT from unknown[`, '1.', '', length),
    hostile(`${head}disconnect from unknown[198.51.100.82]`, ' auth=0/1', '', length),
    hostile(`${head}`, ' '.repeat(100) + 'from unknown[192.0.2.2]', '', length),
    hostile(`${head}NOQUEUE: reject: RCPT from unknown[198.51.100.83]: 554 5.7.1 <`, '1234567890.', '>: Relay access denied', length),
    hostile(`${head}improper command pipelining after CONNECT from unknown[198.51.100.84]: `, '[192.0.2.3]', '', length),
  ];
  assert.ok(build(16 * 1024).every((l) => l.length === 16 * 1024));
  assert.deepEqual(outcomes(postfix, build(16 * 1024)), build(16 * 1024).map(() => '-'));
  assert.deepEqual(outcomes(postfix, build(2000)), [
    '198.51.100.80 auth-failure sasl-auth-failed',
    '198.51.100.81 auth-failure sasl-auth-failed',
    '-',
    '-',
    '-',
    '-',
    '-',
    '198.51.100.83 protocol-abuse reject-relay',
    '198.51.100.84 protocol-abuse improper-pipelining',
  ]);
});
