import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { CommandFailedError, ExecRunner } from '../../src/enforcers/command-runner.js';

/**
 * Programs get their whole input whatever its size: a small one through a pipe, a large one (a
 * firewall batch of tens of thousands of bans) through an unlinked temporary file, so that it does
 * not wait for the event loop to turn. Nothing is left in the temporary directory.
 */

const leftovers = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith(`portcullis-input-${process.pid}-`));

test('small and large inputs reach the program whole, and no temporary file is left', async () => {
  const runner = new ExecRunner();
  for (const size of [0, 10, 64 * 1024, 64 * 1024 + 1, 3_000_000]) {
    const input = Array.from({ length: Math.ceil(size / 40) }, (_, i) => `add element inet t s { 10.0.${i >> 8}.${i & 255} }\n`).join('').slice(0, size);
    const got = await runner.run('sha256sum', [], { input });
    assert.equal(got.stdout.split(' ')[0], createHash('sha256').update(input).digest('hex'), `input of ${size} characters`);
  }
  // Characters beyond ASCII count in bytes.
  const wide = 'é'.repeat(40_000);
  assert.equal((await runner.run('wc', ['-c'], { input: wide })).stdout.trim(), String(Buffer.byteLength(wide)));
  // How: a pipe (a socket pair, as Node makes it) for a small input, a deleted file for a large one.
  const stdinOf = async (input: string): Promise<string> => (await runner.run('sh', ['-c', 'readlink /proc/self/fd/0; cat >/dev/null'], { input })).stdout.trim();
  assert.match(await stdinOf('x'.repeat(1000)), /^(pipe|socket):/);
  assert.match(await stdinOf('x'.repeat(100_000)), /portcullis-input-\d+-\d+ \(deleted\)$/);
  assert.deepEqual(leftovers(), []);
});

test('a program that fails on a large input reports its exit code and message, and leaves no file', async () => {
  const runner = new ExecRunner();
  const input = 'x'.repeat(200_000);
  await assert.rejects(runner.run('sh', ['-c', 'head -c 10 >/dev/null; echo "line 1: syntax error" >&2; exit 3'], { input }), (err: unknown) => {
    assert.ok(err instanceof CommandFailedError);
    assert.equal(err.status, 3);
    assert.match(err.message, /syntax error/);
    return true;
  });
  // A program that never reads its input at all.
  assert.equal((await runner.run('true', [], { input })).exitCode, 0);
  assert.deepEqual(leftovers(), []);
});
