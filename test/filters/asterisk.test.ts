import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asterisk } from '../../src/filters/asterisk.js';
import { hostile, outcomes } from './fixture-lines.js';

test('asterisk fixture: matches, near-misses and injection attempts', () => {
  assert.deepEqual(outcomes(asterisk, 'asterisk'), [
    '198.51.100.10 auth-failure sip-wrong-password', // seed 004: SIP brute force on extension 200
    '198.51.100.11 invalid-user sip-unknown-peer',
    '198.51.100.12 auth-failure sip-wrong-password', // older chan_sip: no port
    '198.51.100.13 protocol-abuse sip-acl',
    '198.51.100.14 invalid-user sip-unknown-peer',
    '198.51.100.15 invalid-user sip-unknown-peer',
    '198.51.100.16 probe call-unknown-extension',
    '198.51.100.17 auth-failure pjsip-auth-failed',
    '2001:db8::18 invalid-user pjsip-unknown-endpoint',
    '198.51.100.19 probe call-unknown-extension', // pjsip, transport and bracketed address
    '198.51.100.20 invalid-user security-invalid-account',
    '198.51.100.21 auth-failure security-auth-failed',
    '-', // SuccessfulAuth
    '-', // ChallengeSent: every normal registration
    '198.51.100.24 auth-failure iax-auth-failed',
    '198.51.100.25 auth-failure ami-auth-failed',
    '198.51.100.26 invalid-user ami-unknown-user',
    '-', // a successful registration
    '198.51.100.28 auth-failure sip-wrong-password', // over syslog
    '198.51.100.29 probe freepbx-unknown-connection', // [Mmm dd HH:MM:SS] date format
    '198.51.100.40 auth-failure sip-wrong-password', // fake `failed for '8.8.8.8:5060' - Wrong password` in the From header
    '198.51.100.41 auth-failure pjsip-auth-failed', // fake failure in the From header, quotes in the Call-ID
    '-', // fake caller part in the caller name: ambiguous with the extension, refused
    '198.51.100.43 invalid-user security-invalid-account', // fake RemoteAddress in the SessionID
    '198.51.100.44 auth-failure sip-wrong-password', // address as SIP user
    '198.51.100.45 invalid-user iax-unknown-peer', // fake (from ADDR) in the peer name
    '-', // fake caller part in the extension: refused
  ]);
});

test('asterisk: the SIP user part never supplies the address', () => {
  const lines = [
    `[2024-05-20 04:00:00] NOTICE[1] chan_sip.c: Registration from '"8.8.8.8" <sip:8.8.8.8@8.8.8.8>' failed for '198.51.100.60:5060' - Wrong password`,
    `[2024-05-20 04:00:01] NOTICE[1] chan_sip.c: Registration from '<sip:200@192.0.2.1>' failed for '8.8.8.8:5060' - Wrong password (attacker-supplied tail)`,
    `[2024-05-20 04:00:02] NOTICE[1] chan_sip.c: Registration from '<sip:200@192.0.2.1>' failed for 'host.example.net:5060' - Wrong password`,
  ];
  assert.deepEqual(outcomes(asterisk, lines), ['198.51.100.60 auth-failure sip-wrong-password', '-', '-']);
});

test('asterisk: hostile lines up to what Asterisk can write are handled and not misread; longer ones are skipped', () => {
  const head = '[2024-05-20 05:00:00] NOTICE[1] chan_sip.c: ';
  // Asterisk formats a log line into 8,192 bytes: a 16 KiB line under its name is somebody else's.
  const build = (length: number): string[] => {
    const line = (start: string, unit: string, tail = '') => hostile(start, unit, tail, length);
    return [
      line(`${head}Registration from '`, "' failed for '192.0.2.1:5060' - Wrong password ", "' failed for '198.51.100.80:5060' - Wrong password"),
      line(`${head}Registration from '`, ' '),
      line(`${head}Call from '`, "' (192.0.2.2:5060) to extension '1", "' rejected because extension not found in context 'x'."),
      line('[2024-05-20 05:00:00] SECURITY[1] res_security_log.c: SecurityEvent="InvalidPassword",', ',RemoteAddress="IPV4/UDP/192.0.2.3/5060"', ',RemoteAddress="IPV4/UDP/198.51.100.81/5060",Challenge="x"'),
      line(`${head}`, '1.', ' failed to authenticate as \'x\''),
      line('[2024-05-20 05:00:00] NOTICE[1] res_pjsip/pjsip_distributor.c: Request \'INVITE\' from \'', "' failed for '192.0.2.4:5060' (callid: x) - ", "' failed for '198.51.100.82:5060' (callid: y) - No matching endpoint found"),
    ];
  };
  assert.deepEqual(outcomes(asterisk, build(16 * 1024)), build(16 * 1024).map(() => '-'));
  assert.deepEqual(outcomes(asterisk, build(8192)), [
    '198.51.100.80 auth-failure sip-wrong-password',
    '-',
    '-',
    '198.51.100.81 auth-failure security-auth-failed',
    '-',
    '198.51.100.82 invalid-user pjsip-unknown-endpoint',
  ]);
});
