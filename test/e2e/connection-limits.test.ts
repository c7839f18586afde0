import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startDaemonInServer, teardown, tempDir } from '../helpers/e2e.js';
import { waitFor } from '../helpers/daemon.js';
import { createTopology } from '../helpers/netns.js';

const cleanup = teardown(after);

/** N connections at once from one process; a connection counts as accepted when the handshake completes. */
const FLOOD = `
const net = require('node:net');
const [host, port, count] = process.argv.slice(1);
const result = { connected: 0, refused: 0, timeout: 0 };
let pending = Number(count);
const done = (what, s) => { if (s.counted) return; s.counted = true; result[what]++; s.destroy(); if (--pending === 0) { console.log(JSON.stringify(result)); process.exit(0); } };
for (let i = 0; i < Number(count); i++) {
  const s = net.connect({ host, port: Number(port) });
  s.once('connect', () => done('connected', s));
  // A reset after the handshake (the source was banned a moment later) still counts as accepted; a refused SYN does not.
  s.on('error', (e) => done(e.code === 'ECONNRESET' ? 'connected' : e.code === 'ECONNREFUSED' ? 'refused' : 'timeout', s));
  setTimeout(() => done('timeout', s), 1500);
}`;

/**
 * The seed's pf rule on Linux, through the daemon: a connection flood with no
 * log line at all is banned by the kernel, and the daemon records the ban
 * (database, status, explain), cuts the offender's other connections (flush
 * global), and lets the allowlisted friend (a `file:` entry) flood freely.
 */
test('nftables connection limits: the kernel bans a connection flood, the daemon records it and flushes, the allowlisted friend floods freely', async () => {
  const topo = await createTopology();
  cleanup(() => topo.destroy());
  const dir = tempDir('limits', cleanup);
  writeFileSync(join(dir, 'access.log'), '');
  writeFileSync(join(dir, 'friends.txt'), '# the friend from the topology\n203.0.113.2\n');
  for (const port of [80, 8080]) await topo.listen(port);
  const flood = async (role: 'attacker' | 'friend', count: number) => {
    const child = topo.spawn(role, process.execPath, ['-e', FLOOD, '192.0.2.1', '80', String(count)]);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise((resolve) => child.once('exit', resolve));
    return JSON.parse(out) as { connected: number; refused: number; timeout: number };
  };

  const d = await startDaemonInServer(topo, dir, `enforcer: nftables
jails:
  sshd: { enabled: false }
  web:
    filters: [nginx-http-auth]
    sources: [{ file: ${join(dir, 'access.log')} }]
    ports: [80]
    action: reject
    flush: global
    limits: { max_src_conn: 50, max_src_conn_rate: 10/5s, overload: { bantime: 1h } }
    allowlist: [{ file: ${join(dir, 'friends.txt')} }]
`, cleanup);

  const other = await topo.openTcp('attacker', '192.0.2.1', 8080);
  const storm = await flood('attacker', 40);
  assert.ok(storm.connected >= 8 && storm.connected <= 15, `about 10 of 40 accepted: ${JSON.stringify(storm)}`);
  assert.equal(storm.refused, 40 - storm.connected);

  const bans = await waitFor(async () => {
    const list = await d.banned();
    return list.length > 0 ? list : null;
  }, 10_000, () => `no ban recorded:\n${d.daemon.output()}`);
  assert.deepEqual(bans.map((b) => [b.target, b.jail]), [['198.51.100.2', 'web']]);
  const why = await d.explain('198.51.100.2');
  assert.equal(why.bans[0]!.origin, 'kernel');
  assert.match(why.bans[0]!.reason, /connection limits: more than 50 connections at once or more than 10 new connections within 5s to port 80 \(kernel overload\)/);
  assert.ok(Math.abs(Date.parse(why.bans[0]!.until!) - (Date.now() + 3_600_000)) < 30_000);
  const status = await d.status();
  assert.equal(status.jails.find((j) => j.name === 'web')!.bannedNow, 1);
  assert.deepEqual(status.allowlist?.sources.map((s) => [s.entry, s.networks, s.problem]), [[`file:${join(dir, 'friends.txt')}`, 1, null]]);
  assert.match(d.daemon.output(), /\[web\] ban 198\.51\.100\.2 for .*connection limits/);

  // flush: global — the attacker's connection to another port was cut when the ban was recorded.
  assert.equal(await other.closed, 'ECONNRESET');
  assert.equal(await topo.probeTcp('attacker', '192.0.2.1', 8080), 'connected', 'the ban itself covers the jail port only');

  assert.deepEqual(await flood('friend', 40), { connected: 40, refused: 0, timeout: 0 });
  assert.equal((await d.banned()).length, 1);
});
