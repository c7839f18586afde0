import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configFromFiles } from '../../src/config/load.js';
import { parseConnectionRate } from '../../src/config/network-defences.js';
import { formatNetwork } from '../../src/core/address.js';
import { firewallSpec } from '../../src/enforcers/index.js';

const load = (text: string) => configFromFiles([{ file: '/etc/portcullis/portcullis.yaml', text }]);

describe('config: allowlist, dns and connection limits', () => {
  it('reads every entry form, global and per jail, and the jail limits into the firewall spec', () => {
    const config = load(`dns: { servers: [127.0.0.1:5353, "[::1]:53"], timeout: 1s }
allowlist:
  - 192.0.2.0/24
  - host: Mail.Example.org.
  - spf: [example.com, example.net]
jails:
  sshd:
    flush: global
    limits: { max_src_conn: 15, max_src_conn_rate: 5/3, overload: { bantime: 1d } }
    allowlist: [2001:db8::/32, { host: admin.example.org }]
`);
    assert.deepEqual(config.dns, { servers: ['127.0.0.1:5353', '[::1]:53'], timeoutMs: 1000 });
    assert.deepEqual(config.allowlist!.map((e) => (e.kind === 'network' ? formatNetwork(e.network) : e)), [
      '192.0.2.0/24', { kind: 'host', name: 'mail.example.org' }, { kind: 'spf', domain: 'example.com' }, { kind: 'spf', domain: 'example.net' },
    ]);
    const sshd = config.jails.find((j) => j.name === 'sshd')!;
    assert.equal(sshd.allowlist!.length, 2);
    assert.deepEqual(firewallSpec(sshd).limits, { maxSrcConn: 15, maxSrcConnRate: { count: 5, seconds: 3 }, bantime: 86_400_000 });
  });

  it('says what is wrong with an entry, and where', () => {
    assert.throws(() => load(`allowlist:
  - 192.0.2.0/24
  - hots: mail.example.org
  - spf: "example com"
  - 192.0.2.300
  - file: missing-allow.txt
dns: { servers: [dns.example.org] }
jails:
  sshd:
    limits: { max_src_conn_rate: 15/5x }
`), (err: Error) => {
      assert.match(err.message, /portcullis.yaml:3:5: allowlist\[1\]: unknown entry kind "hots"; an entry is an address or CIDR, `host: NAME`/);
      assert.match(err.message, /portcullis.yaml:4:5: allowlist\[2\].spf: "example com" is not a domain name/);
      assert.match(err.message, /portcullis.yaml:5:5: allowlist\[3\]: "192.0.2.300" is not an address or CIDR/);
      assert.match(err.message, /portcullis.yaml:6:5: allowlist\[4\].file: \/etc\/portcullis\/missing-allow.txt does not exist/);
      assert.match(err.message, /portcullis.yaml:7:\d+: dns.servers\[0\]: "dns.example.org" is not a DNS server/);
      assert.match(err.message, /portcullis.yaml:10:\d+: jail "sshd": limits.max_src_conn_rate: "15\/5x" is not a connection rate; expected N\/PERIOD/);
      return true;
    });
    assert.throws(() => load('jails: { sshd: { limits: { overload: { bantime: 1d } } } }\n'), /set max_src_conn, max_src_conn_rate or both/);
    assert.throws(() => load('jails: { sshd: { limits: { max_src_conn: 10, maxsrcconn: 3 } } }\n'), /unknown key "maxsrcconn" in jails.sshd.limits/);
  });

  it('reads connection rates the way pf and people write them', () => {
    assert.deepEqual(parseConnectionRate('15/5s'), { count: 15, seconds: 5 });
    assert.deepEqual(parseConnectionRate('15/5'), { count: 15, seconds: 5 });
    assert.deepEqual(parseConnectionRate('10/minute'), { count: 10, seconds: 60 });
    assert.deepEqual(parseConnectionRate('100/1m30s'), { count: 100, seconds: 90 });
    for (const bad of ['0/5s', '15', '15/0', '15/2d', 'x/5s']) assert.equal(parseConnectionRate(bad), null, bad);
  });
});
