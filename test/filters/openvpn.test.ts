import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOpenvpnFilter } from '../../src/filters/openvpn.js';
import { FilterDispatch } from '../../src/filters/filter.js';
import { assertFixture, hostileBodies, lineOf, type Expected } from './fixture.js';

const EXPECTED: Expected = {
  // Seed 000: one event per attempt — `TLS handshake failed` sums up the timeout reported just before.
  2: ['probe', '148.163.126.72'],
  5: ['probe', '148.163.126.72'],
  7: ['protocol-abuse', '74.91.120.143'],
  8: ['protocol-abuse', '74.91.120.143'],
  9: ['protocol-abuse', '2001:db8:5::17'],
  10: ['auth-failure', '192.0.2.77'],
  13: ['auth-failure', '198.51.100.40'],
  16: ['auth-failure', '198.51.100.41'],
  18: ['protocol-abuse', '203.0.113.50'],
  19: ['health', '192.0.2.10'],
  20: ['health', null],
  21: ['probe', '2001:db8::99'],
};

test('openvpn fixture: seed 000, own log file, journal and Debian ovpn-NAME tags', () => {
  assertFixture('openvpn.log', createOpenvpnFilter(), EXPECTED);
});

test('openvpn: extra program names through the factory', () => {
  const f = createOpenvpnFilter({ programs: ['openvpn(*'] });
  const dispatch = new FilterDispatch([f]);
  const line = lineOf('192.0.2.5:1194 TLS Error: TLS handshake failed', 'openvpn(office)');
  assert.equal(dispatch.forLine(line).length, 1);
  assert.equal(dispatch.forLine(lineOf('x', 'openvpn')).length, 0);
  assert.equal(f.match(line)?.address, '192.0.2.5');
});

test('openvpn: certificate names and user names cannot supply the address', () => {
  const f = createOpenvpnFilter();
  const cases: Array<[string, string | null]> = [
    ['8.8.8.8:1/192.0.2.1:1194 VERIFY ERROR: depth=0, error=x', '192.0.2.1'],
    ['x 8.8.8.8:1 TLS Auth Error: Auth Username/Password verification failed for peer', null],
    ['192.0.2.1:1194 VERIFY ERROR: depth=0, error=certificate revoked: CN=8.8.8.8:1 TLS Error: TLS handshake failed', '192.0.2.1'],
    ['TLS Error: cannot locate HMAC in incoming packet from [AF_INET]8.8.8.8:1x from [AF_INET]192.0.2.1:5', null],
    ['TLS Error: TLS handshake failed', null],
    ['999.0.0.1:1194 TLS Error: TLS handshake failed', null],
  ];
  for (const [message, address] of cases) assert.equal(f.match(lineOf(message, 'openvpn'))?.address ?? null, address, message);
});

test('openvpn: health events are never evidence', () => {
  const f = createOpenvpnFilter();
  assert.equal(f.match(lineOf('192.0.2.1:1194 Replay-window backtrack occurred [5]', 'openvpn'))?.kind, 'health');
  assert.equal(f.match(lineOf('MULTI: packet dropped due to output saturation (multi_process_incoming_tun)', 'openvpn'))?.kind, 'health');
});

test('openvpn: hostile lines up to what OpenVPN can write give the real peer or nothing; longer ones nothing', () => {
  // OpenVPN's message buffer holds at most 10,240 bytes: a 16 KiB line under its name is somebody else's.
  for (const full of hostileBodies(['1.2.3.4:5 ', '/', '[AF_INET]'])) {
    assert.equal(createOpenvpnFilter().match(lineOf(`192.0.2.1:1194 TLS Auth Error: ${full}`, 'openvpn')), null);
    const body = full.slice(0, 10_000);
    const cases: Array<[string, string | null]> = [
      [`${body} TLS Error: TLS handshake failed`, null],
      [`192.0.2.1:1194 VERIFY ERROR: depth=0, error=${body}`, '192.0.2.1'],
      // Only a body that starts with a well-formed socket address (the one OpenVPN writes) gives one.
      [`TLS Error: cannot locate HMAC in incoming packet from [AF_INET6]${body}`, body.startsWith('1.2.3.4:5 ') ? '1.2.3.4' : null],
      [`192.0.2.1:1194 TLS Auth Error: ${body}`, '192.0.2.1'],
      [body, null],
    ];
    for (const [message, address] of cases) {
      assert.equal(createOpenvpnFilter().match(lineOf(message, 'openvpn'))?.address ?? null, address, message.slice(0, 80));
    }
  }
});

test('openvpn: a summary line counts when its attempt was not reported before', () => {
  const f = createOpenvpnFilter();
  assert.equal(f.match(lineOf('192.0.2.1:1194 TLS Error: TLS handshake failed', 'openvpn'))?.kind, 'probe');
  assert.equal(f.match(lineOf('192.0.2.1:1195 TLS Auth Error: Auth Username/Password verification failed for peer', 'openvpn'))?.kind, 'auth-failure');
  assert.equal(f.match(lineOf('192.0.2.1:1195 TLS Error: TLS handshake failed', 'openvpn')), null);
});
