import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { StdinSource } from '../../src/sources/stdin.js';
import { Collector, tempDir } from './helpers.js';

async function readAll(chunks: Array<string | Buffer>, options: { maxLineLength?: number } = {}): Promise<{ got: Collector; source: StdinSource }> {
  const stream = new PassThrough();
  const source = new StdinSource({ stream, ...options });
  const got = new Collector();
  await source.start(got.handler);
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await source.done;
  return { got, source };
}

describe('StdinSource', () => {
  it('reads lines across chunks, numbers them, parses envelopes, keeps no checkpoints', async () => {
    const { got, source } = await readAll([
      'Mar  1 10:00:00 web1 sshd[7]: Failed password for root from 192.0.2.7 port 22 ssh2\nsec',
      'ond line\r\nthird\n',
    ]);
    assert.deepEqual(got.raw(), ['Mar  1 10:00:00 web1 sshd[7]: Failed password for root from 192.0.2.7 port 22 ssh2', 'second line', 'third']);
    assert.deepEqual(got.lines.map((l) => l.lineNo), [1, 2, 3]);
    assert.equal(got.lines[0]!.program, 'sshd');
    assert.equal(got.lines[0]!.source, 'stdin');
    assert.ok(got.batches.every((b) => b.checkpoints.length === 0));
    const status = source.status();
    assert.equal(status.linesRead, 3);
    assert.equal(status.items[0]!.state, 'ended');
    assert.equal(status.error, null);
  });

  it('emits a final line without newline at end of input', async () => {
    const { got } = await readAll(['one\ntwo']);
    assert.deepEqual(got.raw(), ['one', 'two']);
  });

  it('cuts over-long lines and decodes each line on its own', async () => {
    const { got } = await readAll([
      Buffer.concat([Buffer.from('x'.repeat(30)), Buffer.from([0xff]), Buffer.from('\nbad '), Buffer.from([0xc3]), Buffer.from('\nok\n')]),
    ], { maxLineLength: 8 });
    assert.deepEqual(got.raw(), ['x'.repeat(8), 'bad \ufffd', 'ok']);
  });

  it('resolves done when stopped before the end, and ignores what comes after', async () => {
    const stream = new PassThrough();
    const source = new StdinSource({ stream });
    const got = new Collector();
    await source.start(got.handler);
    stream.write('a\n');
    await new Promise((resolve) => setImmediate(resolve));
    await source.stop();
    await source.done;
    stream.write('b\n');
    stream.end();
    assert.deepEqual(got.raw(), ['a']);
    assert.equal(source.status().items[0]!.state, 'stopped');
  });

  it('reports a read error in status and resolves done', async () => {
    const stream = new PassThrough();
    const source = new StdinSource({ stream });
    const got = new Collector();
    await source.start(got.handler);
    stream.destroy(new Error('EIO'));
    await source.done;
    assert.match(source.status().error ?? '', /read failed: EIO/);
  });

  it('reads the real process.stdin of a process and lets it exit at end of input', () => {
    const { dir, cleanup } = tempDir('stdin');
    try {
      const script = join(dir, 'read-stdin.mts');
      const module = fileURLToPath(new URL('../../src/sources/stdin.ts', import.meta.url));
      writeFileSync(script, [
        `import { StdinSource } from ${JSON.stringify(module)};`,
        'const source = new StdinSource();',
        'let count = 0;',
        'await source.start((batch) => { count += batch.lines.length; }, { getPosition: () => undefined });',
        'await source.done;',
        'process.stdout.write(String(count));',
      ].join('\n'));
      const input = Array.from({ length: 10_000 }, (_, i) => `line ${i}\n`).join('');
      const result = spawnSync(process.execPath, ['--import', 'tsx', script], { input, encoding: 'utf8', timeout: 30_000 });
      assert.equal(result.stderr, '');
      assert.equal(result.stdout, '10000');
      assert.equal(result.status, 0);
    } finally {
      cleanup();
    }
  });

  it('once stopped, does not keep a process alive whose stdin stays open', async () => {
    const { dir, cleanup } = tempDir('stdin');
    try {
      const script = join(dir, 'stop-stdin.mts');
      const module = fileURLToPath(new URL('../../src/sources/stdin.ts', import.meta.url));
      writeFileSync(script, [
        `import { StdinSource } from ${JSON.stringify(module)};`,
        'const source = new StdinSource();',
        'await source.start((batch) => { if (batch.lines.length > 0) void source.stop(); }, { getPosition: () => undefined });',
        'await source.done;',
      ].join('\n'));
      const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'ignore', 'inherit'] });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.stdin.write('one line\n'); // and the pipe stays open
      const timer = setTimeout(() => child.kill(), 30_000);
      const code = await exited;
      clearTimeout(timer);
      child.stdin.destroy();
      assert.equal(code, 0);
    } finally {
      cleanup();
    }
  });
});
