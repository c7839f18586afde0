import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseNetwork } from '../../src/core/address.js';
import type { Decision } from '../../src/core/types.js';
import type { JailFirewallSpec } from '../../src/enforcers/enforcer.js';
import { NftablesEnforcer, portMatch, setupScript } from '../../src/enforcers/nftables.js';
import { NftablesDefences, nftRate, type KernelBan } from '../../src/enforcers/nftables-limits.js';
import { createTopology, waitFor, type Role, type Topology } from '../helpers/netns.js';

/**
 * Real TCP connection floods from the attacker namespace against listeners in the
 * server namespace, counting what the client saw: connected, refused (reset), or
 * timed out (dropped).
 */

const JAILS: JailFirewallSpec[] = [
  // The seed's tighter rule for ssh: max-src-conn 3, max-src-conn-rate 5/3, overload, flush global.
  { jail: 'sshd', ports: [22], protocol: 'tcp', verdict: 'drop', flush: 'global', limits: { maxSrcConn: 3, maxSrcConnRate: { count: 5, seconds: 3 }, bantime: 3_600_000 } },
  // The seed's general rule for the web: max-src-conn 100, max-src-conn-rate 15/5; refused rather than dropped.
  { jail: 'web', ports: [80], protocol: 'tcp', verdict: 'reject', limits: { maxSrcConn: 100, maxSrcConnRate: { count: 15, seconds: 5 }, bantime: 3_600_000 } },
  { jail: 'mail', ports: [25], protocol: 'tcp', verdict: 'drop', siege: { rateLimit: '5/minute', allowlistOnly: false } },
];

interface FloodResult {
  connected: number;
  refused: number;
  timeout: number;
}

/**
 * N connections at once from one process (so the SYNs really arrive together). A connection counts as
 * accepted when the handshake completes: once the source is banned even its accepted connections are cut.
 */
const FLOOD = `
const net = require('node:net');
const [host, port, count, timeout] = process.argv.slice(1);
const result = { connected: 0, refused: 0, timeout: 0 };
let pending = Number(count);
const done = (what, s) => { if (s.counted) return; s.counted = true; result[what]++; s.destroy(); if (--pending === 0) { console.log(JSON.stringify(result)); process.exit(0); } };
for (let i = 0; i < Number(count); i++) {
  const s = net.connect({ host, port: Number(port) });
  s.once('connect', () => done('connected', s));
  // A reset after the handshake (the source was banned a moment later) still counts as accepted; a refused SYN does not.
  s.on('error', (e) => done(e.code === 'ECONNRESET' ? 'connected' : e.code === 'ECONNREFUSED' ? 'refused' : 'timeout', s));
  setTimeout(() => done('timeout', s), Number(timeout));
}`;

describe('nftables connection limits and siege rules against real connection floods', () => {
  let topo: Topology;
  let nft: NftablesEnforcer;
  let defences: NftablesDefences;
  const kernelBans: KernelBan[] = [];
  const recorded = new Set<string>();
  const server = '192.0.2.1';

  const flood = async (role: Role, port: number, count: number, timeoutMs = 1500): Promise<FloodResult> => {
    const child = topo.spawn(role, process.execPath, ['-e', FLOOD, server, String(port), String(count), String(timeoutMs)]);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise((resolve) => child.once('exit', resolve));
    return JSON.parse(out) as FloodResult;
  };

  const overloadElements = async (set: string): Promise<string[]> => {
    const { stdout } = await topo.exec('server', 'nft', ['-j', 'list', 'set', 'inet', 'portcullis', set]);
    const set_ = (JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: Array<{ elem: { val: string } }> } }> }).nftables.find((i) => i.set)!.set!;
    return (set_.elem ?? []).map((e) => e.elem.val);
  };

  before(async () => {
    topo = await createTopology();
    for (const port of [22, 25, 80, 8080]) await topo.listen(port);
    nft = new NftablesEnforcer({ netns: topo.ns.server });
    await nft.setup(JAILS);
    defences = new NftablesDefences(JAILS, {
      netns: topo.ns.server,
      pollMs: 100,
      // What the daemon does: record the ban, which also enforces it (ban set, flush).
      onKernelBan: (ban) => {
        kernelBans.push(ban);
        recorded.add(`${ban.jail}/${ban.target}`);
        void nft.apply({ ban: [ban], unban: [] });
      },
      isRecorded: (jail, target) => recorded.has(`${jail}/${target}`),
    }, portMatch);
    await defences.start();
  });
  after(async () => {
    await defences?.stop();
    await topo?.destroy();
  });

  it('compiles pf-style limits into per-source nft meters that add the offender to the overload set', () => {
    const script = setupScript(JAILS, null);
    assert.match(script, /tcp dport \{ 22 \} ct state new add @sshd_v4_conn \{ ip saddr ct count over 3 \} add @sshd_v4_over \{ ip saddr timeout 3600s \} counter name sshd_blocked drop/);
    assert.match(script, /tcp dport \{ 22 \} ct state new update @sshd_v4_connrate \{ ip saddr timeout 6s limit rate over 100\/minute burst 5 packets \} add @sshd_v4_over \{ ip saddr timeout 3600s \}/);
    assert.match(script, /tcp dport \{ 80 \} ip6 saddr @web_v6_over counter name web_blocked reject with tcp reset/);
    // The global allowlist is the chain's first rule, ahead of every ban.
    assert.match(script, /add rule inet portcullis input ip saddr @allow_v4 accept\nadd rule inet portcullis input ip6 saddr @allow_v6 accept\n/);
    assert.equal(nftRate(15, 5), '3/second');
    assert.equal(nftRate(5, 3), '100/minute');
    assert.equal(nftRate(7, 86400), '7/day');
  });

  it('lets a burst under the web limit through, then the kernel refuses and bans the flooder; the ban is reported once', async () => {
    const polite = await flood('attacker', 80, 10);
    assert.deepEqual(polite, { connected: 10, refused: 0, timeout: 0 }, 'ten connections are within 15 per 5 s');
    await new Promise((r) => setTimeout(r, 5000)); // let the per-source bucket refill
    const storm = await flood('attacker', 80, 60);
    assert.ok(storm.connected >= 10 && storm.connected <= 20, `about 15 of 60 connections accepted (burst 15, 3 more a second): ${JSON.stringify(storm)}`);
    assert.equal(storm.refused, 60 - storm.connected, 'the rest refused with a reset (action reject)');
    assert.deepEqual(await overloadElements('web_v4_over'), ['198.51.100.2']);
    await waitFor('the kernel ban to be reported', () => kernelBans.some((b) => b.jail === 'web'), 3000);
    const ban = kernelBans.find((b) => b.jail === 'web')!;
    assert.equal(ban.target, '198.51.100.2');
    assert.ok(Math.abs(ban.until! - (Date.now() + 3_600_000)) < 10_000);
    await defences.poll();
    assert.equal(kernelBans.filter((b) => b.jail === 'web').length, 1, 'reported once');
    // Banned on the web port only; other ports answer.
    assert.equal(await topo.probeTcp('attacker', server, 80), 'refused');
    assert.equal(await topo.probeTcp('attacker', server, 8080), 'connected');
  });

  it('is tighter on the ssh port: concurrent connections over max_src_conn ban at once, and flush global cuts every open connection', async () => {
    const other = await topo.openTcp('attacker', server, 8080);
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await topo.openTcp('attacker', server, 22));
    const fourth = await topo.probeTcp('attacker', server, 22, 1000);
    assert.equal(fourth, 'timeout', 'the fourth concurrent connection is dropped');
    await waitFor('the kernel ban to be reported', () => kernelBans.some((b) => b.jail === 'sshd'), 3000);
    // Recording the ban applies it, with flush global: the held ssh sessions and the unrelated connection are cut.
    for (const h of held) assert.equal(await h.closed, 'ECONNRESET');
    assert.equal(await other.closed, 'ECONNRESET');
    assert.equal(await topo.probeTcp('friend', server, 22), 'connected');
  });

  it('lets an allowlisted source flood as it likes', async () => {
    await defences.syncAllowlists([parseNetwork('203.0.113.2')!], new Map());
    const r = await flood('friend', 22, 30);
    assert.deepEqual(r, { connected: 30, refused: 0, timeout: 0 });
    assert.deepEqual(await overloadElements('sshd_v4_over'), ['198.51.100.2']);
  });

  it('lifting the recorded ban also takes the address out of the overload set', async () => {
    await defences.onDecision({ action: 'unban', target: '198.51.100.2', jail: 'sshd', time: Date.now(), until: null, reason: 'manual', origin: 'test' });
    await nft.apply({ ban: [], unban: [{ target: '198.51.100.2', jail: 'sshd', until: null }] });
    assert.deepEqual(await overloadElements('sshd_v4_over'), []);
    assert.equal(await topo.probeTcp('attacker', server, 22), 'connected');
  });

  const siege = (action: 'siege-on' | 'siege-off', allowlistOnly = false): Decision => ({
    action, target: '*', jail: 'mail', time: Date.now(), until: null, reason: 'test', origin: 'test', ports: [25], protocol: 'tcp',
    ...(action === 'siege-on' ? { siege: { rateLimit: '5/minute', allowlistOnly } } : {}),
  });

  it('siege: a kernel limit on the port for everyone not allowlisted, the allowlisted keep access, siege-off lifts it', async () => {
    assert.deepEqual(await flood('attacker', 25, 20), { connected: 20, refused: 0, timeout: 0 }, 'no limit outside a siege');
    await defences.onDecision(siege('siege-on'));
    const sieged = await flood('attacker', 25, 20);
    assert.ok(sieged.connected >= 3 && sieged.connected <= 6, `about 5 of 20 new connections a minute get through: ${JSON.stringify(sieged)}`);
    assert.equal(sieged.timeout, 20 - sieged.connected);
    assert.deepEqual(await flood('friend', 25, 20), { connected: 20, refused: 0, timeout: 0 }, 'the allowlisted friend is not limited');
    await defences.onDecision(siege('siege-off'));
    assert.deepEqual(await flood('attacker', 25, 20), { connected: 20, refused: 0, timeout: 0 });
  });

  it('siege with allowlist_only: only allowlisted sources get in', async () => {
    await defences.onDecision(siege('siege-on', true));
    assert.deepEqual(await flood('attacker', 25, 5, 1000), { connected: 0, refused: 0, timeout: 5 });
    assert.equal(await topo.probeTcp('friend', server, 25), 'connected');
    await defences.onDecision(siege('siege-off'));
    assert.equal(await topo.probeTcp('attacker', server, 25), 'connected');
  });

  it('setup again keeps the overload sets, the allowlist and a siege in force', async () => {
    await flood('attacker', 80, 40); // banned again in the web jail by the kernel
    await defences.onDecision(siege('siege-on', true));
    await nft.setup(JAILS);
    assert.deepEqual(await overloadElements('web_v4_over'), ['198.51.100.2']);
    assert.equal(await topo.probeTcp('attacker', server, 25, 1000), 'timeout');
    assert.equal(await topo.probeTcp('friend', server, 25), 'connected');
    await defences.onDecision(siege('siege-off'));
  });
});
