import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordingRunner } from '../../src/enforcers/command-runner.js';
import { DryRunEnforcer } from '../../src/enforcers/dry-run.js';
import { ConnectionFlusher } from '../../src/enforcers/flush.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');

describe('dry-run enforcer', () => {
  it('logs what it would do and remembers it for list and reconcile', async () => {
    let now = NOW;
    const lines: string[] = [];
    const dry = new DryRunEnforcer({ log: (l) => lines.push(l), now: () => now });
    await dry.setup([{ jail: 'sshd', ports: [22], protocol: 'tcp', verdict: 'drop', flush: 'global' }]);
    await dry.apply({ ban: [{ target: '198.51.100.2', jail: 'sshd', until: NOW + 1000 }, { target: '2001:DB8::1', jail: 'sshd', until: null }], unban: [] });
    assert.deepEqual(lines, [
      'dry-run: would set up jail sshd: drop tcp port 22, flush global',
      'dry-run: would ban 198.51.100.2 in jail sshd until 2025-01-01T00:00:01.000Z',
      'dry-run: would ban 2001:db8::1 in jail sshd permanently',
    ]);
    now += 2000;
    assert.deepEqual((await dry.list()).map((e) => e.target), ['2001:db8::1']);
    assert.deepEqual(await dry.reconcile([{ target: '192.0.2.1', jail: 'sshd', until: null }]), { added: 1, removed: 1 });
    assert.deepEqual(await dry.list(), [{ target: '192.0.2.1', jail: 'sshd', until: null }]);
  });

  it('logs a flood\'s batch as its first ten bans and a count, and still remembers every one', async () => {
    const lines: string[] = [];
    const dry = new DryRunEnforcer({ log: (l) => lines.push(l), now: () => NOW });
    await dry.apply({ ban: Array.from({ length: 2500 }, (_, i) => ({ target: `10.0.${i >> 8}.${i & 255}`, jail: 'sshd', until: null })), unban: [] });
    assert.equal(lines.length, 11);
    assert.equal(lines[9], 'dry-run: would ban 10.0.0.9 in jail sshd permanently');
    assert.equal(lines[10], 'dry-run: would ban 2,490 more addresses in this batch (not logged one by one)');
    assert.equal((await dry.list()).length, 2500);
  });
});

describe('connection flusher (recorded commands)', () => {
  it('global: forgets every tracked flow and kills every local socket of the offender', async () => {
    const runner = new RecordingRunner().respond('ip netns exec guest conntrack', { exitCode: 1, stderr: '0 flow entries have been deleted.' });
    await new ConnectionFlusher({ runner, netns: 'guest' }).flush({ target: '2001:db8:2::/64', scope: 'global' });
    assert.deepEqual(runner.calls.map((c) => [c.command, ...c.args].join(' ')), [
      'ip netns exec guest conntrack -D -f ipv6 -s 2001:db8:2::/64',
      'ip netns exec guest ss -K -n -t -u dst [2001:db8:2::/64]',
    ]);
  });

  it('rule: limits both to the jail ports and protocol', async () => {
    const runner = new RecordingRunner();
    await new ConnectionFlusher({ runner }).flush({ target: '198.51.100.2', scope: 'rule', ports: [22, 2222], protocol: 'tcp' });
    assert.deepEqual(runner.calls.map((c) => [c.command, ...c.args].join(' ')), [
      'conntrack -D -f ipv4 -s 198.51.100.2 -p tcp --dport 22',
      'conntrack -D -f ipv4 -s 198.51.100.2 -p tcp --dport 2222',
      'ss -K -n -t dst 198.51.100.2 and ( sport = :22 or sport = :2222 )',
    ]);
  });

  it('reports a missing tool together with the other failures', async () => {
    const runner = new RecordingRunner().respond('conntrack', { exitCode: 127 });
    await assert.rejects(new ConnectionFlusher({ runner }).flush({ target: '198.51.100.2', scope: 'global' }), /conntrack not found: install the conntrack package/);
    assert.equal(runner.calls.length, 2, 'ss still ran');
  });
});
