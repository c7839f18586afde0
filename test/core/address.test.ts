import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressWords, canonicalAddress, canonicalTarget, formatAddressWords, networkContains, parseNetwork, prefixOf } from '../../src/core/address.js';

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

test('agrees with node:net and the WHATWG URL parser on 20,000 random spellings', async () => {
  const { isIPv4, isIPv6 } = await import('node:net');
  let seed = 12345;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const hex = (): string => rand(0x10000).toString(16)[rand(2) ? 'toUpperCase' : 'toLowerCase']().padStart(rand(5), '0');
  for (let k = 0; k < 20_000; k++) {
    let text: string;
    const shape = rand(6);
    if (shape === 0) text = Array.from({ length: 3 + rand(3) }, () => String(rand(300))).join('.');
    else if (shape === 1) text = Array.from({ length: 8 }, hex).join(':');
    else if (shape === 2) {
      const groups = Array.from({ length: rand(8) }, hex);
      const at = rand(groups.length + 1);
      text = [...groups.slice(0, at), '', ...groups.slice(at)].join(':').replace(/^:(?!:)/, '::').replace(/(?<!:):$/, '::');
    } else if (shape === 3) text = `::ffff:${rand(256)}.${rand(256)}.${rand(256)}.${rand(256)}`;
    else if (shape === 4) text = Array.from({ length: 1 + rand(9) }, () => (rand(4) ? hex() : '')).join(':');
    else text = `${hex()}::${hex()}:${rand(300)}.${rand(256)}.${rand(256)}.${rand(256)}`;
    const got = canonicalAddress(text);
    // As numbers and back: the same canonical text, distinct addresses distinct numbers.
    const words = new Float64Array(4);
    assert.equal(addressWords(text, words, 1), got !== null, text);
    if (got !== null) assert.equal(formatAddressWords(words[1]!, words[2]!, words[3]!), got, text);
    if (isIPv4(text)) assert.equal(got, text, text);
    else if (isIPv6(text)) {
      const url = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(url);
      const expected = mapped ? [parseInt(mapped[1]!, 16) >> 8, parseInt(mapped[1]!, 16) & 255, parseInt(mapped[2]!, 16) >> 8, parseInt(mapped[2]!, 16) & 255].join('.') : url;
      assert.equal(got, expected, text);
    } else assert.equal(got, null, text);
  }
});

test('addresses as three numbers: exact at the extremes, IPv4 and its mapped spelling the same', () => {
  const words = (a: string): number[] => {
    const w = new Float64Array(3);
    assert.ok(addressWords(a, w, 0), a);
    return [...w];
  };
  assert.deepEqual(words('192.0.2.1'), words('::ffff:192.0.2.1'));
  assert.deepEqual(words('255.255.255.255'), [0, 0xffff, 4294967295]);
  assert.deepEqual(words('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), [2 ** 48 - 1, 2 ** 48 - 1, 2 ** 32 - 1]);
  for (const a of ['::', '::1', '0.0.0.0', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8::ffff:0:1', '1:2:3:4:5:6:7:8']) {
    const [x, y, z] = words(a) as [number, number, number];
    assert.equal(formatAddressWords(x, y, z), canonicalAddress(a), a);
  }
  assert.notDeepEqual(words('2001:db8::1'), words('2001:db8::1:0'));
  assert.equal(addressWords('example.org', new Float64Array(3), 0), false);
});

test('addressWords gives each address its own value when the same ones come again and again (the last is kept)', () => {
  const out = new Float64Array(6);
  const seen = new Map<string, number[]>();
  const inputs = ['192.0.2.1', '192.0.2.1', '2001:db8::1', 'not an address', '2001:db8::1', '192.0.2.1', '::ffff:192.0.2.1', 'not an address', '10.0.0.1'];
  for (const a of inputs) {
    const ok = addressWords(a, out, 3);
    const words = ok ? [out[3]!, out[4]!, out[5]!] : [];
    if (seen.has(a)) assert.deepEqual(words, seen.get(a), a);
    else seen.set(a, words);
  }
  assert.deepEqual(seen.get('not an address'), []);
  assert.deepEqual(seen.get('::ffff:192.0.2.1'), seen.get('192.0.2.1'));
  assert.deepEqual(seen.get('192.0.2.1'), [0, 0xffff, 0xc0000201]);
  assert.notDeepEqual(seen.get('10.0.0.1'), seen.get('192.0.2.1'));
});
