import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { callDaemon } from '../../src/control/client.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { createFleet, type FleetNode, type TestFleet } from '../helpers/fleet.js';

/**
 * Three Portcullis nodes, each in its own network namespace with its own
 * nftables, sharing decisions through a real redis-server: propagation of
 * bans and unbans to the other nodes' kernel sets, catching up after being
 * stopped, nothing lost while Redis is down, and fleet-wide failure counting.
 */

let fleet: TestFleet;
let a: FleetNode, b: FleetNode, c: FleetNode;

before(async () => {
  fleet = await createFleet({ nodes: 3, fleet: { count: '[sshd]' } });
  [a, b, c] = fleet.nodes as [FleetNode, FleetNode, FleetNode];
  for (const n of fleet.nodes) await fleet.start(n);
});

after(async () => {
  await fleet?.destroy();
});

const ban = (node: FleetNode, target: string) => callDaemon(node.socket, 'ban', { target, jail: 'sshd' });
const unban = (node: FleetNode, target: string) => callDaemon(node.socket, 'unban', { target });
const inSet = async (node: FleetNode, target: string) => (await fleet.kernelSet(node)).has(target);
const output = () => fleet.nodes.map((n) => `── ${n.name}:\n${n.daemon?.output() ?? '(stopped)'}`).join('\n');

test('a ban made on node A is in B\'s and C\'s kernel sets within one second, with its origin', async () => {
  const started = Date.now();
  await ban(a, '198.51.100.10');
  assert.ok(await inSet(a, '198.51.100.10'));
  const seen: number[] = [];
  for (const n of [b, c]) {
    await waitFor(() => inSet(n, '198.51.100.10'), 5000, output);
    seen.push(Date.now() - started);
  }
  assert.ok(Math.max(...seen) < 1000, `propagated in ${seen.join(', ')} ms`);

  const cli = await runCli(['banned', '--json', '--socket', b.socket]);
  assert.equal(cli.code, 0, cli.stderr);
  const bans = JSON.parse(cli.stdout) as Array<{ target: string; jail: string; origin: string; reason: string; until: string }>;
  const got = bans.find((x) => x.target === '198.51.100.10')!;
  assert.equal(got.origin, 'node-a');
  assert.equal(got.jail, 'sshd');
  assert.match(got.reason, /manual ban by cli \[fleet: node-a \(cli\)\]/);
  const status = await fleet.status(c);
  assert.equal(status.node, 'node-c');
  assert.equal(status.fleet!.bansByOrigin['node-a'], 1);
  assert.deepEqual(status.fleet!.peers.map((p) => p.node), ['node-a', 'node-b']);
  // Nothing echoes back: A holds its own ban once, published once.
  assert.equal((await fleet.status(a)).fleet!.published, 1);
  assert.equal((await fleet.status(b)).fleet!.published, 0);
});

test('an unban propagates', async () => {
  await unban(a, '198.51.100.10');
  for (const n of [a, b, c]) await waitFor(async () => !(await inSet(n, '198.51.100.10')), 5000, output);
  assert.equal(await fleet.redisCli(['hlen', 'portcullis:bans']), '0\n');
});

test('node C stopped during bans catches up when restarted', async () => {
  await ban(a, '198.51.100.20');
  await waitFor(() => inSet(c, '198.51.100.20'), 5000, output);
  await fleet.stop(c);
  for (let i = 21; i <= 25; i++) await ban(i % 2 ? a : b, `198.51.100.${i}`);
  await unban(b, '198.51.100.20');
  await fleet.start(c);
  for (let i = 21; i <= 25; i++) await waitFor(() => inSet(c, `198.51.100.${i}`), 5000, output);
  await waitFor(async () => !(await inSet(c, '198.51.100.20')), 5000, output);
  const banned = (await callDaemon(c.socket, 'banned')) as Array<{ target: string; origin: string }>;
  assert.deepEqual(banned.filter((x) => x.target.startsWith('198.51.100.2')).map((x) => `${x.target} ${x.origin}`).sort(),
    ['198.51.100.21 node-a', '198.51.100.22 node-b', '198.51.100.23 node-a', '198.51.100.24 node-b', '198.51.100.25 node-a']);
});

test('Redis killed and restarted while bans happen loses none', async () => {
  await fleet.killRedis();
  const during = Array.from({ length: 20 }, (_, i) => `203.0.113.${i + 1}`);
  // Local first: every node keeps banning on its own while Redis is away.
  for (const [i, target] of during.entries()) {
    await ban(fleet.nodes[i % 3]!, target);
    assert.ok(await inSet(fleet.nodes[i % 3]!, target), 'enforced locally without Redis');
  }
  await waitFor(async () => (await fleet.status(a)).fleet!.state === 'disconnected', 5000, output);
  assert.ok((await fleet.status(a)).fleet!.outbox > 0, 'queued in the outbox');
  await fleet.startRedis();
  for (const n of fleet.nodes) {
    for (const target of during) await waitFor(() => inSet(n, target), 15_000, () => `${n.name} lacks ${target}\n${output()}`);
  }
  for (const n of fleet.nodes) assert.equal((await fleet.status(n)).fleet!.outbox, 0);
});

test('cross-host counting bans an address whose failures are split across nodes', async () => {
  const now = new Date();
  const stamp = `${now.toLocaleString('en-US', { month: 'short' })} ${String(now.getDate()).padStart(2, ' ')} ${now.toTimeString().slice(0, 8)}`;
  // maxretry is 3: one failure on each node never trips a node on its own.
  for (const [i, n] of fleet.nodes.entries()) {
    appendFileSync(n.authLog, `${stamp} ${n.name} sshd[${100 + i}]: Failed password for root from 198.51.100.77 port ${4000 + i} ssh2\n`);
    await waitFor(async () => (await fleet.status(n)).linesMatched >= 1, 5000, output);
  }
  for (const n of fleet.nodes) await waitFor(() => inSet(n, '198.51.100.77'), 5000, output);
  const bans = (await callDaemon(a.socket, 'banned')) as Array<{ target: string; reason: string }>;
  assert.match(bans.find((x) => x.target === '198.51.100.77')!.reason, /3 failures within 10m across the fleet/);
  for (const n of fleet.nodes) assert.equal((await fleet.status(n)).jails.find((j) => j.name === 'sshd')!.failing, 0, `${n.name}: the local count was cleared by the ban`);
});
