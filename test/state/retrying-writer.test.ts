import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Decision } from '../../src/core/types.js';
import { createLogger } from '../../src/core/log.js';
import { FailureRows, Store, type StateChanges } from '../../src/state/store.js';
import { RetryingWriter } from '../../src/state/retrying-writer.js';
import { AdaptiveWriter, ThreadWriter, type CommitDone, type StateWriter } from '../../src/state/store-writer.js';
import { mountSmallDisk } from '../helpers/small-disk.js';

/** Batches that fail on a full disk are kept and committed again, in order, without moving a position back. */

const ban = (target: string, evidence: string[] = []): Decision =>
  ({ action: 'ban', target, jail: 'sshd', time: 5000, until: Date.now() + 3_600_000, reason: 'r', origin: 'n', evidence });

const failures = (first: number, n: number): FailureRows =>
  FailureRows.of(Array.from({ length: n }, (_, i) => ({ id: first + i, jail: 'sshd', address: '192.0.2.1', time: 1000 + first + i, line: `line ${first + i}` })));

/** Holds each commit until the test answers it: the order and contents the writer hands in. */
class HeldWriter implements StateWriter {
  readonly mode = 'inline';
  readonly held: Array<{ changes: StateChanges; done: CommitDone }> = [];
  commit(changes: StateChanges, done: CommitDone): void {
    this.held.push({ changes, done });
  }
  /** Answers the oldest commit: on disk, or failed (transient unless said). */
  answer(outcome: 'ok' | 'full' | 'bug'): StateChanges {
    const { changes, done } = this.held.shift()!;
    done(outcome === 'ok' ? null : { message: outcome, transient: outcome === 'full', changes });
    return changes;
  }
  flush(): void {}
  async idle(): Promise<void> {}
  async close(): Promise<void> {}
}

const positions = (c: StateChanges): string[] => (c.checkpoints ?? []).map((p) => `${p.key}=${p.value}`);
const targets = (w: RetryingWriter): string[] => w.unsaved().flatMap((d) => (d.bans ?? []).map((b) => b.target));

test('batches behind a failed one are kept behind it untried; a round hands them in again in order; no position is written back', () => {
  const inner = new HeldWriter();
  const logged: string[] = [];
  const writer = new RetryingWriter(inner, createLogger({ write: (l) => logged.push(l), timestamps: false }), { firstRetryMs: 0 });
  const outcomes: Array<string | null> = [];
  const done: CommitDone = (f) => outcomes.push(f?.message ?? null);

  // B was handed in before A's failure was heard of and went through (as after the writer thread was lost).
  writer.commit({ checkpoints: [{ key: 'auth', value: '1' }], bans: [ban('192.0.2.1')] }, done);
  writer.commit({ checkpoints: [{ key: 'auth', value: '2' }, { key: 'vpn', value: '2' }], bans: [ban('192.0.2.2')] }, done);
  inner.answer('full');
  inner.answer('ok');
  assert.deepEqual(targets(writer), ['192.0.2.1'], 'the failed batch\'s ban is what the database lacks');

  // C comes while A is kept: kept behind it, and its caller hears the failure at once. The round hands in both.
  writer.commit({ unbans: [{ jail: 'sshd', target: '192.0.2.1', time: 6000, reason: 'manual' }] }, done);
  assert.deepEqual(outcomes, ['full', null, 'full']);
  assert.equal(inner.held.length, 2);
  assert.deepEqual(positions(inner.held[0]!.changes), [], 'auth=1 is older than auth=2, already written');
  assert.deepEqual(inner.held.map((h) => [h.changes.bans?.length ?? 0, h.changes.unbans?.length ?? 0]), [[1, 0], [0, 1]]);
  assert.deepEqual(targets(writer), ['192.0.2.1'], 'still unsaved while handed in again');

  // Both fail again (the thread does not try C behind A): kept in their order, decisions listed in it.
  inner.answer('full');
  inner.answer('full');
  assert.deepEqual(writer.unsaved().map((d) => [d.bans?.length ?? 0, d.unbans?.length ?? 0]), [[1, 0], [0, 1]]);
  writer.commit({ checkpoints: [{ key: 'vpn', value: '3' }] }, done);
  assert.deepEqual(inner.held.map((h) => positions(h.changes)), [[], [], ['vpn=3']]);
  inner.answer('ok');
  inner.answer('ok');
  assert.ok(!logged.some((l) => /writable again/.test(l)), 'not all saved yet');
  inner.answer('ok');
  assert.deepEqual(writer.unsaved(), []);
  assert.match(logged.join('\n'), /state database writable again: the 3 batch\(es\) kept meanwhile are saved$/m);
  // Batches are handed in as they come again.
  writer.commit({ checkpoints: [{ key: 'auth', value: '4' }] }, done);
  assert.deepEqual(positions(inner.answer('ok')), ['auth=4']);
  assert.deepEqual(outcomes, ['full', null, 'full', 'full', null]);
});

test('on this thread a round stops at the first batch that fails again; retries come less often while the disk stays full', () => {
  let full = true;
  const tried: string[] = [];
  const inline: StateWriter = {
    mode: 'inline',
    commit: (changes, done) => {
      tried.push(changes.checkpoints?.[0]?.value ?? '-');
      done(full ? { message: 'full', transient: true, changes } : null);
    },
    flush: () => {}, idle: async () => {}, close: async () => {},
  };
  const writer = new RetryingWriter(inline, createLogger({ write: () => {}, timestamps: false }), { firstRetryMs: 50 });
  for (const value of ['a', 'b', 'c']) writer.commit({ checkpoints: [{ key: `k${value}`, value }] }, () => {});
  assert.deepEqual(tried, ['a'], 'b and c kept behind a, untried');
  const start = Date.now();
  while (Date.now() - start < 60);
  writer.commit({}, () => {});
  assert.deepEqual(tried, ['a', 'a'], 'the round stopped at a');
  writer.commit({}, () => {});
  assert.deepEqual(tried, ['a', 'a'], 'the next round waits twice as long');
  full = false;
  while (Date.now() - start < 170);
  writer.commit({}, () => {});
  assert.deepEqual(tried, ['a', 'a', 'a', 'b', 'c']);
  assert.deepEqual(writer.unsaved(), []);
});

test('a batch that fails for a reason other than the disk is not kept; the failure rows kept are bounded, the decisions are not', () => {
  const inner = new HeldWriter();
  const logged: string[] = [];
  const writer = new RetryingWriter(inner, createLogger({ write: (l) => logged.push(l), timestamps: false }), { maxKeptRows: 10, firstRetryMs: 0 });
  writer.commit({ bans: [ban('192.0.2.9')] }, () => {});
  inner.answer('bug');
  assert.deepEqual(writer.unsaved(), []);

  for (let i = 0; i < 3; i++) {
    writer.commit({ failuresAdded: failures(1 + i * 6, 6), bans: [ban(`192.0.2.${i + 1}`)] }, () => {});
    while (inner.held.length > 0) inner.answer('full');
  }
  assert.deepEqual(targets(writer), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  writer.commit({}, () => {});
  const rows = inner.held.map((h) => h.changes.failuresAdded?.ids ?? []);
  assert.deepEqual(rows, [[], [], [13, 14, 15, 16, 17, 18]], 'the oldest rows were let go');
  assert.equal(logged.filter((l) => /more than 10 failure records wait for it/.test(l)).length, 1, 'warned once');
  while (inner.held.length > 0) inner.answer('ok');
  assert.match(logged.join('\n'), /the 3 batch\(es\) kept meanwhile are saved, but for 12 failure record\(s\) let go/);
});

for (const busy of [false, true]) {
  test(`on a real full disk, committing ${busy ? 'on the writer thread' : 'on this thread'}: the batches are saved once space is freed, evidence filled in once`, async () => {
    const disk = mountSmallDisk();
    const store = Store.open(disk.dir);
    const logged: string[] = [];
    const log = createLogger({ write: (l) => logged.push(l), timestamps: false });
    const writer = new RetryingWriter(new AdaptiveWriter(store, log), log, { firstRetryMs: 0 });
    try {
      const outcomes: Array<string | null> = [];
      const done: CommitDone = (f) => outcomes.push(f === null ? null : f.transient ? 'kept' : f.message);
      writer.commit({ failuresAdded: failures(1, 3) }, done, busy);
      await writer.idle();
      disk.fill();
      // A ban whose evidence is two stored lines (placeholders) and one of its own batch.
      const evidence = ['', '', 'line 4'];
      writer.commit({
        failuresAdded: failures(4, 2), failuresConsumed: [4], bans: [ban('192.0.2.1', evidence)], evidenceToRead: [{ lines: evidence, ids: [1, 3] }],
        checkpoints: [{ key: 'auth', value: 'a' }],
      }, done, busy);
      writer.commit({ failuresAdded: failures(6, 2), checkpoints: [{ key: 'auth', value: 'b' }] }, done, busy);
      writer.flush();
      assert.deepEqual(outcomes, [null, 'kept', 'kept']);
      assert.deepEqual(targets(writer), ['192.0.2.1']);
      assert.deepEqual(store.activeBans(), []);
      assert.deepEqual(evidence, ['', '', 'line 4'], 'placeholders kept for the next try');
      writer.commit({}, done, busy); // what the daemon's tick does each second
      writer.flush();
      assert.deepEqual(targets(writer), ['192.0.2.1'], 'still full: still kept');

      disk.free();
      writer.commit({ checkpoints: [{ key: 'vpn', value: 'c' }] }, done, busy);
      writer.flush();
      writer.commit({}, done, busy); // the next tick: positions held back while batches were kept go with it
      writer.flush();
      await writer.idle();
      assert.deepEqual(writer.unsaved(), []);
      assert.deepEqual(store.activeBans().map((b) => [b.target, b.evidence]), [['192.0.2.1', ['line 1', 'line 3', 'line 4']]]);
      assert.deepEqual(evidence, ['line 1', 'line 3', 'line 4']);
      assert.deepEqual(store.failuresSince(0).map((f) => f.id), [1, 2, 3, 5, 6, 7]);
      assert.equal(store.getPosition('auth'), 'b');
      assert.equal(store.getPosition('vpn'), 'c');
      assert.match(logged.join('\n'), /state database writable again: the 3 batch\(es\) kept meanwhile are saved/);
    } finally {
      await writer.close();
      store.close();
      disk.remove();
    }
  });
}

test('on a disk with a little space: a batch handed to the writer thread before the failure of the one ahead of it was heard of is not tried', async () => {
  const disk = mountSmallDisk();
  const store = Store.open(disk.dir);
  const quiet = createLogger({ write: () => {}, timestamps: false });
  const thread = new ThreadWriter(store, quiet);
  const writer = new RetryingWriter(thread, quiet, { firstRetryMs: 0 });
  try {
    const outcomes: Array<string | null> = [];
    const done: CommitDone = (f) => outcomes.push(f === null ? null : f.transient ? 'kept' : f.message);
    writer.commit({ failuresAdded: failures(1, 1), checkpoints: [{ key: 'auth', value: 'start' }] }, done);
    writer.flush();
    // Room for a small commit, not for a large one.
    disk.fill();
    disk.free(64);
    const big = FailureRows.of(Array.from({ length: 3000 }, (_, i) => ({ id: 100 + i, jail: 'sshd', address: '192.0.2.1', time: 2000 + i, line: 'x'.repeat(200) })));
    writer.commit({ failuresAdded: big, checkpoints: [{ key: 'auth', value: 'a' }] }, done);
    // The thread has failed it, and this thread has not heard yet: the next one goes in now.
    const doneSeq = (thread as unknown as { doneSeq: Int32Array }).doneSeq;
    const until = Date.now() + 10_000;
    while (Atomics.load(doneSeq, 0) < 2 && Date.now() < until) Atomics.wait(doneSeq, 0, 1, 100);
    assert.equal(Atomics.load(doneSeq, 0), 2);
    writer.commit({ failuresAdded: failures(5000, 1), checkpoints: [{ key: 'auth', value: 'b' }] }, done);
    writer.flush();
    assert.deepEqual(outcomes, [null, 'kept', 'kept']);
    assert.equal(store.getPosition('auth'), 'start', 'no position past the lines of the batch that failed');

    disk.free();
    writer.commit({}, done);
    writer.flush();
    writer.commit({}, done);
    writer.flush();
    assert.deepEqual(writer.unsaved(), []);
    assert.equal(store.getPosition('auth'), 'b');
    assert.equal(store.failuresSince(0).length, 3002);
  } finally {
    await writer.close();
    store.close();
    disk.remove();
  }
});
