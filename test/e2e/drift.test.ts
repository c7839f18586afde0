import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusReport } from '../../src/daemon/daemon.js';
import { runCli, waitFor } from '../helpers/daemon.js';
import { nftBans, startDaemonInServer, tempDir, teardown, type DaemonInNamespace } from '../helpers/e2e.js';
import { createTopology, type Topology } from '../helpers/netns.js';

/**
 * The firewall drifts from the database while the daemon runs: the admin
 * flushes or deletes `table inet portcullis` by hand, or nft is missing. The
 * daemon (nftables, in the server namespace) keeps every ban in its database
 * and puts them back in the kernel — within seconds through its reconcile loop,
 * or as soon as nft is usable again — and `status --json` names the failure.
 */

const cleanup = teardown(after);
let topology: Topology;
let dir: string;
let pc: DaemonInNamespace;
const BANS = ['198.51.100.2', '198.51.100.128/25', '2001:db8:2::2'];

before(async () => {
  dir = tempDir('drift', cleanup);
  topology = await createTopology({ after: cleanup });
  await topology.listen(22);
  const log = join(dir, 'auth.log');
  writeFileSync(log, '');
  pc = await startDaemonInServer(topology, dir, `enforcer: nftables\njails:\n  sshd:\n    enabled: true\n    sources: [{ file: ${log} }]\n`, cleanup);
  for (const target of BANS) {
    const r = await runCli(['ban', target, '--socket', pc.socket]);
    assert.equal(r.code, 0, r.stderr);
  }
});

const inKernel = async (): Promise<string[]> => (await nftBans(topology)).map((b) => b.address).sort();
const allBack = async (): Promise<boolean> =>
  JSON.stringify(await inKernel()) === JSON.stringify([...BANS].sort()) && (await topology.probeTcp('attacker', topology.addresses.server.v4, 22, 500)) === 'timeout';
const context = () => pc.daemon.output();

for (const damage of [['flush', 'table', 'inet', 'portcullis'], ['delete', 'table', 'inet', 'portcullis']]) {
  test(`\`nft ${damage.join(' ')}\` by hand: the bans come back within seconds`, async () => {
    await waitFor(allBack, 10_000, context);
    await topology.exec('server', 'nft', damage);
    // No probe for the gap: the daemon may already have repaired it. Its log proves it saw the damage.
    await waitFor(allBack, 15_000, context);
    assert.match(pc.daemon.output(), /changed outside Portcullis/);
  });
}

test('nft missing: the daemon keeps running and keeps the bans, status shows why, and they are applied once nft is back', async () => {
  assert.equal(await pc.daemon.stop(), 0, context());
  // Bans stay in the kernel over a restart; remove them so only the daemon can bring them back.
  await topology.exec('server', 'nft', ['delete', 'table', 'inet', 'portcullis']);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // A PATH with everything but /usr/sbin and /sbin, where nft lives.
  await pc.restart({ PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` });

  const status = async (): Promise<StatusReport> => {
    const r = await runCli(['status', '--json', '--socket', pc.socket]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as StatusReport;
  };
  const broken = await waitFor(async () => {
    const s = await status();
    return s.enforcers[0]?.lastError ? s : null;
  }, 10_000, context);
  assert.equal(broken.enforcers[0]!.name, 'nftables');
  assert.equal(broken.enforcers[0]!.ready, false);
  assert.match(broken.enforcers[0]!.lastError!, /nft not found: install the nftables package/);
  assert.ok(broken.errors.some((e) => /nft not found/.test(e)), 'listed among the errors');

  // A ban made meanwhile is kept in the database.
  const r = await runCli(['ban', '198.51.100.77', '--socket', pc.socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await pc.banned()).map((b) => b.target).sort(), [...BANS, '198.51.100.77'].sort());
  assert.deepEqual(await inKernel(), []);
  assert.equal(pc.daemon.proc.exitCode, null, 'the daemon is still running');

  symlinkSync('/usr/sbin/nft', join(bin, 'nft'));
  await waitFor(async () => JSON.stringify(await inKernel()) === JSON.stringify([...BANS, '198.51.100.77'].sort()), 20_000, context);
  const healthy = await status();
  assert.equal(healthy.enforcers[0]!.ready, true);
  assert.equal(healthy.enforcers[0]!.lastError, null);
  assert.equal(await topology.probeTcp('attacker', topology.addresses.server.v4, 22), 'timeout');
  assert.equal(await pc.daemon.stop(), 0, context());
});
