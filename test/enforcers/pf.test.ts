import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RecordingRunner } from '../../src/enforcers/command-runner.js';
import type { JailFirewallSpec } from '../../src/enforcers/enforcer.js';
import { PfEnforcer, PfEnforcerError, pfRules } from '../../src/enforcers/pf.js';

/** Compares with test/fixtures/enforcers/NAME.golden; UPDATE_GOLDEN=1 rewrites it. */
function golden(name: string, actual: string): void {
  const file = new URL(`../fixtures/enforcers/${name}.golden`, import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'));
}

const JAILS: JailFirewallSpec[] = [
  { jail: 'sshd', ports: [22], protocol: 'tcp', verdict: 'drop', flush: 'global' },
  { jail: 'openvpn', ports: [1194], protocol: 'udp', verdict: 'reject' },
  { jail: 'web', ports: [80, 443], protocol: 'all', verdict: 'drop' },
  { jail: 'recidive', ports: null, protocol: 'all', verdict: 'drop' },
  { jail: 'api', ports: [8081], protocol: 'tcp', verdict: 'throttle', throttleRate: '10/minute' },
];
const NOW = Date.parse('2025-01-01T00:00:00Z');

describe('pf enforcer (recorded pfctl commands)', () => {
  it('prints the pf.conf snippet: persistent tables and a block quick rule per jail', () => {
    golden('pf-rules', pfRules(JAILS));
  });

  it('batches adds and deletes per jail and kills the states of offenders in flush jails', async () => {
    const runner = new RecordingRunner();
    const pf = new PfEnforcer({ runner, now: () => NOW, batchSize: 3 });
    await pf.setup(JAILS);
    await pf.apply({
      ban: [
        { target: '198.51.100.2', jail: 'sshd', until: NOW + 3_600_000 },
        { target: '2001:DB8:2::2', jail: 'sshd', until: null },
        { target: '198.51.100.0/24', jail: 'web', until: NOW + 60_000 },
        ...['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4'].map((target) => ({ target, jail: 'recidive', until: null })),
      ],
      unban: [{ target: '192.0.2.9', jail: 'openvpn', until: null }],
    });
    golden('pf-apply', runner.transcript());
  });

  it('lists table contents with the end times it knows, and expires due bans itself', async () => {
    let now = NOW;
    const runner = new RecordingRunner().respond('pfctl -t portcullis_sshd -T show', { stdout: '   198.51.100.2\n   10.0.0.0/24\n' });
    const pf = new PfEnforcer({ runner, now: () => now });
    await pf.setup([JAILS[0]!]);
    await pf.apply({ ban: [{ target: '198.51.100.2', jail: 'sshd', until: NOW + 1000 }], unban: [] });
    assert.deepEqual(await pf.list(), [
      { target: '198.51.100.2', jail: 'sshd', until: NOW + 1000 },
      { target: '10.0.0.0/24', jail: 'sshd', until: null },
    ]);
    now += 2000;
    assert.equal(await pf.expire(), 1);
    assert.deepEqual(runner.calls.at(-1)?.args, ['-t', 'portcullis_sshd', '-T', 'delete', '198.51.100.2']);
  });

  it('reconcile adds what is missing and removes what is unknown', async () => {
    const runner = new RecordingRunner().respond('pfctl -t portcullis_sshd -T show', { stdout: '   198.51.100.2\n   10.0.0.0/24\n' });
    const pf = new PfEnforcer({ runner, now: () => NOW });
    await pf.setup([JAILS[0]!]);
    const result = await pf.reconcile([
      { target: '198.51.100.2', jail: 'sshd', until: null },
      { target: '2001:db8::/32', jail: 'sshd', until: null },
    ]);
    assert.deepEqual(result, { added: 1, removed: 1 });
    golden('pf-reconcile', runner.transcript());
  });

  it('tells the admin to load the rules when a table is missing', async () => {
    const runner = new RecordingRunner().respond('pfctl', { exitCode: 1, stderr: 'pfctl: Table does not exist.' });
    await assert.rejects(new PfEnforcer({ runner }).setup([JAILS[0]!]), (err: unknown) => {
      assert.ok(err instanceof PfEnforcerError);
      assert.match(err.message, /portcullis print-pf-rules/);
      return true;
    });
  });

  it('refuses targets that are not addresses before running anything', async () => {
    const runner = new RecordingRunner();
    const pf = new PfEnforcer({ runner });
    await pf.setup([JAILS[0]!]);
    const setupCalls = runner.calls.length;
    await assert.rejects(pf.apply({ ban: [{ target: '-F all', jail: 'sshd', until: null }], unban: [] }), /not an IP address or CIDR/);
    assert.equal(runner.calls.length, setupCalls);
  });
});
