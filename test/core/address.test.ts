import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalAddress, canonicalTarget, networkContains, parseNetwork, prefixOf } from '../../src/core/address.js';

test('IPv4 stays as written; junk is rejected', () => {
  assert.equal(canonicalAddress('192.0.2.7'), '192.0.2.7');
  for (const bad of ['192.0.2', '192.0.2.256', '1.2.3.4.5', 'example.com', '', '01.2.3.4 ', ':::1']) assert.equal(canonicalAddress(bad), null, bad);
});

test('IPv4-mapped IPv6 becomes IPv4, in any spelling', () => {
  assert.equal(canonicalAddress('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(canonicalAddress('::FFFF:c000:0207'), '192.0.2.7');
  assert.equal(canonicalAddress('0:0:0:0:0:ffff:192.0.2.7'), '192.0.2.7');
});

test('IPv6 is compressed lower-case (RFC 5952), zone ids and brackets dropped', () => {
  assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(canonicalAddress('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(canonicalAddress('2001:0db8:0000:0001:0000:0000:0000:0001'), '2001:db8:0:1::1');
  assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1');
  assert.equal(canonicalAddress('[2001:db8::5]'), '2001:db8::5');
  assert.equal(canonicalAddress('::'), '::');
  assert.equal(canonicalAddress('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2:3:4:5:6');
});

test('networks: host bits cleared, containment, prefixes', () => {
  assert.equal(canonicalTarget('192.0.2.77/24'), '192.0.2.0/24');
  assert.equal(canonicalTarget('2001:DB8::1/32'), '2001:db8::/32');
  assert.equal(canonicalTarget('192.0.2.1/32'), '192.0.2.1');
  assert.equal(canonicalTarget('::ffff:10.0.0.0/104'), '10.0.0.0/8');
  assert.equal(canonicalTarget('192.0.2.0/33'), null);
  assert.equal(canonicalTarget('192.0.2.0/x'), null);
  const net = parseNetwork('198.51.100.0/24')!;
  assert.ok(networkContains(net, '198.51.100.200'));
  assert.ok(!networkContains(net, '198.51.101.1'));
  assert.ok(!networkContains(net, '2001:db8::1'));
  assert.equal(prefixOf('203.0.113.77', 24), '203.0.113.0/24');
  assert.equal(prefixOf('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2::/64');
});
