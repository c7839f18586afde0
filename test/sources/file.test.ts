import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import {
  appendFileSync, closeSync, copyFileSync, mkdirSync, openSync, renameSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { FileSource, type FileSourceOptions } from '../../src/sources/file.js';
import { Collector, tempDir, waitFor } from './helpers.js';

let dir: string;
let cleanup: () => void;
let sources: FileSource[];

beforeEach(() => {
  ({ dir, cleanup } = tempDir('file'));
  sources = [];
});

afterEach(async () => {
  for (const s of sources) await s.stop();
  cleanup();
});

/**
 * Starts a source with test-friendly timings; it is stopped after the test.
 * The safety poll is far beyond any wait, so each test shows that inotify alone
 * delivers — except the tests about what only the poll can see.
 */
async function follow(options: Partial<FileSourceOptions> & { patterns: string[] }, collector = new Collector()): Promise<{ source: FileSource; got: Collector }> {
  const source = new FileSource({ pollIntervalMs: 60_000, rotationGraceMs: 300, ...options });
  sources.push(source);
  await source.start(collector.handler, collector);
  return { source, got: collector };
}

function lines(prefix: string, from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = from; i <= to; i++) out.push(`${prefix}${i}`);
  return out;
}

const text = (ls: string[]): string => ls.map((l) => `${l}\n`).join('');

/** The lines from one file, in arrival order, taken from the interleaved whole. */
const only = (all: string[], prefix: string): string[] => all.filter((l) => l.startsWith(prefix));

function itemState(source: FileSource, path: string): string | undefined {
  return source.status().items.find((i) => i.name === path)?.state;
}

describe('FileSource', () => {
  it('starts at the end of a file present at start, then follows appends', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, text(['old 1', 'old 2']));
    const { source, got } = await follow({ patterns: [path] });
    appendFileSync(path, text(lines('new ', 1, 3)));
    await got.waitForCount(3);
    appendFileSync(path, text(lines('new ', 4, 1000)));
    await got.waitForCount(1000);
    assert.deepEqual(got.raw(), lines('new ', 1, 1000));
    assert.equal(got.lines[0]!.source, `file:${path}`);
    const item = source.status().items[0]!;
    assert.equal(item.state, 'following');
    assert.equal(item.offset, statSync(path).size);
    assert.equal(item.lagBytes, 0);
    assert.equal(source.status().linesRead, 1000);
    assert.equal(source.status().error, null);
  });

  it('reads a present file from its beginning with startAtEnd: false, one batch per chunk', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, text(lines('line ', 1, 5000)));
    const { got } = await follow({ patterns: [path], startAtEnd: false, readChunkBytes: 4096 });
    await got.waitForCount(5000);
    assert.deepEqual(got.raw(), lines('line ', 1, 5000));
    const withLines = got.batches.filter((b) => b.lines.length > 0);
    assert.ok(withLines.length >= Math.floor(statSync(path).size / 4096), `one batch per 4 KiB chunk, got ${withLines.length}`);
    for (const batch of withLines) assert.equal(batch.checkpoints[0]!.key, `file:${path}`);
  });

  it('parses the envelope of each line', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { got } = await follow({ patterns: [path] });
    appendFileSync(path, '2025-03-01T10:00:00Z web1 sshd[42]: Failed password for root from 192.0.2.7 port 22 ssh2\n');
    await got.waitForCount(1);
    const line = got.lines[0]!;
    assert.equal(line.program, 'sshd');
    assert.equal(line.pid, 42);
    assert.equal(line.host, 'web1');
    assert.equal(line.time, Date.UTC(2025, 2, 1, 10, 0, 0));
    assert.equal(line.message, 'Failed password for root from 192.0.2.7 port 22 ssh2');
  });

  it('reads the line being written at start whole once it is finished', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, 'done\nhalf of a ');
    const { got } = await follow({ patterns: [path] });
    appendFileSync(path, 'line\nnext\n');
    await got.waitForCount(2);
    assert.deepEqual(got.raw(), ['half of a line', 'next']);
  });

  it('holds a partial last line until its newline arrives', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { source, got } = await follow({ patterns: [path] });
    appendFileSync(path, 'first\nsecond, unfin');
    await got.waitForCount(1);
    // Once the source has read up to the end, the half line is held, not emitted.
    await waitFor(() => source.status().items[0]!.size === statSync(path).size, 'size seen');
    assert.deepEqual(got.raw(), ['first']);
    assert.equal(source.status().items[0]!.offset, 'first\n'.length);
    appendFileSync(path, 'ished\n');
    await got.waitForCount(2);
    assert.deepEqual(got.raw(), ['first', 'second, unfinished']);
  });

  it('cuts over-long lines and discards their rest, whatever the chunk boundaries', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { got } = await follow({ patterns: [path], maxLineLength: 10, readChunkBytes: 7 });
    const long = 'A'.repeat(10) + 'B'.repeat(100);
    appendFileSync(path, `short\n${long}\n0123456789\nend\r\n`);
    await got.waitForCount(4);
    assert.deepEqual(got.raw(), ['short', 'A'.repeat(10), '0123456789', 'end']);
  });

  it('decodes each line on its own: invalid UTF-8 stays in its line', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { got } = await follow({ patterns: [path] });
    appendFileSync(path, Buffer.concat([
      Buffer.from('bad '), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('\n'),
      Buffer.from('héllo ✓\n'),
      Buffer.from([0xe2, 0x9c]), Buffer.from('\n'),
    ]));
    await got.waitForCount(3);
    assert.deepEqual(got.raw(), ['bad \ufffd\ufffd\ufffd', 'héllo ✓', '\ufffd']);
  });

  it('cuts an over-long line on a character boundary', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { got } = await follow({ patterns: [path], maxLineLength: 10 });
    appendFileSync(path, 'ééééééé\nok\n'); // 14 bytes; the cut at 10 falls between two characters: 5 fit
    await got.waitForCount(2);
    assert.deepEqual(got.raw(), ['ééééé', 'ok']);
    appendFileSync(path, 'abcdefghié\nok\n'); // the cut at 10 would split é: the line keeps 9 bytes
    await got.waitForCount(4);
    assert.deepEqual(got.raw().slice(2), ['abcdefghi', 'ok']);
  });

  it('follows rename-and-create rotation, draining late writes to the old file', async () => {
    const path = join(dir, 'auth.log');
    const rotated = `${path}.1`;
    writeFileSync(path, '');
    const { source, got } = await follow({ patterns: [path], rotationGraceMs: 400 });
    // A writer that keeps its fd across the rename, as daemons do until they reopen.
    const oldWriter = openSync(path, 'a');
    for (const l of lines('old ', 1, 50)) writeSync(oldWriter, `${l}\n`);
    await got.waitForCount(50);
    renameSync(path, rotated);
    writeFileSync(path, text(lines('new ', 1, 20)));
    for (const l of lines('old ', 51, 100)) writeSync(oldWriter, `${l}\n`);
    appendFileSync(path, text(lines('new ', 21, 40)));
    await got.waitForCount(140);
    assert.equal(itemState(source, path), 'rotated-draining');
    writeSync(oldWriter, 'old final, no newline');
    closeSync(oldWriter);
    await got.waitForCount(141);
    await waitFor(() => itemState(source, path) === 'following', 'end of draining', () => source.status());
    const all = got.raw();
    assert.deepEqual(only(all, 'old '), [...lines('old ', 1, 100), 'old final, no newline']);
    assert.deepEqual(only(all, 'new '), lines('new ', 1, 40));
    assert.equal(all.length, 141);
    // The position now only names the new file.
    const saved = JSON.parse(got.positions.get(`file:${path}`)!);
    assert.equal(saved.file.ino, String(statSync(path, { bigint: true }).ino));
    assert.deepEqual(saved.rotated, []);
  });

  it('follows copytruncate: a file shrinking below our offset restarts at 0', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { got } = await follow({ patterns: [path] });
    appendFileSync(path, text(lines('before rotation, a long line ', 1, 20)));
    await got.waitForCount(20);
    copyFileSync(path, `${path}.1`);
    truncateSync(path, 0);
    await waitFor(() => got.positions.get(`file:${path}`)?.includes('"offset":0,') ?? false, 'the truncation to be seen');
    appendFileSync(path, text(lines('after ', 1, 3)));
    await got.waitForCount(23);
    assert.deepEqual(got.raw().slice(20), lines('after ', 1, 3));
  });

  it('emits the held-back line of a file truncated under it', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { got } = await follow({ patterns: [path] });
    appendFileSync(path, 'complete\nunfinished when truncated');
    await got.waitForCount(1);
    truncateSync(path, 0);
    await got.waitForCount(2);
    appendFileSync(path, 'fresh\n');
    await got.waitForCount(3);
    assert.deepEqual(got.raw(), ['complete', 'unfinished when truncated', 'fresh']);
  });

  it('reads a file that appears after start from its beginning', async () => {
    const path = join(dir, 'later.log');
    const { source, got } = await follow({ patterns: [path] });
    assert.equal(itemState(source, path), 'waiting for file');
    writeFileSync(path, text(lines('early ', 1, 3)));
    await got.waitForCount(3);
    assert.deepEqual(got.raw(), lines('early ', 1, 3));
    assert.equal(itemState(source, path), 'following');
  });

  it('notices a directory that appears after start (by the safety poll)', async () => {
    const path = join(dir, 'nginx', 'error.log');
    const { got } = await follow({ patterns: [path], pollIntervalMs: 50 });
    mkdirSync(join(dir, 'nginx'));
    writeFileSync(path, 'first\n');
    await got.waitForCount(1);
    appendFileSync(path, 'second\n');
    await got.waitForCount(2);
    assert.deepEqual(got.raw(), ['first', 'second']);
  });

  it('picks up new files matching a glob, from their beginning', async () => {
    writeFileSync(join(dir, 'a-error.log'), 'a old\n');
    writeFileSync(join(dir, 'access.log'), 'ignored\n');
    const { source, got } = await follow({ patterns: [join(dir, '*error.log')] });
    appendFileSync(join(dir, 'a-error.log'), 'a new\n');
    await got.waitForCount(1);
    writeFileSync(join(dir, 'b-error.log'), 'b 1\nb 2\n');
    writeFileSync(join(dir, 'b-access.log'), 'ignored\n');
    mkdirSync(join(dir, 'c-error.log')); // a directory matching the glob is not a log file
    await got.waitForCount(3);
    appendFileSync(join(dir, 'b-error.log'), 'b 3\n');
    await got.waitForCount(4);
    assert.deepEqual(got.raw(), ['a new', 'b 1', 'b 2', 'b 3']);
    assert.equal(got.lines[1]!.source, `file:${join(dir, 'b-error.log')}`);
    assert.deepEqual(source.status().items.map((i) => i.name).sort(), [join(dir, 'a-error.log'), join(dir, 'b-error.log')]);
    assert.equal(source.status().error, null);
  });

  it('expands globs and braces in directories', async () => {
    mkdirSync(join(dir, 'site1'));
    mkdirSync(join(dir, 'site2'));
    mkdirSync(join(dir, 'other'));
    const { got } = await follow({ patterns: [join(dir, 'site?', '{error,auth}.log')], startAtEnd: false, pollIntervalMs: 50 });
    writeFileSync(join(dir, 'site1', 'error.log'), 'one\n');
    writeFileSync(join(dir, 'site2', 'auth.log'), 'two\n');
    writeFileSync(join(dir, 'other', 'error.log'), 'never\n');
    await got.waitForCount(2);
    mkdirSync(join(dir, 'site3'));
    writeFileSync(join(dir, 'site3', 'error.log'), 'three\n');
    await got.waitForCount(3);
    assert.deepEqual(got.raw().sort(), ['one', 'three', 'two']);
  });

  it('sees writes to a symlinked file at once, through its target\'s directory', async () => {
    mkdirSync(join(dir, 'real'));
    mkdirSync(join(dir, 'links'));
    const target = join(dir, 'real', 'app.log');
    const link = join(dir, 'links', 'app.log');
    writeFileSync(target, '');
    symlinkSync(target, link);
    const { got } = await follow({ patterns: [link] });
    appendFileSync(target, 'first\n');
    await got.waitForCount(1);
    // The source is idle now: only an event can bring the next line.
    appendFileSync(target, 'through the link\n');
    await got.waitForCount(2);
    assert.deepEqual(got.raw(), ['first', 'through the link']);
  });

  it('drains a deleted file, then reads a recreated one from its beginning', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { source, got } = await follow({ patterns: [path], rotationGraceMs: 100 });
    appendFileSync(path, 'before\n');
    await got.waitForCount(1);
    unlinkSync(path);
    await waitFor(() => itemState(source, path) === 'waiting for file', 'waiting state', () => source.status());
    assert.deepEqual(JSON.parse(got.positions.get(`file:${path}`)!).file, null);
    writeFileSync(path, 'again 1\nagain 2\n');
    await got.waitForCount(3);
    assert.deepEqual(got.raw(), ['before', 'again 1', 'again 2']);
  });

  it('resumes after a restart exactly where it stopped', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, text(lines('x ', 1, 10)));
    const first = await follow({ patterns: [path], startAtEnd: false });
    await first.got.waitForCount(10);
    appendFileSync(path, 'y 1\ny 2 unfini');
    await first.got.waitForCount(11);
    await first.source.stop();

    appendFileSync(path, 'shed\n' + text(lines('z ', 1, 5)));
    // The new source gets the committed positions (startAtEnd would otherwise skip everything).
    const second = await follow({ patterns: [path] }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(6);
    assert.deepEqual(second.got.raw(), ['y 2 unfinished', ...lines('z ', 1, 5)]);
    assert.deepEqual([...first.got.raw(), ...second.got.raw()], [...lines('x ', 1, 10), 'y 1', 'y 2 unfinished', ...lines('z ', 1, 5)]);
  });

  it('resumes inside an over-long line without emitting its rest', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const first = await follow({ patterns: [path], maxLineLength: 10 });
    appendFileSync(path, '0123456789ABCDEF');
    await first.got.waitForCount(1);
    await first.source.stop();
    appendFileSync(path, 'GHIJ\nnext\n');
    const second = await follow({ patterns: [path], maxLineLength: 10 }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(1);
    assert.deepEqual([...first.got.raw(), ...second.got.raw()], ['0123456789', 'next']);
  });

  it('after a restart, finishes a file rotated while down, then reads the new one from its start', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const first = await follow({ patterns: [path] });
    appendFileSync(path, text(lines('old ', 1, 5)));
    await first.got.waitForCount(5);
    await first.source.stop();

    appendFileSync(path, text(lines('old ', 6, 8)));
    renameSync(path, `${path}-20250301`);
    writeFileSync(path, text(lines('new ', 1, 4)));
    const second = await follow({ patterns: [path], rotationGraceMs: 100 }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(7);
    assert.deepEqual(only(second.got.raw(), 'old '), lines('old ', 6, 8));
    assert.deepEqual(only(second.got.raw(), 'new '), lines('new ', 1, 4));
    await waitFor(() => JSON.parse(second.got.positions.get(`file:${path}`)!).rotated.length === 0, 'the old file to be let go');
  });

  it('after a restart, reads a different file at the same path from its start', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const first = await follow({ patterns: [path] });
    appendFileSync(path, text(lines('old ', 1, 5)));
    await first.got.waitForCount(5);
    await first.source.stop();

    // Deleted and recreated while down (the inode may well be reused): the first bytes differ.
    unlinkSync(path);
    writeFileSync(path, text(lines('different ', 1, 3)));
    const second = await follow({ patterns: [path] }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(3);
    assert.deepEqual(second.got.raw(), lines('different ', 1, 3));
  });

  it('after a restart, reads a file truncated and refilled while down from its start', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const first = await follow({ patterns: [path] });
    appendFileSync(path, text(lines('old ', 1, 5)));
    await first.got.waitForCount(5);
    await first.source.stop();

    truncateSync(path, 0);
    appendFileSync(path, text(lines('refilled, longer than before ', 1, 3)));
    const second = await follow({ patterns: [path] }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(3);
    assert.deepEqual(second.got.raw(), lines('refilled, longer than before ', 1, 3));
  });

  it('remembers a missing file, so one created while down is read whole', async () => {
    const path = join(dir, 'later.log');
    const first = await follow({ patterns: [path] });
    await waitFor(() => first.got.positions.has(`file:${path}`), 'a checkpoint for the missing file');
    await first.source.stop();
    writeFileSync(path, 'written while down\n');
    const second = await follow({ patterns: [path] }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(1);
    assert.deepEqual(second.got.raw(), ['written while down']);
  });

  it('resumes draining a rotated file after a restart during its grace period', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const first = await follow({ patterns: [path], rotationGraceMs: 60_000 });
    const oldWriter = openSync(path, 'a');
    writeSync(oldWriter, 'old 1\n');
    await first.got.waitForCount(1);
    renameSync(path, `${path}.1`);
    writeFileSync(path, 'new 1\n');
    await first.got.waitForCount(2);
    await first.source.stop();
    writeSync(oldWriter, 'old 2\n');
    closeSync(oldWriter);
    appendFileSync(path, 'new 2\n');
    const second = await follow({ patterns: [path], rotationGraceMs: 100 }, new Collector(new Map(first.got.positions)));
    await second.got.waitForCount(2);
    await waitFor(() => JSON.parse(second.got.positions.get(`file:${path}`)!).rotated.length === 0, 'the old file to be let go');
    assert.deepEqual(second.got.raw().sort(), ['new 2', 'old 2']);
  });

  it('reports a directory or a FIFO as an error in status, and keeps following the rest', async () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const fifo = join(dir, 'pipe.log');
    execFileSync('mkfifo', [fifo]);
    const good = join(dir, 'good.log');
    writeFileSync(good, '');
    const { source, got } = await follow({ patterns: [sub, fifo, good] });
    appendFileSync(good, 'still here\n');
    await got.waitForCount(1);
    const status = source.status();
    assert.equal(itemState(source, sub), 'error');
    assert.equal(itemState(source, fifo), 'error');
    assert.match(status.error ?? '', /sub: is a directory/);
    assert.match(status.error ?? '', /pipe\.log: not a regular file/);
  });

  it('records the failure of the batch handler and stops instead of skipping the batch', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const source = new FileSource({ patterns: [path], pollIntervalMs: 50 });
    sources.push(source);
    let calls = 0;
    await source.start(() => {
      calls++;
      if (calls > 1) throw new Error('disk full');
    }, new Collector());
    appendFileSync(path, 'a\n');
    await waitFor(() => source.status().error !== null, 'the error');
    assert.match(source.status().error!, /batch handler failed: disk full/);
  });

  it('stops cleanly: no batch after stop, descriptors closed', async () => {
    const path = join(dir, 'auth.log');
    writeFileSync(path, '');
    const { source, got } = await follow({ patterns: [path] });
    await source.stop();
    const count = got.batches.length;
    appendFileSync(path, 'after stop\n');
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(got.batches.length, count);
    await source.stop(); // twice is fine
  });
});
