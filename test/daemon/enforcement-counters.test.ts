import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnforcementQueue } from '../../src/daemon/enforcement.js';
import type { Enforcer, JailCounters, JailFirewallSpec } from '../../src/enforcers/enforcer.js';

/**
 * Reading the firewall's counters lists every set's elements with nft 1.0.6 (63 s at a million bans):
 * callers share a read under way, and a read that took T is reused for 20 T.
 */

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** An enforcer whose counter reads take `readMs` each and are counted. */
function slowCounters(readMs: number): Enforcer & { reads: number } {
  let packets = 0;
  const enforcer = {
    name: 'fake', reads: 0,
    setup: async () => {}, apply: async () => {}, list: async () => [], reconcile: async () => ({ added: 0, removed: 0 }), teardown: async () => {},
    counters: async (): Promise<JailCounters[]> => {
      enforcer.reads++;
      await new Promise((resolve) => setTimeout(resolve, readMs));
      packets += 10;
      return [{ jail: 'sshd', packets, bytes: packets * 60 }];
    },
  };
  return enforcer;
}

const spec: JailFirewallSpec = { jail: 'sshd', ports: [22], protocol: 'tcp', verdict: 'drop' };

test('counter reads are shared while under way and reused for 20× their duration', async () => {
  const enforcer = slowCounters(50);
  const queue = new EnforcementQueue([{ enforcer, jails: [spec] }], () => [], quiet);
  await queue.start();
  try {
    const [a, b, c] = await Promise.all([queue.counters(), queue.counters(), queue.counters()]);
    assert.equal(enforcer.reads, 1, 'three callers, one read');
    assert.deepEqual([a, b, c].map((r) => r[0]!.packets), [10, 10, 10]);
    const first = a[0]!.sampledAt;
    // Within 20 × 50 ms of that read, its figures again (with when they were read).
    await new Promise((resolve) => setTimeout(resolve, 200));
    const again = await queue.counters();
    assert.equal(enforcer.reads, 1);
    assert.deepEqual(again.map((r) => [r.packets, r.sampledAt, r.enforcer]), [[10, first, 'fake']]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const later = await queue.counters();
    assert.equal(enforcer.reads, 2);
    assert.equal(later[0]!.packets, 20);
    assert.ok(later[0]!.sampledAt > first);
  } finally {
    await queue.stop({ teardown: false });
  }
});
