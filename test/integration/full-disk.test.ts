import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { configFromFiles } from '../../src/config/load.js';
import { createLogger } from '../../src/core/log.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { EnforcementQueue } from '../../src/daemon/enforcement.js';
import type { BanEntry } from '../../src/enforcers/enforcer.js';
import { makeSetup, sshFailure } from '../control/fixture.js';
import { waitFor } from '../helpers/daemon.js';
import { mountSmallDisk } from '../helpers/small-disk.js';

/**
 * The state database on a real filesystem that fills up while an attack goes on: the attacker is
 * banned anyway and stays banned through drift checks, and once space is freed the ban, its evidence
 * and the file's position are saved without a restart, so a restart reads nothing twice.
 */

test('a full disk: the ban holds through drift checks, and is saved with its position once space is freed', async () => {
  const s = makeSetup('pc-full-');
  const disk = mountSmallDisk(4096, join(s.dir, 'state'));
  const logged: string[] = [];
  const log = createLogger({ write: (l) => logged.push(l), timestamps: false });
  const config = configFromFiles([{ file: s.config, text: readFileSync(s.config, 'utf8') }]);
  let daemon = new Daemon(config, { log, dryRun: true, reconcileInterval: 100 });
  try {
    await daemon.start();
    const queue = (daemon as unknown as { queue: EnforcementQueue }).queue;
    const enforcer = (queue as unknown as { slots: Array<{ enforcer: { list(): Promise<BanEntry[]> } }> }).slots[0]!.enforcer;
    const inFirewall = async (): Promise<string[]> => (await enforcer.list()).map((b) => `${b.jail} ${b.target}`);

    disk.fill();
    for (let i = 0; i < 3; i++) sshFailure(s, '198.51.100.7');
    await waitFor(() => logged.some((l) => /cannot write to the state database .*disk is full.*keeps the batch and those after it in memory and commits them again/.test(l)), 10_000, () => logged.join('\n'));
    assert.deepEqual(await inFirewall(), ['sshd 198.51.100.7'], 'banned although the database cannot take it');
    assert.deepEqual(daemon.store.activeBans(), []);
    assert.match(daemon.status().errors.join('\n'), /disk is full; .* \(1 batch\(es\) waiting\)/);
    // Several drift checks and the once-a-second retries, still on a full disk.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await queue.reconcileAll();
    assert.deepEqual(await inFirewall(), ['sshd 198.51.100.7'], 'the drift checks kept the unsaved ban');
    assert.deepEqual(daemon.store.activeBans(), []);
    const [source] = daemon.sourceStatus();
    assert.ok(source!.linesCommitted! < source!.linesRead, `lines read ${source!.linesRead}, committed ${source!.linesCommitted}: the kept batch is not committed`);

    disk.free();
    await waitFor(() => logged.some((l) => /state database writable again: the \d+ batch\(es\) kept meanwhile are saved$/.test(l)), 10_000, () => logged.join('\n'));
    const [saved] = daemon.store.activeBans();
    assert.equal(saved?.target, '198.51.100.7');
    assert.equal(saved.evidence.length, 3);
    assert.ok(saved.evidence.every((l) => l.includes('Failed password for root from 198.51.100.7')));
    const position = JSON.parse(daemon.store.getPosition(`file:${s.auth}`)!) as { file: { offset: number } };
    assert.equal(position.file.offset, statSync(s.auth).size, 'the position covers the lines');
    assert.deepEqual(daemon.status().errors, []);
    await waitFor(() => daemon.sourceStatus()[0]!.linesCommitted === daemon.sourceStatus()[0]!.linesRead, 5000, () => JSON.stringify(daemon.sourceStatus()));
    await queue.reconcileAll();
    assert.deepEqual(await inFirewall(), ['sshd 198.51.100.7']);

    // A restart starts after those lines: nothing is counted or banned twice.
    await daemon.stop();
    daemon = new Daemon(config, { log, dryRun: true, reconcileInterval: 100 });
    await daemon.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(daemon.status().linesRead, 0);
    assert.equal(daemon.store.activeBans().length, 1);
  } finally {
    await daemon.stop();
    disk.remove();
    rmSync(s.dir, { recursive: true, force: true });
  }
});
