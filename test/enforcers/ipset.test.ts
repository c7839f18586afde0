import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ExecRunner, type CommandRunner, type RunOptions } from '../../src/enforcers/command-runner.js';
import type { JailFirewallSpec } from '../../src/enforcers/enforcer.js';
import { IpsetEnforcer } from '../../src/enforcers/ipset.js';
import { ADDRESSES, createTopology, waitFor, type Topology } from '../helpers/netns.js';

class CountingRunner implements CommandRunner {
  readonly commands: string[][] = [];
  private readonly inner = new ExecRunner();
  run(command: string, args: readonly string[], options?: RunOptions) {
    this.commands.push([command, ...args]);
    return this.inner.run(command, args, options);
  }
}

const JAILS: JailFirewallSpec[] = [
  { jail: 'sshd', ports: [22], protocol: 'tcp', verdict: 'drop' },
  { jail: 'openvpn', ports: [1194], protocol: 'udp', verdict: 'drop' },
  { jail: 'web', ports: [8080], protocol: 'tcp', verdict: 'reject', flush: 'global' },
];

describe('iptables + ipset enforcer inside network namespaces', () => {
  let topo: Topology;
  let runner: CountingRunner;
  let enforcer: IpsetEnforcer;
  const warnings: string[] = [];
  const { attacker, server } = ADDRESSES;
  const inAnHour = () => Date.now() + 3_600_000;

  before(async () => {
    topo = await createTopology();
    runner = new CountingRunner();
    enforcer = new IpsetEnforcer({ netns: topo.ns.server, runner, onWarning: (m) => warnings.push(m) });
    for (const port of [22, 8080]) await topo.listen(port, 'tcp');
    await topo.listen(1194, 'udp');
    await enforcer.setup(JAILS);
  });
  after(async () => topo?.destroy());

  it('creates one ipset per jail and family and one rule per jail, jumped to from INPUT once', async () => {
    await enforcer.setup(JAILS);
    const v4 = (await topo.exec('server', 'iptables', ['-S'])).stdout;
    assert.equal(v4.match(/-A INPUT -j PORTCULLIS/g)?.length, 1);
    assert.match(v4, /-A PORTCULLIS -p tcp -m multiport --dports 22 -m set --match-set portcullis_sshd_v4 src .*-j DROP/);
    assert.match((await topo.exec('server', 'ip6tables', ['-S'])).stdout, /--match-set portcullis_sshd_v6 src/);
    assert.equal(v4.match(/-A PORTCULLIS/g)?.length, 3);
    const sets = (await topo.exec('server', 'ipset', ['list', '-n'])).stdout.trim().split('\n').sort();
    assert.deepEqual(sets, ['portcullis_openvpn_v4', 'portcullis_openvpn_v6', 'portcullis_sshd_v4', 'portcullis_sshd_v6', 'portcullis_web_v4', 'portcullis_web_v6']);
  });

  it('bans IPv4, IPv6 and a CIDR, blocks the attacker only on the jail port, and unban restores access', async () => {
    await enforcer.apply({
      ban: [
        { target: attacker.v4, jail: 'sshd', until: inAnHour() },
        { target: attacker.v6, jail: 'sshd', until: null },
        { target: '198.51.100.0/24', jail: 'openvpn', until: inAnHour() },
      ],
      unban: [],
    });
    const listed = (await enforcer.list()).sort((a, b) => a.target.localeCompare(b.target));
    assert.deepEqual(listed.map((e) => [e.target, e.jail, e.until === null]), [
      ['198.51.100.0/24', 'openvpn', false],
      ['198.51.100.2', 'sshd', false],
      ['2001:db8:2::2', 'sshd', true],
    ]);
    assert.ok(Math.abs(listed[1]!.until! - inAnHour()) < 5000);

    assert.equal(await topo.probeTcp('attacker', server.v4, 22, 700), 'timeout');
    assert.equal(await topo.probeTcp('attacker', server.v6, 22, 700), 'timeout');
    assert.equal(await topo.probeUdp('attacker', server.v4, 1194, 700), 'timeout');
    assert.equal(await topo.probeTcp('friend', server.v4, 22), 'connected');
    assert.equal(await topo.probeUdp('friend', server.v4, 1194), 'reply');
    assert.equal(await topo.probeTcp('attacker', server.v4, 8080), 'connected');
    assert.ok((await enforcer.counters()).find((c) => c.jail === 'sshd')!.packets >= 2);

    await enforcer.apply({ ban: [], unban: listed });
    assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'connected');
    assert.equal(await topo.probeTcp('attacker', server.v6, 22), 'connected');
    assert.equal(await topo.probeUdp('attacker', server.v4, 1194), 'reply');
  });

  it('reconcile adds what is missing and removes what is unknown', async () => {
    await enforcer.apply({ ban: [{ target: '192.0.2.200', jail: 'sshd', until: null }], unban: [{ target: '192.0.2.201', jail: 'sshd', until: null }] });
    const wanted = [
      { target: '10.0.0.0/8', jail: 'sshd', until: inAnHour() },
      { target: '10.1.2.3', jail: 'sshd', until: null },
      { target: '2001:db8:9::/48', jail: 'web', until: inAnHour() },
    ];
    assert.deepEqual(await enforcer.reconcile(wanted), { added: 3, removed: 1 });
    assert.deepEqual(await enforcer.reconcile(wanted), { added: 0, removed: 0 });
    assert.deepEqual((await enforcer.list()).map((e) => e.target).sort(), ['10.0.0.0/8', '10.1.2.3', '2001:db8:9::/48']);
    await enforcer.reconcile([]);
    assert.deepEqual(await enforcer.list(), []);
  });

  it('reconcile rebuilds a chain or jump removed by hand, so the bans block again', async (t) => {
    const wanted = [{ target: attacker.v4, jail: 'sshd', until: inAnHour() }];
    t.after(async () => {
      await enforcer.reconcile([]);
      warnings.length = 0;
    });
    for (const damage of [['-F', 'PORTCULLIS'], ['-D', 'INPUT', '-j', 'PORTCULLIS']]) {
      await enforcer.reconcile(wanted);
      assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'timeout', 'banned before the damage');
      await topo.exec('server', 'iptables', ['-w', ...damage]);
      assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'connected', `iptables ${damage.join(' ')} lifted the ban`);
      warnings.length = 0;
      await enforcer.reconcile(wanted);
      assert.match(warnings.join('\n'), /changed outside/);
      assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'timeout', `not blocking again after iptables ${damage.join(' ')}`);
    }
  });

  it('applies 10,000 bans with one ipset restore', async () => {
    const bans = Array.from({ length: 10_000 }, (_, i) => ({
      target: i % 2 === 0 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `2001:db8:ffff::${i.toString(16)}`,
      jail: 'sshd',
      until: i % 10 === 0 ? null : inAnHour(),
    }));
    const before = runner.commands.length;
    const started = process.hrtime.bigint();
    await enforcer.apply({ ban: bans, unban: [] });
    console.log(`# 10,000 bans in one ipset restore: ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms`);
    assert.deepEqual(runner.commands.slice(before), [['ip', 'netns', 'exec', topo.ns.server, 'ipset', '-exist', 'restore']]);
    const listed = await enforcer.list();
    assert.equal(listed.length, 10_000);
    assert.equal(listed.filter((e) => e.until === null).length, 1000);
    await enforcer.apply({ ban: [], unban: bans });
    assert.deepEqual(await enforcer.list(), []);
  });

  it('lets the kernel expire a ban at its end', async () => {
    await enforcer.apply({ ban: [{ target: '192.0.2.99', jail: 'sshd', until: Date.now() + 2000 }], unban: [] });
    assert.equal((await enforcer.list()).length, 1);
    await waitFor('the 2 s ban to expire', async () => (await enforcer.list()).length === 0, 6000, 200);
  });

  it('rejects with a reset and flushes the established connection in a flush jail', async () => {
    const connection = await topo.openTcp('attacker', server.v4, 8080);
    try {
      const outcome = Promise.race([connection.closed, new Promise((r) => setTimeout(() => r('still open'), 5000))]);
      await enforcer.apply({ ban: [{ target: attacker.v4, jail: 'web', until: inAnHour() }], unban: [] });
      assert.equal(await outcome, 'ECONNRESET');
      assert.equal(await topo.probeTcp('attacker', server.v4, 8080), 'refused');
      assert.deepEqual(warnings, []);
    } finally {
      connection.close();
    }
  });

  it('teardown removes the chain, the jumps and the sets', async () => {
    await enforcer.teardown();
    assert.doesNotMatch((await topo.exec('server', 'iptables', ['-S'])).stdout, /PORTCULLIS/);
    assert.doesNotMatch((await topo.exec('server', 'ip6tables', ['-S'])).stdout, /PORTCULLIS/);
    assert.equal((await topo.exec('server', 'ipset', ['list', '-n'])).stdout.trim(), '');
    await enforcer.teardown();
  });
});
