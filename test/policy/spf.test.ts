import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatNetwork, parseNetwork } from '../../src/core/address.js';
import { DnsClient, parseDnsServer } from '../../src/policy/dns.js';
import { expandMacros, expandSpf, parseSpfRecord, subtract } from '../../src/policy/spf.js';
import { startDnsmasq, type DnsServerHandle, type Zone } from '../helpers/dnsmasq.js';

const nets = (list: readonly { family: 4 | 6; base: bigint; prefix: number }[]): string[] => list.map(formatNetwork);

/** Eleven include targets, for the lookup limit. */
const chain = Array.from({ length: 11 }, (_, i) => [`l${i + 1}.example.net`, `v=spf1 ip4:198.51.100.${i + 1} -all`] as [string, string]);

const ZONE: Zone = {
  local: ['example.com', 'example.net', 'example.org'],
  ttl: 60,
  txt: [
    // Everything at once: exclusion by an earlier fail, nested include, redirect, a, mx with a CIDR, ip6, and terms an allowlist cannot use.
    ['example.com', 'v=spf1 -ip4:198.51.100.128/25 ip4:198.51.100.0/24 include:_spf.example.net a:mail.example.org mx/30 ip6:2001:db8:5::/48 ptr exists:%{i}._spf.example.com ~all'],
    ['_spf.example.net', 'v=spf1 include:_deep.example.net ip4:192.0.2.64/27 redirect=_r.example.net'],
    // One record published as two character-strings (RFC 7208 3.3: joined without a space).
    ['_deep.example.net', 'v=spf1 ip4:192.0.2.128/26 ', '-all'],
    ['_r.example.net', 'v=spf1 ip4:192.0.2.96/27 ip4:192.0.2.64/26 -all'],
    ['limit.example.com', `v=spf1 ip4:192.0.2.1 ${chain.map(([d]) => `include:${d}`).join(' ')} ip4:192.0.2.2 -all`],
    ...chain,
    ['nested.example.com', 'v=spf1 include:limit.example.com'],
    ['void.example.com', 'v=spf1 a:nx1.example.com mx:nx2.example.com ip4:192.0.2.5 a:nx3.example.com ip4:192.0.2.6 -all'],
    ['twice.example.com', 'v=spf1 ip4:192.0.2.7 -all'],
    ['twice.example.com', 'v=spf1 ip4:192.0.2.8 -all'],
    ['broken.example.com', 'v=spf1 ip4:192.0.2.9 ip4:300.1.2.3 -all'],
    ['dangling.example.com', 'v=spf1 ip4:192.0.2.10 include:nospf.example.org ip4:192.0.2.11 -all'],
    ['nospf.example.org', 'google-site-verification=abc'],
    ['open.example.com', 'v=spf1 ip4:192.0.2.12 +all'],
    ['softinclude.example.com', 'v=spf1 ~include:_deep.example.net ip4:192.0.2.0/24 -all'],
    ['macro.example.com', 'v=spf1 include:_spf.%{d} -all'],
    ['_spf.macro.example.com', 'v=spf1 ip4:203.0.113.64/26 -all'],
  ],
  hosts: [
    ['mail.example.org', '192.0.2.33', '2001:db8::33'],
    ['mx1.example.com', '203.0.113.9'],
    ['mx2.example.com', '203.0.113.20', '2001:db8:7::20'],
  ],
  mx: [
    ['example.com', 'mx1.example.com', 10],
    ['example.com', 'mx2.example.com', 20],
  ],
};

describe('SPF expansion against a real DNS server (dnsmasq on loopback)', () => {
  let dns: DnsServerHandle;
  let client: DnsClient;

  before(async () => {
    dns = await startDnsmasq(ZONE);
    client = new DnsClient({ servers: [dns.server] });
  });
  after(async () => dns?.stop());

  it('follows include, nested include, redirect, a, mx and ip6, and honours earlier fails', async () => {
    const r = await expandSpf('example.com', client);
    assert.equal(r.problem, null);
    assert.deepEqual(nets(r.networks), [
      '192.0.2.33', // a:mail.example.org
      '192.0.2.64/27', // _spf.example.net's own ip4
      '192.0.2.96/27', // its redirect, minus what _spf.example.net matched itself
      '192.0.2.128/26', // _deep.example.net (split TXT strings)
      '198.51.100.0/25', // ip4:198.51.100.0/24 minus the earlier -ip4:198.51.100.128/25
      '203.0.113.8/30', // mx/30: mx1
      '203.0.113.20/30', // mx/30: mx2
      '2001:db8::33',
      '2001:db8:5::/48',
      '2001:db8:7::20',
    ].map((t) => formatNetwork(parseNetwork(t)!)));
    // include, a, mx, ptr, exists at the top; include and redirect inside _spf.example.net.
    assert.equal(r.lookups, 7);
    assert.equal(r.ttl, 60);
    assert.equal(r.notes.length, 2);
    assert.match(r.notes.join('\n'), /"ptr" depends on the connecting address/);
    assert.match(r.notes.join('\n'), /"exists:%\{i\}._spf.example.com" depends on the connecting address/);
  });

  it('stops at the 11th DNS-querying term with permerror, keeping what passed before it', async () => {
    const r = await expandSpf('limit.example.com', client);
    assert.equal(r.problem?.kind, 'permerror');
    assert.match(r.problem!.message, /"include:l11.example.net" in limit.example.com is DNS-querying term number 11; RFC 7208 allows 10/);
    assert.deepEqual(nets(r.networks), ['192.0.2.1', ...Array.from({ length: 10 }, (_, i) => `198.51.100.${i + 1}`)]);
  });

  it('counts lookups across nested records', async () => {
    const r = await expandSpf('nested.example.com', client);
    assert.equal(r.problem?.kind, 'permerror');
    // The include of limit.example.com is the first term: its own ten includes leave room for nine.
    assert.match(r.problem!.message, /"include:l10.example.net" in limit.example.com is DNS-querying term number 11/);
    assert.equal(r.networks.length, 1 + 9);
  });

  it('stops at the third void lookup (NXDOMAIN or no records) with permerror', async () => {
    const r = await expandSpf('void.example.com', client);
    assert.equal(r.problem?.kind, 'permerror');
    assert.match(r.problem!.message, /"a:nx3.example.com": A lookup of nx3.example.com is void lookup number 3 \(no such name\)/);
    assert.deepEqual(nets(r.networks), ['192.0.2.5']);
  });

  it('reports a domain without SPF, two SPF records, syntax errors and includes of domains without SPF', async () => {
    const none = await expandSpf('nospf.example.org', client);
    assert.equal(none.problem?.kind, 'none');
    assert.deepEqual(none.networks, []);

    const twice = await expandSpf('twice.example.com', client);
    assert.equal(twice.problem?.kind, 'permerror');
    assert.match(twice.problem!.message, /publishes 2 SPF records/);
    assert.deepEqual(twice.networks, []);

    // A syntax error anywhere voids the whole record (RFC 7208 4.6): nothing before it passes either.
    const broken = await expandSpf('broken.example.com', client);
    assert.equal(broken.problem?.kind, 'permerror');
    assert.match(broken.problem!.message, /"ip4:300.1.2.3" is not a valid ip4 network/);
    assert.deepEqual(broken.networks, []);

    const dangling = await expandSpf('dangling.example.com', client);
    assert.equal(dangling.problem?.kind, 'permerror');
    assert.match(dangling.problem!.message, /"include:nospf.example.org": nospf.example.org publishes no SPF record/);
    assert.deepEqual(nets(dangling.networks), ['192.0.2.10']);
  });

  it('refuses +all, and an include with a non-pass qualifier only hides what it matches', async () => {
    const open = await expandSpf('open.example.com', client);
    assert.deepEqual(nets(open.networks), ['192.0.2.12']);
    assert.match(open.notes[0]!, /ignored "\+all": it would allowlist every address/);

    const soft = await expandSpf('softinclude.example.com', client);
    // 192.0.2.0/24 minus _deep.example.net's 192.0.2.128/26, which the ~include matched first.
    assert.deepEqual(nets(soft.networks), ['192.0.2.0/25', '192.0.2.192/26']);
  });

  it('expands the %{d} macro', async () => {
    const r = await expandSpf('macro.example.com', client);
    assert.deepEqual(nets(r.networks), ['203.0.113.64/26']);
  });

  it('reports temperror when the DNS server does not answer', async () => {
    const silent = new DnsClient({ servers: ['127.0.0.1:9'], timeoutMs: 200, attempts: 1 });
    const r = await expandSpf('example.com', silent);
    assert.equal(r.problem?.kind, 'temperror');
    assert.deepEqual(r.networks, []);
  });
});

describe('SPF parsing and set arithmetic', () => {
  it('parses the RFC 7208 term forms and rejects malformed ones', () => {
    const rec = parseSpfRecord('v=spf1 a a:x.example/24 a//64 mx:y.example/24//48 -ip6:2001:db8::/32 ?exists:%{ir}.x.example ~all exp=e.example unknown=thing');
    assert.deepEqual(rec.terms.map((t) => t.kind), ['a', 'a', 'a', 'mx', 'ip', 'exists', 'all']);
    assert.deepEqual(rec.terms.map((t) => t.qualifier), ['+', '+', '+', '+', '-', '?', '~']);
    for (const bad of ['v=spf1 include', 'v=spf1 ip4:1.2.3', 'v=spf1 a/33', 'v=spf1 foo', 'v=spf1 all:x', 'v=spf1 redirect=a.example redirect=b.example', 'v=spf1 ip6:192.0.2.1', 'v=spf1 include:%x']) {
      assert.throws(() => parseSpfRecord(bad), Error, bad);
    }
  });

  it('expands domain macros and gives up on client macros', () => {
    assert.equal(expandMacros('_spf.%{d}', { d: 'example.com', o: 'example.com' }), '_spf.example.com');
    assert.equal(expandMacros('%{d2}.%{dr}', { d: 'a.b.example.com', o: 'x' }), 'example.com.com.example.b.a');
    assert.equal(expandMacros('%{i}.x', { d: 'd', o: 'o' }), null);
  });

  it('subtracts networks exactly', () => {
    const n = (t: string) => parseNetwork(t)!;
    assert.deepEqual(nets(subtract([n('192.0.2.0/24')], [n('192.0.2.0/26')])), ['192.0.2.128/25', '192.0.2.64/26']);
    assert.deepEqual(nets(subtract([n('192.0.2.0/24')], [n('192.0.2.255')])).length, 8);
    assert.deepEqual(nets(subtract([n('192.0.2.0/26')], [n('192.0.2.0/24')])), []);
    assert.deepEqual(nets(subtract([n('192.0.2.0/26')], [n('198.51.100.0/24')])), ['192.0.2.0/26']);
  });

  it('parses DNS server addresses with ports', () => {
    assert.deepEqual(parseDnsServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
    assert.deepEqual(parseDnsServer('192.0.2.53'), { host: '192.0.2.53', port: 53 });
    assert.deepEqual(parseDnsServer('[::1]:5353'), { host: '::1', port: 5353 });
    assert.deepEqual(parseDnsServer('2001:db8::53'), { host: '2001:db8::53', port: 53 });
    assert.equal(parseDnsServer('dns.example:53'), null);
    assert.equal(parseDnsServer('127.0.0.1:99999'), null);
  });
});
