import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { configFromFiles } from '../../src/config/load.js';
import type { Logger } from '../../src/core/log.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { EnforcementQueue } from '../../src/daemon/enforcement.js';
import type { BanEntry } from '../../src/enforcers/enforcer.js';
import { commitOrError } from '../../src/state/store-writer.js';
import type { RetryingWriter } from '../../src/state/retrying-writer.js';
import type { LogLine } from '../../src/core/types.js';
import type { SourceBatch } from '../../src/sources/source.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';
import { makeSetup, syslogTime } from '../control/fixture.js';

/**
 * A backlog's decisions reach the firewall while their commit runs (daemon.ts, commitAndEnforce): a
 * drift check in between must neither take out a ban the database does not hold yet nor put back one
 * whose lifting is not committed yet. Any other decision (here a manual ban) waits for its commit.
 */

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

test('a drift check while a commit is under way keeps the firewall as decided', async () => {
  const s = makeSetup('pc-enforce-');
  const config = configFromFiles([{ file: s.config, text: readFileSync(s.config, 'utf8') }]);
  const daemon = new Daemon(config, { log: quiet, dryRun: true, reconcileInterval: 3_600_000 });
  await daemon.start();
  const internals = daemon as unknown as {
    writer: Pick<RetryingWriter, 'mode' | 'unsaved' | 'failing' | 'commit' | 'flush' | 'idle' | 'close'>; queue: EnforcementQueue; commitAndEnforce(extra: object, backlog: boolean): void;
    onBatch(batch: SourceBatch, routed: { source: { id: string }; jailsFor: (s: string) => string[] }): void; tick(): void;
  };
  // What a backlog's commit carries: decisions made from lines still being caught up with.
  const backlogCommit = (decide: () => void): void => {
    decide();
    internals.commitAndEnforce({}, true);
  };
  const queue = internals.queue;
  const enforcer = (queue as unknown as { slots: Array<{ enforcer: { list(): Promise<BanEntry[]> } }> }).slots[0]!.enforcer;
  const inFirewall = async (): Promise<string[]> => {
    await queue.idle();
    return (await enforcer.list()).map((b) => `${b.jail} ${b.target}`);
  };
  const driftCheck = async (): Promise<void> => {
    // A check waits 20× the last one's duration after it: a few ms here.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await queue.reconcileAll();
  };
  // Commits are held until released: the window between enforcing and the commit being done.
  const held: Array<() => void> = [];
  const real = internals.writer;
  internals.writer = {
    mode: 'inline',
    unsaved: () => [],
    failing: () => null,
    commit: (changes, done) => void held.push(() => done(commitOrError(daemon.store, changes, Date.now()))),
    flush: () => { for (const release of held.splice(0)) release(); },
    idle: async () => {},
    close: () => real.close(),
  };
  try {
    backlogCommit(() => daemon.pipeline.manualBan('192.0.2.7', 'sshd', Date.now() + 3_600_000, 'a burst', 'test', Date.now()));
    assert.deepEqual(await inFirewall(), ['sshd 192.0.2.7'], 'enforced before its commit');
    assert.equal(daemon.store.activeBans().length, 0, 'not committed yet');
    await driftCheck();
    assert.deepEqual(await inFirewall(), ['sshd 192.0.2.7'], 'the drift check kept the ban the database does not hold yet');
    internals.writer.flush();
    assert.deepEqual(daemon.store.activeBans().map((b) => b.target), ['192.0.2.7']);

    backlogCommit(() => daemon.pipeline.manualUnban('192.0.2.7', null, 'a burst', 'test'));
    assert.deepEqual(await inFirewall(), [], 'lifted before its commit');
    assert.equal(daemon.store.activeBans().length, 1, 'the lifting is not committed yet');
    await driftCheck();
    assert.deepEqual(await inFirewall(), [], 'the drift check did not put the lifted ban back');
    internals.writer.flush();
    assert.equal(daemon.store.activeBans().length, 0);
    await driftCheck();
    assert.deepEqual(await inFirewall(), []);

    // The once-a-second tick during a backlog leaves the backlog's decisions to the backlog's own commit.
    const parser = new EnvelopeParser();
    const attack = (address: string): LogLine => parser.parse(`${syslogTime()} web1 sshd[7]: Failed password for root from ${address} port 4000 ssh2`, `file:${s.auth}`);
    const routed = { source: { id: `file:${s.auth}` }, jailsFor: () => ['sshd'] };
    internals.onBatch({ lines: ['203.0.113.1', '203.0.113.1', '203.0.113.1'].map(attack), checkpoints: [], more: true }, routed);
    internals.tick();
    assert.equal(held.length, 0, 'no commit made by the tick');
    internals.onBatch({ lines: [attack('203.0.113.2')], checkpoints: [], more: false }, routed);
    assert.equal(held.length, 1, 'the backlog ends in one commit');
    assert.deepEqual(await inFirewall(), ['sshd 203.0.113.1'], 'its ban enforced while the commit runs');
    internals.writer.flush();

    daemon.ban('198.51.100.9', 'sshd', undefined, 'test');
    assert.deepEqual(await inFirewall(), ['sshd 203.0.113.1'], 'a manual ban is enforced once committed');
    // A backlog's ban behind it waits too: the firewall gets decisions in order.
    backlogCommit(() => daemon.pipeline.manualBan('192.0.2.8', 'sshd', Date.now() + 3_600_000, 'a burst', 'test', Date.now()));
    assert.deepEqual(await inFirewall(), ['sshd 203.0.113.1']);
    internals.writer.flush();
    assert.deepEqual((await inFirewall()).sort(), ['sshd 192.0.2.8', 'sshd 198.51.100.9', 'sshd 203.0.113.1']);
  } finally {
    internals.writer.flush();
    internals.writer = real;
    await daemon.stop();
    rmSync(s.dir, { recursive: true, force: true });
  }
});
