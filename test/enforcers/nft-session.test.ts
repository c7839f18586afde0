import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CommandFailedError } from '../../src/enforcers/command-runner.js';
import { NftablesEnforcer } from '../../src/enforcers/nftables.js';
import { NftSession, NftSessionLostError } from '../../src/enforcers/nft-session.js';
import { createTopology, waitFor, type Topology } from '../helpers/netns.js';

describe('nft -i co-process inside a network namespace', () => {
  let topo: Topology;
  let session: NftSession;

  before(async () => {
    topo = await createTopology();
    await topo.exec('server', 'nft', ['-f', '-'], { input: 'add table inet t\nadd set inet t s { type ipv4_addr; flags timeout; }\n' });
    session = new NftSession({ netns: topo.ns.server });
  });
  after(async () => {
    session?.close();
    await topo?.destroy();
  });

  const elements = async (): Promise<string[]> => {
    const { stdout } = await topo.exec('server', 'nft', ['-j', 'list', 'set', 'inet', 't', 's']);
    const set = (JSON.parse(stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((i) => i.set)?.set;
    return (set?.elem ?? []).map((e) => (typeof e === 'string' ? e : (e as { elem: { val: string } }).elem.val)).sort();
  };

  it('applies batches, each one line and one transaction', async () => {
    await session.run(['add element inet t s { 192.0.2.10 timeout 1h }', 'add element inet t s { 192.0.2.11 }']);
    await session.run(['add element inet t s { 192.0.2.12 }']);
    assert.deepEqual(await elements(), ['192.0.2.10', '192.0.2.11', '192.0.2.12']);
  });

  it('reports a refused batch with nft\'s message, applies none of it, and carries on', async () => {
    const pid = session.pid;
    await assert.rejects(
      session.run(['add element inet t s { 192.0.2.20 }', 'add element inet t nosuch { 192.0.2.21 }']),
      (err: Error) => err instanceof CommandFailedError && /No such file or directory/.test(err.stderr) && /nosuch/.test(err.stderr),
    );
    await session.run(['add element inet t s { 192.0.2.22 }']);
    assert.equal(session.pid, pid, 'the same co-process answers after an error');
    const now = await elements();
    assert.ok(now.includes('192.0.2.22'));
    assert.ok(!now.includes('192.0.2.20'), 'a refused batch is all or nothing');
  });

  it('starts a new co-process when the old one died, and after `recycleAfter` batches', async () => {
    await session.run(['add element inet t s { 192.0.2.30 }']);
    const first = session.pid!;
    process.kill(first, 'SIGKILL');
    // A batch written before the exit is noticed is reported lost (the enforcer then uses nft -f -).
    await waitFor('the session to notice the exit', () => session.pid === undefined);
    await session.run(['add element inet t s { 192.0.2.31 }']);
    assert.notEqual(session.pid, first);
    const recycled = new NftSession({ netns: topo.ns.server, recycleAfter: 5 });
    const pids = new Set<number>();
    for (let i = 0; i < 6; i++) {
      await recycled.run([`add element inet t s { 192.0.2.${40 + i} }`]);
      if (recycled.pid !== undefined) pids.add(recycled.pid);
    }
    recycled.close();
    assert.equal(pids.size, 2, 'replaced after 5 batches');
    assert.ok((await elements()).includes('192.0.2.45'));
  });

  it('reports a co-process that dies during a batch as lost, not as applied or refused', async () => {
    const dying = new NftSession({ command: ['sh', '-c', 'read line; exit 3'] });
    await assert.rejects(dying.run(['add element inet t s { 192.0.2.50 }']), NftSessionLostError);
    const missing = new NftSession({ command: ['/nonexistent/nft', '-i'] });
    await assert.rejects(missing.run(['add element inet t s { 192.0.2.51 }']), NftSessionLostError);
  });

  it('the enforcer applies a batch with nft -f - when its co-process is lost, and reports kernel errors from either path', async () => {
    const warnings: string[] = [];
    const broken = new NftablesEnforcer({ netns: topo.ns.server, session: new NftSession({ command: ['sh', '-c', 'read line; exit 3'] }), onWarning: (m) => warnings.push(m) });
    const jails = [{ jail: 'sshd', ports: [22], protocol: 'tcp' as const, verdict: 'drop' as const }];
    await broken.setup(jails);
    await broken.apply({ ban: [{ target: '198.51.100.60', jail: 'sshd', until: Date.now() + 3_600_000 }], unban: [] });
    assert.deepEqual((await broken.list()).map((b) => b.target), ['198.51.100.60']);
    assert.ok(warnings.some((w) => /nft -i exited \(code 3\).*nft -f -/.test(w)), warnings.join('\n'));

    const working = new NftablesEnforcer({ netns: topo.ns.server });
    await working.setup(jails);
    await working.apply({ ban: [{ target: '198.51.100.61', jail: 'sshd', until: null }], unban: [] });
    assert.deepEqual((await working.list()).map((b) => b.target).sort(), ['198.51.100.60', '198.51.100.61']);
    await topo.exec('server', 'nft', ['delete', 'set', 'inet', 'portcullis', 'sshd_v4']).catch(() => {});
    // The set is referenced by rules, so delete the chain first to be able to remove it.
    await topo.exec('server', 'nft', ['-f', '-'], { input: 'flush chain inet portcullis input\ndelete set inet portcullis sshd_v4\n' });
    await assert.rejects(
      working.apply({ ban: [{ target: '198.51.100.62', jail: 'sshd', until: null }], unban: [] }),
      (err: Error) => err instanceof CommandFailedError && /No such file or directory/.test(err.stderr),
    );
    working.close();
  });
});
