import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/daemon.js';
import type { SourceStatus } from '../../src/sources/source.js';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/**
 * A backlog (many full chunks at once) is committed in grouped transactions.
 * Killed and stopped in the middle of it, the daemon resumes exactly where its
 * last commit left off: an address with maxretry − 1 failures is banned if a
 * line is counted twice, one with maxretry failures is not banned if a line is
 * lost, and the pending failures survive both restarts.
 */

const dir = mkdtempSync(join(tmpdir(), 'pc-backlog-'));
const socket = join(dir, 'control.sock');
const config = join(dir, 'portcullis.yaml');
const log = join(dir, 'auth.log');
let daemon: RunningDaemon | null = null;

after(async () => {
  if (daemon && daemon.proc.exitCode === null) await daemon.kill();
  rmSync(dir, { recursive: true, force: true });
});

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');
const now = new Date();
const stamp = `${MON[now.getMonth()]} ${String(now.getDate()).padStart(2, ' ')} ${p2(now.getHours())}:${p2(now.getMinutes())}:${p2(now.getSeconds())}`;

const ADDRESSES = 96_000;
/** Address k fails (k % 4) + 1 times: 1 and 2 stay pending, 3 and 4 are banned (maxretry 3). */
const failuresOf = (k: number): number => (k % 4) + 1;
const address = (k: number): string => (k % 2 === 0 ? `198.${18 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}` : `2001:db8::${k >> 16 ? `${(k >> 16).toString(16)}:` : ''}${(k & 0xffff).toString(16)}`);

/** Where the daemon has read to in the log, and whether every line it read is committed. */
const progress = async (): Promise<{ offset: number; committed: boolean }> => {
  const sources = (await callDaemon(socket, 'sources')) as SourceStatus[];
  const offset = sources.flatMap((s) => s.items).find((i) => i.name === log)?.offset ?? 0;
  return { offset, committed: sources.every((s) => s.linesCommitted === s.linesRead) };
};
const consumed = async (): Promise<number> => (await progress()).offset;

test('killed and stopped in the middle of a backlog, the daemon resumes exactly after its last commit', async () => {
  writeFileSync(log, '');
  writeFileSync(config, `state_dir: ${join(dir, 'state')}\ncontrol: { socket: ${socket} }\nhttp: { enabled: false }\nenforcer: dry-run\njails:\n  sshd:\n    sources: [{ file: ${log} }]\n    maxretry: 3\n    findtime: 1h\n    bantime: 1h\n`);
  // Rounds over all addresses, so an address's failures lie far apart in the file (in different chunks).
  const lines: string[] = [];
  for (let round = 0; round < 4; round++) {
    for (let k = 0; k < ADDRESSES; k++) {
      if (round < failuresOf(k)) lines.push(`${stamp} web1 sshd[${10_000 + round * 100_000 + k}]: Failed password for root from ${address(k)} port ${10_000 + (k % 50_000)} ssh2\n`);
    }
  }
  const size = lines.reduce((n, l) => n + l.length, 0);

  daemon = await startDaemon(['--config', config], socket);
  appendFileSync(log, lines.join(''));
  // Killed as soon as it has read more, several times: each kill lands somewhere in a group of uncommitted batches.
  let resumedAt = 0;
  let kills = 0;
  for (; kills < 5 && resumedAt < size; kills++) {
    // Past the resume point, and with at least one commit of this life done: each kill leaves some progress.
    await waitFor(async () => {
      const sources = (await callDaemon(socket, 'sources')) as SourceStatus[];
      return (await consumed()) > resumedAt && sources.some((s) => (s.linesCommitted ?? 0) > 0);
    }, 20_000, () => daemon!.output());
    await daemon.kill();
    daemon = await startDaemon(['--config', config], socket);
    resumedAt = await consumed();
  }
  assert.ok(kills >= 2, 'the kills came too late to test much: the backlog was already read');
  if (resumedAt < size) {
    await waitFor(async () => (await consumed()) > resumedAt, 20_000, () => daemon!.output());
    assert.equal(await daemon.stop(), 0, daemon.output());
    daemon = await startDaemon(['--config', config], socket);
  }

  await waitFor(async () => {
    const p = await progress();
    return p.offset === statSync(log).size && p.committed;
  }, 60_000, () => daemon!.output());

  const banned = new Set(((await callDaemon(socket, 'banned')) as Array<{ target: string }>).map((b) => b.target));
  const expected = Array.from({ length: ADDRESSES }, (_, k) => k).filter((k) => failuresOf(k) >= 3).map(address);
  assert.equal(banned.size, expected.length);
  for (const a of expected) assert.ok(banned.has(a), `${a} should be banned`);
  const status = (await callDaemon(socket, 'status')) as StatusReport;
  assert.equal(status.jails[0]!.failing, ADDRESSES / 2, 'addresses with 1 or 2 failures stay pending across both restarts');
  assert.equal(await daemon.stop(), 0, daemon.output());
});
