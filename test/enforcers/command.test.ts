import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ExecRunner, RecordingRunner } from '../../src/enforcers/command-runner.js';
import { CommandEnforcer, CommandEnforcerError } from '../../src/enforcers/command.js';
import type { JailFirewallSpec } from '../../src/enforcers/enforcer.js';

function golden(name: string, actual: string): void {
  const file = new URL(`../fixtures/enforcers/${name}.golden`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'));
}

const JAILS: JailFirewallSpec[] = [{ jail: 'sshd', ports: [22, 2222], protocol: 'tcp', verdict: 'drop' }];
const NOW = Date.parse('2025-01-01T00:00:00Z');
const HOSTILE_TARGETS = ['$(touch /tmp/pwned)', '198.51.100.2; rm -rf /', '198.51.100.2 && touch /tmp/pwned', '`id`', '198.51.100.2\n--flush', "1.2.3.4' || '"];

describe('command enforcer', () => {
  it('substitutes placeholders inside each argument, never re-splitting them', async () => {
    const runner = new RecordingRunner();
    const enforcer = new CommandEnforcer({
      ban: ['/usr/local/sbin/edge-block', 'add', '{target}', '--jail={jail}', '--family', '{family}', '--until', '{until}', '--ttl', '{seconds}s', '--ports', '{ports}/{protocol}'],
      unban: ['/usr/local/sbin/edge-block', 'del', '{target}/{prefix}'],
      runner,
      now: () => NOW,
    });
    await enforcer.setup(JAILS);
    await enforcer.apply({
      ban: [
        { target: '198.51.100.2', jail: 'sshd', until: NOW + 3_600_000 },
        { target: '2001:DB8:2:0::2', jail: 'sshd', until: null },
        { target: '203.0.113.0/24', jail: 'sshd', until: NOW + 60_000 },
      ],
      unban: [{ target: '192.0.2.7', jail: 'sshd', until: null }],
    });
    golden('command-argv', runner.transcript());
    assert.deepEqual((await enforcer.list()).map((e) => e.target), ['198.51.100.2', '2001:db8:2::2', '203.0.113.0/24']);
  });

  it('passes values to a shell script as positional arguments, never inside its text', async () => {
    const runner = new RecordingRunner();
    const script = 'ipfw table 1 add "$1"';
    const enforcer = new CommandEnforcer({ ban: { shell: script }, unban: { shell: 'ipfw table 1 delete "$1"' }, runner, now: () => NOW });
    await enforcer.setup(JAILS);
    await enforcer.apply({ ban: [{ target: '198.51.100.2', jail: 'sshd', until: null }], unban: [] });
    assert.deepEqual(runner.calls, [{ command: '/bin/sh', args: ['-c', script, 'portcullis', '198.51.100.2', 'sshd', 'inet', 'never', '0'], input: undefined }]);
  });

  it('refuses hostile targets before running anything, and nothing gets executed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-command-'));
    const pwned = join(dir, 'pwned');
    const log = join(dir, 'banned.log');
    try {
      const runner = new RecordingRunner();
      const recorded = new CommandEnforcer({ ban: ['/bin/echo', '{target}'], unban: ['/bin/echo', '{target}'], runner });
      const real = new CommandEnforcer({ ban: { shell: `printf '%s\\n' "$1" >> '${log}'` }, unban: { shell: 'true' } });
      await recorded.setup(JAILS);
      await real.setup(JAILS);
      for (const hostile of [...HOSTILE_TARGETS, HOSTILE_TARGETS[0]!.replace('/tmp/pwned', pwned)]) {
        for (const enforcer of [recorded, real]) {
          await assert.rejects(enforcer.apply({ ban: [{ target: hostile, jail: 'sshd', until: null }], unban: [] }), /not an IP address or CIDR/);
          await assert.rejects(enforcer.apply({ ban: [], unban: [{ target: hostile, jail: 'sshd', until: null }] }), /not an IP address or CIDR/);
        }
      }
      assert.deepEqual(runner.calls, []);
      assert.equal(existsSync(pwned), false);
      assert.equal(existsSync(log), false);

      // A valid ban does run, and the script sees the target as data.
      await real.apply({ ban: [{ target: '198.51.100.2', jail: 'sshd', until: null }], unban: [] });
      assert.equal(readFileSync(log, 'utf8'), '198.51.100.2\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs argv commands for real without a shell: metacharacters in a template stay literal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-command-'));
    try {
      const enforcer = new CommandEnforcer({ ban: ['/bin/echo', '{target};', 'touch', join(dir, 'pwned'), '$(id)'], unban: ['/bin/true'], runner: new ExecRunner() });
      await enforcer.setup(JAILS);
      await enforcer.apply({ ban: [{ target: '198.51.100.2', jail: 'sshd', until: null }], unban: [] });
      assert.equal(existsSync(join(dir, 'pwned')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects templates that would splice log text or values into shell text', () => {
    assert.throws(() => new CommandEnforcer({ ban: ['/bin/block', '{user}'], unban: ['/bin/true'] }), /unknown placeholder \{user\}/);
    assert.throws(() => new CommandEnforcer({ ban: ['/bin/block', '{reason}'], unban: ['/bin/true'] }), /unknown placeholder \{reason\}/);
    assert.throws(() => new CommandEnforcer({ ban: { shell: 'iptables -I INPUT -s {target} -j DROP' }, unban: ['/bin/true'] }), (err: unknown) => {
      assert.ok(err instanceof CommandEnforcerError);
      assert.match(err.message, /"\$1" \(target\)/);
      return true;
    });
    assert.throws(() => new CommandEnforcer({ ban: [], unban: ['/bin/true'] }), /command is empty/);
  });

  it('reports failed commands after trying every entry', async () => {
    const runner = new RecordingRunner().respond((c) => c.args.includes('198.51.100.3'), { exitCode: 2, stderr: 'quota exceeded' });
    const enforcer = new CommandEnforcer({ ban: ['/bin/block', '{target}'], unban: ['/bin/unblock', '{target}'], runner });
    await enforcer.setup(JAILS);
    await assert.rejects(
      enforcer.apply({ ban: ['198.51.100.3', '198.51.100.4'].map((target) => ({ target, jail: 'sshd', until: null })), unban: [] }),
      /1 enforcer command\(s\) failed: .*quota exceeded/,
    );
    assert.equal(runner.calls.length, 2);
    assert.deepEqual((await enforcer.list()).map((e) => e.target), ['198.51.100.4']);
  });
});
