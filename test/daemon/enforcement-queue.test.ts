import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EnforcementQueue } from '../../src/daemon/enforcement.js';
import type { Decision } from '../../src/core/types.js';
import type { BanEntry, Enforcer, JailFirewallSpec } from '../../src/enforcers/enforcer.js';

/** What reaches an enforcer: the latest change per jail and target, and a failed batch again under newer changes. */

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const spec = (jail: string): JailFirewallSpec => ({ jail, ports: [22], protocol: 'tcp', verdict: 'drop' });
const decision = (action: 'ban' | 'unban', target: string, jail = 'sshd'): Decision =>
  ({ action, target, jail, time: 0, until: null, reason: 'test', origin: 'local' });
const names = (entries: BanEntry[]): string[] => entries.map((e) => `${e.jail} ${e.target}`).sort();

test('changes queued while a batch runs: the latest per jail and target; a failed batch goes back under newer ones', async () => {
  const applied: Array<{ ban: string[]; unban: string[] }> = [];
  let finishFirst!: (failure: Error) => void;
  const enforcer: Enforcer = {
    name: 'fake',
    setup: async () => {}, list: async () => [], reconcile: async () => ({ added: 0, removed: 0 }), teardown: async () => {},
    apply: async ({ ban, unban }) => {
      applied.push({ ban: names(ban), unban: names(unban) });
      if (applied.length === 1) await new Promise<void>((_, reject) => (finishFirst = reject));
    },
  };
  const queue = new EnforcementQueue([{ enforcer, jails: [spec('sshd'), spec('web')] }], () => [], quiet);
  await queue.start();
  try {
    queue.submit([decision('ban', '192.0.2.1'), decision('ban', '192.0.2.4')]);
    // While the first batch runs:
    queue.submit([decision('ban', '192.0.2.2'), decision('unban', '192.0.2.1'), decision('ban', '192.0.2.1', 'web')]);
    queue.submit([decision('ban', '192.0.2.3'), decision('unban', '192.0.2.3')]);
    assert.equal(queue.health()[0]!.pending, 4, 'one change per jail and target');
    finishFirst(new Error('nft: Operation not permitted'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(queue.health()[0]!.pending, 5, 'the failed batch is back, except where a newer change stands');
    // Retried after a second, once set up and reconciled again.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal(applied.length, 2);
    assert.deepEqual(applied[1], {
      ban: ['sshd 192.0.2.2', 'sshd 192.0.2.4', 'web 192.0.2.1'],
      unban: ['sshd 192.0.2.1', 'sshd 192.0.2.3'],
    });
  } finally {
    await queue.stop({ teardown: false });
  }
});

test('a ban applied while a drift check runs is applied again after it, since the check took it out', async () => {
  const inKernel = new Set<string>();
  let releaseCheck!: () => void;
  let checkStarted!: () => void;
  const started = new Promise<void>((resolve) => (checkStarted = resolve));
  // The first reconcile is the start's; the drift check after it is held until released.
  let hold = false;
  const enforcer: Enforcer = {
    name: 'fake',
    setup: async () => {}, list: async () => [], teardown: async () => {},
    apply: async ({ ban, unban }) => {
      for (const e of ban) inKernel.add(e.target);
      for (const e of unban) inKernel.delete(e.target);
    },
    // Like a real check: the firewall is made what was wanted when the check began.
    reconcile: async (wanted) => {
      if (hold) {
        checkStarted();
        await new Promise<void>((resolve) => (releaseCheck = resolve));
      }
      const removed = [...inKernel].filter((t) => !wanted.some((w) => w.target === t));
      inKernel.clear();
      for (const w of wanted) inKernel.add(w.target);
      return { added: 0, removed: removed.length };
    },
  };
  const wanted: BanEntry[] = [{ target: '192.0.2.1', jail: 'sshd', until: null }];
  const queue = new EnforcementQueue([{ enforcer, jails: [spec('sshd')] }], () => [...wanted], quiet);
  await queue.start();
  try {
    hold = true;
    const check = queue.reconcileAll();
    await started;
    // Committed and enforced while the check lists the firewall; an unban too.
    wanted.push({ target: '192.0.2.2', jail: 'sshd', until: null });
    queue.submit([decision('ban', '192.0.2.2'), decision('ban', '192.0.2.3'), decision('unban', '192.0.2.3')]);
    await queue.idle();
    assert.ok(inKernel.has('192.0.2.2'));
    releaseCheck();
    await check;
    await queue.idle();
    assert.deepEqual([...inKernel].sort(), ['192.0.2.1', '192.0.2.2']);
  } finally {
    await queue.stop({ teardown: false });
  }
});
