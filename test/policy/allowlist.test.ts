import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatNetwork, networkContains, parseNetwork } from '../../src/core/address.js';
import { Allowlist, AllowlistResolver } from '../../src/policy/allowlist.js';
import { startDnsmasq, type DnsServerHandle, type Zone } from '../helpers/dnsmasq.js';
import { waitFor } from '../helpers/netns.js';

const zone = (spf: string, mail: string[]): Zone => ({
  local: ['example.com', 'example.org'],
  ttl: 1,
  txt: [['example.com', spf]],
  hosts: [['mail.example.org', ...mail]],
});

describe('allowlist entries: addresses, host names, SPF domains and files, kept fresh', () => {
  let dns: DnsServerHandle;
  let dir: string;
  let resolver: AllowlistResolver;
  const logs: string[] = [];

  before(async () => {
    dns = await startDnsmasq(zone('v=spf1 ip4:192.0.2.0/28 -all', ['192.0.2.33', '2001:db8::33']));
    dir = mkdtempSync(join(tmpdir(), 'portcullis-allow-'));
    writeFileSync(join(dir, 'allow.txt'), '# partners\n198.51.100.7\n\n203.0.113.0/24  # office\nnot-an-address\n');
    resolver = new AllowlistResolver({ servers: [dns.server], minRefreshMs: 100, retryMs: 100, fileCheckMs: 50, log: (level, m) => logs.push(`${level}: ${m}`) });
  });
  after(async () => {
    resolver?.stop();
    await dns?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('matches every entry kind and says which entry matched', async () => {
    const list = new Allowlist([parseNetwork('10.9.0.0/16')!], {
      includeHost: false,
      resolver,
      entries: [
        { kind: 'network', network: parseNetwork('2001:db8:9::/48')! },
        { kind: 'host', name: 'mail.example.org' },
        { kind: 'spf', domain: 'example.com' },
        { kind: 'file', path: join(dir, 'allow.txt') },
      ],
    });
    assert.equal(list.match('192.0.2.33'), null, 'nothing resolved before start()');
    await resolver.start();
    assert.equal(list.match('127.0.0.1'), '127.0.0.0/8');
    assert.equal(list.match('10.9.1.1'), '10.9.0.0/16');
    assert.equal(list.match('2001:db8:9::1'), '2001:db8:9::/48');
    assert.equal(list.match('192.0.2.33'), 'host:mail.example.org (192.0.2.33)');
    assert.equal(list.match('2001:db8::33'), 'host:mail.example.org (2001:db8::33)');
    assert.equal(list.match('192.0.2.5'), 'spf:example.com (192.0.2.0/28)');
    assert.equal(list.match('198.51.100.7'), `file:${join(dir, 'allow.txt')}:2 (198.51.100.7)`);
    assert.equal(list.match('203.0.113.77'), `file:${join(dir, 'allow.txt')}:4 (203.0.113.0/24)`);
    assert.equal(list.match('192.0.2.34'), null);
    assert.equal(list.match('198.51.100.8'), null);
    const fileStatus = resolver.status().find((s) => s.entry.startsWith('file:'))!;
    assert.match(fileStatus.problem!, /allow\.txt:5: "not-an-address" is not an IP address or CIDR/);
    assert.equal(fileStatus.networks, 2);
  });

  it('coversAllowed names the entry a prefix ban would hit, inside or around it', () => {
    const list = new Allowlist([], { includeHost: false, resolver, entries: [{ kind: 'spf', domain: 'example.com' }, { kind: 'host', name: 'mail.example.org' }] });
    assert.equal(list.coversAllowed('192.0.2.0/24'), 'spf:example.com (192.0.2.0/28)');
    assert.equal(list.coversAllowed(parseNetwork('192.0.2.32/30')!), 'host:mail.example.org (192.0.2.33)');
    assert.equal(list.coversAllowed('192.0.2.4/30'), 'spf:example.com (192.0.2.0/28)', 'a prefix inside an allowlisted network');
    assert.equal(list.coversAllowed('198.51.100.0/24'), null);
    assert.equal(list.coversAllowed('2001:db8::/64'), 'host:mail.example.org (2001:db8::33)');
  });

  it('resolves host and SPF entries again when their TTL ends, and reports the change', async () => {
    const list = new Allowlist([], { includeHost: false, resolver, entries: [{ kind: 'spf', domain: 'example.com' }, { kind: 'host', name: 'mail.example.org' }] });
    let changes = 0;
    resolver.on('change', () => changes++);
    await dns.reload(zone('v=spf1 include:_spf.example.org -all', ['192.0.2.44']));
    // The include target does not exist yet: permerror, nothing allowlisted from the domain.
    await waitFor('the new SPF record', () => list.match('192.0.2.5') === null, 5000);
    await waitFor('the new address of mail.example.org', () => list.match('192.0.2.44') !== null, 5000);
    assert.equal(list.match('192.0.2.33'), null);
    assert.equal(list.match('2001:db8::33'), null);
    assert.match(resolver.status().find((s) => s.entry === 'spf:example.com')!.problem!, /permerror: "include:_spf.example.org": _spf.example.org publishes no SPF record/);
    await dns.reload({ ...zone('v=spf1 include:_spf.example.org -all', ['192.0.2.44']), txt: [['example.com', 'v=spf1 include:_spf.example.org -all'], ['_spf.example.org', 'v=spf1 ip6:2001:db8:44::/48 -all']] });
    await waitFor('the include to resolve', () => list.match('2001:db8:44::1') === 'spf:example.com (2001:db8:44::/48)', 5000);
    assert.ok(changes >= 3);
    assert.ok(logs.some((l) => /allowlist spf:example.com: 1 network\(s\): 2001:db8:44::\/48/.test(l)), logs.join('\n'));
  });

  it('keeps the last good answer while the DNS server is down', async () => {
    const list = new Allowlist([], { includeHost: false, resolver, entries: [{ kind: 'host', name: 'mail.example.org' }] });
    assert.ok(list.match('192.0.2.44'));
    await dns.stop();
    await resolver.refreshAll();
    const status = resolver.status().find((s) => s.entry === 'host:mail.example.org')!;
    // Either query may be the first to fail: the A query can still be answered while the server stops.
    assert.match(status.problem!, /DNS (?:A|AAAA) query for mail.example.org failed/);
    assert.equal(list.match('192.0.2.44'), 'host:mail.example.org (192.0.2.44)');
    await dns.reload(zone('v=spf1 -all', ['192.0.2.45']));
    await waitFor('recovery', () => list.match('192.0.2.45') !== null, 5000);
    assert.equal(resolver.status().find((s) => s.entry === 'host:mail.example.org')!.problem, null);
  });

  it('reads a file again when it is replaced or edited', async () => {
    const path = join(dir, 'allow.txt');
    const list = new Allowlist([], { includeHost: false, resolver, entries: [{ kind: 'file', path }] });
    writeFileSync(join(dir, 'new.txt'), '192.0.2.200\n');
    renameSync(join(dir, 'new.txt'), path); // how editors and config management replace files
    await waitFor('the replaced file', () => list.match('192.0.2.200') !== null, 5000);
    assert.equal(list.match('198.51.100.7'), null);
    writeFileSync(path, '192.0.2.200\n192.0.2.201\n');
    await waitFor('the edited file', () => list.match('192.0.2.201') !== null, 5000);
    assert.deepEqual(list.networks().map(formatNetwork).filter((n) => n.startsWith('192.')), ['192.0.2.200', '192.0.2.201']);
  });
});

describe('allowlist lookup by prefix', () => {
  it('agrees with networkContains for IPv4 and IPv6 networks of every prefix length, shortest and earliest entry first', () => {
    // A seeded generator: addresses near the networks' bases, so that every prefix length is hit and missed.
    let seed = 7;
    const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const hex = (): string => Math.floor(rand() * 65536).toString(16);
    const v6 = (): string => Array.from({ length: 8 }, hex).join(':');
    const v4 = (): string => Array.from({ length: 4 }, () => Math.floor(rand() * 256)).join('.');
    const texts: string[] = [];
    for (let i = 0; i < 300; i++) {
      const six = rand() < 0.6;
      texts.push(`${six ? v6() : v4()}/${Math.floor(rand() * (six ? 129 : 33))}`);
    }
    const networks = texts.map((t) => parseNetwork(t)!);
    const list = new Allowlist(networks, { includeHost: false });
    const ordered = [parseNetwork('127.0.0.0/8')!, parseNetwork('::1')!, ...networks];
    const expected = (address: string): string | null => {
      const covering = ordered.filter((n) => networkContains(n, address));
      if (covering.length === 0) return null;
      const widest = Math.min(...covering.map((n) => n.prefix));
      return formatNetwork(covering.find((n) => n.prefix === widest)!);
    };
    let matched = 0;
    for (let i = 0; i < 4000; i++) {
      const base = networks[i % networks.length]!;
      const text = formatNetwork(base).split('/')[0]!;
      // Flip one random bit of the base: inside the network when it is a host bit, outside otherwise.
      const bits = base.family === 4 ? 32 : 128;
      const flipped = base.base ^ (1n << BigInt(Math.floor(rand() * bits)));
      const other = formatNetwork({ family: base.family, base: flipped, prefix: bits });
      for (const address of [text, other, base.family === 4 ? v4() : v6()]) {
        const want = expected(address);
        if (want !== null) matched++;
        assert.equal(list.match(address), want, address);
      }
    }
    assert.ok(matched > 4000, `only ${matched} addresses were inside a network`);
  });
});

describe('allowlist entries in replay', () => {
  it('a file: entry keeps its addresses from being banned, others are banned as usual', async () => {
    const { configFromFiles } = await import('../../src/config/load.js');
    const { replay } = await import('../../src/cli/replay.js');
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-replay-'));
    try {
      writeFileSync(join(dir, 'allow.txt'), '198.51.100.7\n');
      const logFile = join(dir, 'auth.log');
      const lines = [];
      for (const address of ['198.51.100.7', '198.51.100.8']) {
        for (let i = 0; i < 5; i++) lines.push(`Jan 10 10:00:0${i} host sshd[100${i}]: Failed password for root from ${address} port 4000${i} ssh2`);
      }
      writeFileSync(logFile, lines.join('\n') + '\n');
      const config = configFromFiles([{ file: join(dir, 'portcullis.yaml'), text: `allowlist: [{ file: allow.txt }]\njails: { sshd: { maxretry: 3 } }\n` }]);
      const bans: string[] = [];
      await replay(config, [logFile], { onDecision: (d) => d.action === 'ban' && bans.push(d.target), includeHostAddresses: false });
      assert.deepEqual(bans, ['198.51.100.8']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
