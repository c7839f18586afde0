import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CommandNotFoundError, ExecRunner, type CommandRunner, type RunOptions } from '../../src/enforcers/command-runner.js';
import type { JailFirewallSpec } from '../../src/enforcers/enforcer.js';
import { NftablesEnforcer } from '../../src/enforcers/nftables.js';
import { createTopology, waitFor, type Topology } from '../helpers/netns.js';

/** Counts real commands so a test can assert "one transaction". */
class CountingRunner implements CommandRunner {
  readonly commands: string[][] = [];
  private readonly inner = new ExecRunner();
  run(command: string, args: readonly string[], options?: RunOptions) {
    this.commands.push([command, ...args]);
    return this.inner.run(command, args, options);
  }
}

const JAILS: JailFirewallSpec[] = [
  { jail: 'sshd', ports: [22], protocol: 'tcp', verdict: 'drop', refreshOnHit: 60_000 },
  { jail: 'openvpn', ports: [1194], protocol: 'udp', verdict: 'drop' },
  { jail: 'web', ports: [8080], protocol: 'tcp', verdict: 'reject', flush: 'global' },
  { jail: 'api', ports: [8081], protocol: 'all', verdict: 'throttle', throttleRate: '2/minute' },
];

describe('nftables enforcer inside network namespaces', () => {
  let topo: Topology;
  let runner: CountingRunner;
  let nft: NftablesEnforcer;
  const warnings: string[] = [];
  const { attacker, friend, server } = { attacker: { v4: '198.51.100.2', v6: '2001:db8:2::2' }, friend: { v4: '203.0.113.2' }, server: { v4: '192.0.2.1', v6: '2001:db8:1::1' } };
  const inAnHour = () => Date.now() + 3_600_000;

  before(async () => {
    topo = await createTopology();
    runner = new CountingRunner();
    nft = new NftablesEnforcer({ netns: topo.ns.server, runner, onWarning: (m) => warnings.push(m) });
    for (const port of [22, 8080, 8081]) await topo.listen(port, 'tcp');
    await topo.listen(1194, 'udp');
    await nft.setup(JAILS);
  });
  after(async () => topo?.destroy());

  const setElements = async (set: string): Promise<unknown[]> => {
    const { stdout } = await topo.exec('server', 'nft', ['-j', 'list', 'set', 'inet', 'portcullis', set]);
    const items = (JSON.parse(stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
    return items.find((i) => i.set)?.set?.elem ?? [];
  };

  it('bans IPv4, IPv6 and a CIDR with timeouts, visible in the kernel and in list()', async () => {
    await nft.apply({
      ban: [
        { target: attacker.v4, jail: 'sshd', until: inAnHour() },
        { target: attacker.v6, jail: 'sshd', until: null },
        { target: '198.51.100.128/25', jail: 'sshd', until: inAnHour() },
      ],
      unban: [],
    });
    const v4 = await setElements('sshd_v4');
    assert.equal(v4.length, 1);
    assert.deepEqual((v4[0] as { elem: { val: string; timeout: number } }).elem.val, attacker.v4);
    assert.ok(Math.abs((v4[0] as { elem: { timeout: number } }).elem.timeout - 3600) <= 2);
    assert.deepEqual(await setElements('sshd_v6'), [attacker.v6]);
    const nets = await setElements('sshd_v4_net');
    assert.deepEqual((nets[0] as { elem: { val: unknown } }).elem.val, { prefix: { addr: '198.51.100.128', len: 25 } });

    const listed = (await nft.list()).sort((a, b) => a.target.localeCompare(b.target));
    assert.deepEqual(listed.map((e) => [e.target, e.jail, e.until === null ? 'permanent' : 'timed']), [
      ['198.51.100.128/25', 'sshd', 'timed'],
      ['198.51.100.2', 'sshd', 'timed'],
      ['2001:db8:2::2', 'sshd', 'permanent'],
    ]);
    assert.ok(Math.abs(listed[1]!.until! - inAnHour()) < 5000);
  });

  it('setup again adopts the existing sets without losing bans', async () => {
    await nft.setup(JAILS);
    assert.equal((await nft.list()).length, 3);
  });

  it('blocks the banned attacker on the jail port only, lets the friend in, and unban restores access', async () => {
    assert.equal(await topo.probeTcp('attacker', server.v4, 22, 700), 'timeout');
    assert.equal(await topo.probeTcp('attacker', server.v6, 22, 700), 'timeout');
    assert.equal(await topo.probeTcp('friend', server.v4, 22), 'connected');
    assert.equal(await topo.probeTcp('attacker', server.v4, 8080), 'connected', 'other jails and ports are not affected');

    const counters = await nft.counters();
    assert.ok(counters.find((c) => c.jail === 'sshd')!.packets >= 2, 'blocked packets are counted per jail');

    // refresh_on_hit: the blocked packets put the attacker in the hot set; unban clears it too.
    assert.deepEqual((await setElements('sshd_v4_hot')).map((e) => (e as { elem: { val: string } }).elem.val), [attacker.v4]);
    await nft.apply({ ban: [], unban: [{ target: attacker.v4, jail: 'sshd', until: null }, { target: attacker.v6, jail: 'sshd', until: null }, { target: '198.51.100.128/25', jail: 'sshd', until: null }] });
    assert.deepEqual(await setElements('sshd_v4_hot'), []);
    assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'connected');
    assert.equal(await topo.probeTcp('attacker', server.v6, 22), 'connected');
  });

  it('blocks UDP for a udp jail and answers a reject jail with a reset', async () => {
    assert.equal(await topo.probeUdp('attacker', server.v4, 1194), 'reply');
    await nft.apply({ ban: [{ target: attacker.v4, jail: 'openvpn', until: inAnHour() }], unban: [] });
    assert.equal(await topo.probeUdp('attacker', server.v4, 1194, 700), 'timeout');
    assert.equal(await topo.probeUdp('friend', server.v4, 1194), 'reply');

    await nft.apply({ ban: [{ target: '198.51.100.0/24', jail: 'web', until: inAnHour() }], unban: [] });
    assert.equal(await topo.probeTcp('attacker', server.v4, 8080), 'refused');
    await nft.apply({ ban: [], unban: [{ target: '198.51.100.0/24', jail: 'web', until: null }, { target: attacker.v4, jail: 'openvpn', until: null }] });
  });

  it('throttles new connections from a banned source instead of dropping them', async () => {
    await nft.apply({ ban: [{ target: attacker.v4, jail: 'api', until: inAnHour() }], unban: [] });
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) outcomes.push(await topo.probeTcp('attacker', server.v4, 8081, 700));
    assert.deepEqual(outcomes.slice(0, 2), ['connected', 'connected']);
    assert.ok(outcomes.slice(2).includes('timeout'), `later connections are limited: ${outcomes.join(', ')}`);
    assert.equal(await topo.probeTcp('friend', server.v4, 8081), 'connected');
    await nft.apply({ ban: [], unban: [{ target: attacker.v4, jail: 'api', until: null }] });
  });

  it('unban of an absent element does not fail the batch, and a re-ban sets the new timeout', async () => {
    await nft.apply({ ban: [{ target: '192.0.2.77', jail: 'sshd', until: inAnHour() }], unban: [{ target: '192.0.2.78', jail: 'sshd', until: null }, { target: '10.9.0.0/16', jail: 'sshd', until: null }] });
    await nft.apply({ ban: [{ target: '192.0.2.77', jail: 'sshd', until: Date.now() + 7_200_000 }], unban: [] });
    const [element] = await setElements('sshd_v4');
    assert.ok(Math.abs((element as { elem: { timeout: number } }).elem.timeout - 7200) <= 2);
  });

  it('a re-ban sets the new end, shorter, longer or permanent, whether or not the kernel updates timeouts on add', async () => {
    const legacy = new NftablesEnforcer({ netns: topo.ns.server, reAddSetsTimeout: false });
    await legacy.setup(JAILS);
    // The probe leaves nothing behind: setup again finds only our own sets.
    assert.ok(!(await topo.exec('server', 'nft', ['list', 'table', 'inet', 'portcullis'])).stdout.includes('timeout_probe'));
    const timeoutOf = async (address: string): Promise<number | null> => {
      const found = (await setElements('sshd_v4')).find((e) => (typeof e === 'string' ? e : (e as { elem: { val: string } }).elem.val) === address);
      assert.ok(found !== undefined, `${address} is in the set`);
      return typeof found === 'string' ? null : (found as { elem: { timeout: number } }).elem.timeout;
    };
    for (const [enforcer, address] of [[nft, '192.0.2.91'], [legacy, '192.0.2.92']] as const) {
      for (const [until, seconds] of [[Date.now() + 7_200_000, 7200], [Date.now() + 600_000, 600], [null, null], [Date.now() + 1_800_000, 1800]] as const) {
        await enforcer.apply({ ban: [{ target: address, jail: 'sshd', until }], unban: [] });
        const timeout = await timeoutOf(address);
        if (seconds === null) assert.equal(timeout, null, `${address} permanent`);
        else assert.ok(timeout !== null && Math.abs(timeout - seconds) <= 2, `${address}: timeout ${timeout}, wanted ${seconds}`);
      }
      await enforcer.apply({ ban: [], unban: [{ target: address, jail: 'sshd', until: null }] });
    }
    legacy.close();
  });

  it('writes every target in its canonical form, in the set of its family', async () => {
    const odd = [
      { target: '::ffff:198.51.100.61', jail: 'sshd', until: null },
      { target: '2001:DB8:0:0::0:61', jail: 'sshd', until: null },
      { target: '198.51.100.62', jail: 'sshd', until: null },
    ];
    await nft.apply({ ban: odd, unban: [] });
    assert.ok((await setElements('sshd_v4')).includes('198.51.100.61'));
    assert.ok((await setElements('sshd_v6')).includes('2001:db8::61'));
    await nft.apply({ ban: [], unban: odd });
    const left = [...(await setElements('sshd_v4')), ...(await setElements('sshd_v6'))];
    assert.ok(!left.some((e) => ['198.51.100.61', '198.51.100.62', '2001:db8::61'].includes(e as string)), JSON.stringify(left));
  });

  it('folds a network nested in a banned network into the outer one', async () => {
    await nft.apply({ ban: [{ target: '10.0.0.0/16', jail: 'sshd', until: inAnHour() }], unban: [] });
    await nft.apply({ ban: [{ target: '10.0.5.0/24', jail: 'sshd', until: null }], unban: [] });
    const nets = (await nft.list()).filter((e) => e.target.includes('/'));
    assert.deepEqual(nets, [{ target: '10.0.0.0/16', jail: 'sshd', until: null }]);
  });

  it('reconcile adds what is missing and removes what is unknown', async () => {
    const wanted = [
      { target: '192.0.2.77', jail: 'sshd', until: inAnHour() },
      { target: '203.0.113.50', jail: 'sshd', until: null },
      { target: '2001:db8:9::/48', jail: 'openvpn', until: inAnHour() },
      { target: '10.0.0.0/16', jail: 'sshd', until: null },
      { target: '10.0.7.0/24', jail: 'sshd', until: null },
    ];
    assert.deepEqual(await nft.reconcile(wanted), { added: 2, removed: 0 });
    assert.deepEqual(await nft.reconcile(wanted.slice(1)), { added: 0, removed: 1 });
    assert.deepEqual(await nft.reconcile(wanted.slice(1)), { added: 0, removed: 0 });
    assert.deepEqual((await nft.list()).map((e) => e.target).sort(), ['10.0.0.0/16', '2001:db8:9::/48', '203.0.113.50']);
    await nft.reconcile([]);
    assert.deepEqual(await nft.list(), []);
  });

  it('load after setup replaces the ban sets with the database\'s in one transaction, without listing them', async () => {
    await nft.apply({ ban: [{ target: '192.0.2.66', jail: 'sshd', until: inAnHour() }, { target: '198.51.100.0/24', jail: 'web', until: null }], unban: [] });
    await topo.exec('server', 'nft', ['add', 'element', 'inet', 'portcullis', 'openvpn_v6', '{', '2001:db8:77::1', '}']);
    const wanted = [
      { target: attacker.v4, jail: 'sshd', until: inAnHour() },
      { target: '2001:db8:9::/48', jail: 'openvpn', until: inAnHour() },
      { target: '10.0.0.0/16', jail: 'sshd', until: null },
      { target: '10.0.7.0/24', jail: 'sshd', until: null },
    ];
    await nft.setup(JAILS);
    const before = runner.commands.length;
    assert.deepEqual(await nft.load(wanted), { added: 3, removed: 0, reloaded: true });
    assert.deepEqual(runner.commands.slice(before).map((c) => c.slice(4).join(' ')), ['nft -f -'], 'one transaction, no listing');
    assert.deepEqual((await nft.list()).map((e) => `${e.jail} ${e.target}`).sort(), ['openvpn 2001:db8:9::/48', 'sshd 10.0.0.0/16', `sshd ${attacker.v4}`]);
    assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'timeout', 'the loaded ban blocks');
    await nft.load([]);
    assert.deepEqual(await nft.list(), []);
  });

  it('reconcile rebuilds a table flushed or deleted by hand, so the bans block again', async (t) => {
    const wanted = [{ target: attacker.v4, jail: 'sshd', until: inAnHour() }];
    t.after(async () => {
      await nft.reconcile([]);
      warnings.length = 0;
    });
    for (const damage of [['flush', 'table', 'inet', 'portcullis'], ['flush', 'chain', 'inet', 'portcullis', 'input'], ['delete', 'table', 'inet', 'portcullis']]) {
      await nft.reconcile(wanted);
      assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'timeout', 'banned before the damage');
      await topo.exec('server', 'nft', damage);
      assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'connected', `${damage.join(' ')} lifted the ban`);
      warnings.length = 0;
      // `flush table` empties the chains but (nft 1.0) keeps set elements; `delete table` loses both.
      await nft.reconcile(wanted);
      assert.deepEqual((await nft.list()).map((e) => e.target), [attacker.v4], damage.join(' '));
      assert.match(warnings.join('\n'), /changed outside Portcullis/);
      assert.equal(await topo.probeTcp('attacker', server.v4, 22), 'timeout', `not blocking again after ${damage.join(' ')}`);
    }
  });

  it('applies 10,000 bans in one nft transaction', async () => {
    const bans = Array.from({ length: 10_000 }, (_, i) => ({
      target: i % 2 === 0 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `2001:db8:ffff::${i.toString(16)}`,
      jail: 'sshd',
      until: i % 10 === 0 ? null : inAnHour(),
    }));
    const before = runner.commands.length;
    const started = process.hrtime.bigint();
    await nft.apply({ ban: bans, unban: [] });
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`# 10,000 bans in one nft -f transaction: ${elapsedMs.toFixed(0)} ms`);
    assert.deepEqual(runner.commands.slice(before), [['ip', 'netns', 'exec', topo.ns.server, 'nft', '-f', '-']]);
    const listed = await nft.list();
    assert.equal(listed.length, 10_000);
    assert.equal(listed.filter((e) => e.until === null).length, 1000);
    assert.deepEqual(new Set(listed.map((e) => e.target)), new Set(bans.map((b) => b.target)));
    await nft.apply({ ban: [], unban: bans });
    assert.deepEqual(await nft.list(), []);
  });

  it('lets the kernel expire a ban at its end', async () => {
    await nft.apply({ ban: [{ target: '192.0.2.99', jail: 'sshd', until: Date.now() + 2000 }], unban: [] });
    assert.equal((await nft.list()).length, 1);
    await waitFor('the 2 s ban to expire', async () => (await nft.list()).length === 0, 6000, 200);
  });

  it('flush cuts the established connection of an offender banned in a flush jail', async () => {
    const connection = await topo.openTcp('attacker', server.v4, 8080);
    try {
      const outcome = Promise.race([connection.closed, new Promise((r) => setTimeout(() => r('still open'), 5000))]);
      await nft.apply({ ban: [{ target: attacker.v4, jail: 'web', until: inAnHour() }], unban: [] });
      assert.equal(await outcome, 'ECONNRESET');
      assert.deepEqual(warnings, []);
    } finally {
      connection.close();
    }
  });

  it('setup describes the table without listing its elements, drops a jail with its counter, and falls back to the full listing', async () => {
    const old: JailFirewallSpec = { jail: 'old', ports: [2222], protocol: 'tcp', verdict: 'drop' };
    const table = async (): Promise<string> => (await topo.exec('server', 'nft', ['-j', 'list', 'table', 'inet', 'portcullis'])).stdout;
    const before = runner.commands.length;
    await nft.setup([...JAILS, old]);
    // `list table` fetches every element with nft 1.0.6 (a minute at a million bans); these do not.
    const listings = runner.commands.slice(before).map((c) => c.slice(4).join(' ')).filter((c) => / list /.test(c));
    assert.deepEqual(listings, ['nft -j -t list sets table inet portcullis', 'nft -j list chains']);
    assert.match(await table(), /"old_blocked"/);
    await nft.setup(JAILS);
    assert.doesNotMatch(await table(), /"old_/, 'the dropped jail\'s sets and counter are gone');
    // Its counter deleted by hand (its rules first): the inferred description is wrong, and the full listing decides.
    await nft.setup([...JAILS, old]);
    await topo.exec('server', 'nft', ['flush', 'chain', 'inet', 'portcullis', 'input', ';', 'delete', 'counter', 'inet', 'portcullis', 'old_blocked']);
    await nft.setup(JAILS);
    const after = await table();
    assert.doesNotMatch(after, /"old_/);
    assert.match(after, /"sshd_v4"/);
    assert.match(after, /"rule"/, 'the chains have their rules again');
  });

  it('teardown removes the table, and list() of a missing table is empty', async () => {
    await nft.teardown();
    const { stdout } = await topo.exec('server', 'nft', ['list', 'tables']);
    assert.equal(stdout.trim(), '');
    assert.deepEqual(await nft.list(), []);
    await nft.teardown();
  });
});

describe('nftables enforcer without nft', () => {
  it('says how to fix a missing nft binary', async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await assert.rejects(new NftablesEnforcer().setup(JAILS), (err: unknown) => {
        assert.ok(err instanceof CommandNotFoundError);
        assert.equal(err.message, 'nft not found: install the nftables package, or set enforcer: dry-run');
        return true;
      });
    } finally {
      process.env.PATH = savedPath;
    }
  });
});

describe('nftables enforcer on a kernel that keeps an element\'s timeout on add', () => {
  /** Answers like nft on Linux before 6.10: the re-added probe elements keep their first timeout. */
  class OldKernelNft implements CommandRunner {
    readonly scripts: string[] = [];
    async run(_command: string, args: readonly string[], options?: RunOptions) {
      if (args[0] === '-f') this.scripts.push(options?.input ?? '');
      const probeListing = { nftables: [{ set: { name: 'timeout_probe', elem: ['192.0.2.1', '192.0.2.2'].map((val) => ({ elem: { val, timeout: 3600, expires: 3599 } })) } }] };
      const stdout = args.includes('timeout_probe') ? JSON.stringify(probeListing) : args[0] === '-j' ? '{"nftables":[]}' : '';
      return { exitCode: 0, stdout, stderr: '' };
    }
  }

  it('finds out at setup and re-bans with a delete before the add', async () => {
    const runner = new OldKernelNft();
    const nft = new NftablesEnforcer({ runner });
    await nft.setup(JAILS);
    assert.match(runner.scripts.at(-1)!, /^delete set inet portcullis timeout_probe$/m, 'the probe set is removed');
    runner.scripts.length = 0;
    await nft.apply({ ban: [{ target: '198.51.100.7', jail: 'openvpn', until: Date.now() + 60_000 }], unban: [] });
    assert.deepEqual(runner.scripts[0]!.trim().split('\n').map((l) => l.replace(/ \{.*/, '')), [
      'add element inet portcullis openvpn_v4', 'delete element inet portcullis openvpn_v4', 'add element inet portcullis openvpn_v4',
    ]);
  });
});
