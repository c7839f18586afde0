import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { Decision } from '../../src/core/types.js';
import { createLogger } from '../../src/core/log.js';
import { FailureRows, Store, type StateChanges } from '../../src/state/store.js';
import { AdaptiveWriter, ThreadWriter, createStateWriter } from '../../src/state/store-writer.js';

/** The writer thread (store-writer.ts): commits in order beside the caller, answers in order, fills in evidence. */

const ban = (target: string, time: number, evidence: string[]): Decision =>
  ({ action: 'ban', target, jail: 'sshd', time, until: time + 60_000, reason: 'r', origin: 'n', evidence });

const failures = (first: number, n: number, address = '192.0.2.1'): FailureRows =>
  FailureRows.of(Array.from({ length: n }, (_, i) => ({ id: first + i, jail: 'sshd', address, time: 1000 + first + i, line: `line ${first + i}` })));

function withStore(run: (store: Store, writer: ThreadWriter, logged: string[]) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pc-writer-'));
    const store = Store.open(dir);
    const logged: string[] = [];
    const writer = new ThreadWriter(store, createLogger({ write: (l) => logged.push(l), timestamps: false }));
    try {
      await run(store, writer, logged);
    } finally {
      await writer.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('commits are made in order on the writer thread; each done runs in order, after which this thread reads them', withStore(async (store, writer) => {
  const done: number[] = [];
  const seen: number[] = [];
  for (let i = 0; i < 50; i++) {
    writer.commit({ failuresAdded: failures(1 + i * 10, 10), checkpoints: [{ key: 'k', value: String(i) }] }, (error) => {
      assert.equal(error, null);
      done.push(i);
      seen.push(store.nextFailureId() - 1);
    });
  }
  await writer.idle();
  assert.deepEqual(done, Array.from({ length: 50 }, (_, i) => i));
  // When batch i is done, its rows (ids up to 10·(i+1)) are visible here; a group may have made later ones visible too.
  seen.forEach((last, i) => assert.ok(last >= 10 * (i + 1), `batch ${i}: last id ${last}`));
  assert.equal(store.getPosition('k'), '49');
  assert.equal(store.failuresSince(0).length, 500);
}));

test('a ban\'s older evidence is read by the writer thread and filled into the caller\'s arrays before done', withStore(async (store, writer) => {
  writer.commit({ failuresAdded: failures(1, 3) }, () => {});
  // The ban's evidence: two stored lines (placeholders) and one of its own batch.
  const evidence = ['', '', 'line 4'];
  const changes: StateChanges = { failuresAdded: failures(4, 1), failuresConsumed: [4], bans: [ban('192.0.2.1', 5000, evidence)], evidenceToRead: [{ lines: evidence, ids: [1, 3] }] };
  let filled: string[] | null = null;
  writer.commit(changes, () => (filled = [...evidence]));
  await writer.idle();
  assert.deepEqual(filled, ['line 1', 'line 3', 'line 4']);
  assert.deepEqual(store.activeBans()[0]!.evidence, ['line 1', 'line 3', 'line 4']);
}));

test('flush blocks until every commit is done; more than 16 waiting make commit wait', withStore(async (store, writer) => {
  const done: number[] = [];
  for (let i = 0; i < 40; i++) writer.commit({ failuresAdded: failures(1 + i * 1000, 1000) }, () => done.push(i));
  // No turn of the event loop yet: only the waits inside commit() have run done callbacks.
  assert.ok(done.length >= 40 - 16, `${done.length} done`);
  writer.flush();
  assert.equal(done.length, 40);
  assert.equal(store.failuresSince(0).length, 40_000);
}));

test('a batch that fails is reported with its error; the batches around it are committed', withStore(async (store, writer) => {
  const results: Array<string | null> = [];
  writer.commit({ failuresAdded: failures(1, 5) }, (e) => results.push(e?.message ?? null));
  writer.commit({ failuresAdded: failures(3, 5) }, (e) => results.push(e?.message ?? null)); // ids 3..7: 3 to 5 exist
  writer.commit({ failuresAdded: failures(6, 5) }, (e) => results.push(e?.message ?? null));
  writer.flush();
  assert.equal(results[0], null);
  assert.match(results[1]!, /cannot write to the state database .*state\.db: UNIQUE constraint failed.*nothing from this batch was saved/);
  assert.equal(results[2], null);
  assert.deepEqual(store.failuresSince(0).map((f) => f.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
}));

test('if the writer thread dies, what it had not finished and everything later is committed on this thread', withStore(async (store, writer, logged) => {
  const worker = (writer as unknown as { worker: Worker }).worker;
  await worker.terminate();
  const results: Array<string | null> = [];
  writer.commit({ failuresAdded: failures(1, 5) }, (e) => results.push(e?.message ?? null));
  await writer.idle();
  writer.commit({ failuresAdded: failures(6, 5) }, (e) => results.push(e?.message ?? null));
  await writer.idle();
  assert.deepEqual(results, [null, null]);
  assert.equal(store.failuresSince(0).length, 10);
  assert.match(logged.join('\n'), /the state writer thread exited .*committing on the main thread from now on/);
}));

test('an in-memory store is written on the calling thread; a file store adaptively', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-writer-'));
  const onDisk = Store.open(dir);
  assert.equal(createStateWriter(onDisk, createLogger({ write: () => {} })).mode, 'adaptive');
  onDisk.close();
  rmSync(dir, { recursive: true, force: true });
  const store = Store.open(':memory:');
  const writer = createStateWriter(store, createLogger({ write: () => {} }));
  assert.equal(writer.mode, 'inline');
  let done = false;
  writer.commit({ failuresAdded: failures(1, 2) }, () => (done = true));
  assert.ok(done);
  assert.equal(store.failuresSince(0).length, 2);
  store.close();
});

test('the adaptive writer commits here while the daemon keeps up, on a thread during a backlog, in order, and stops the idle thread', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-writer-'));
  const store = Store.open(dir);
  const writer = new AdaptiveWriter(store, createLogger({ write: () => {} }), 200);
  try {
    const done: string[] = [];
    writer.commit({ failuresAdded: failures(1, 1) }, () => done.push('quiet 1'));
    assert.deepEqual(done, ['quiet 1'], 'a commit without a backlog is made at once, here');
    assert.equal(writer.threaded, false);
    writer.commit({ failuresAdded: failures(2, 1) }, () => done.push('busy 2'), true);
    assert.equal(writer.threaded, true);
    // Not busy, but the thread still has one: it goes after it, to the thread.
    writer.commit({ failuresAdded: failures(3, 1) }, () => done.push('quiet 3'));
    assert.deepEqual(done, ['quiet 1']);
    await writer.idle();
    assert.deepEqual(done, ['quiet 1', 'busy 2', 'quiet 3']);
    writer.commit({ failuresAdded: failures(4, 1) }, () => done.push('quiet 4'));
    assert.equal(done.at(-1), 'quiet 4', 'with the thread idle, a quiet commit is made here again');
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(writer.threaded, false, 'the thread stops after the idle time');
    assert.deepEqual(store.failuresSince(0).map((f) => f.id), [1, 2, 3, 4]);
  } finally {
    await writer.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
