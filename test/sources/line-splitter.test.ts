import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineSplitter } from '../../src/sources/line-splitter.js';

/** What the splitter must produce, computed the obvious way on the whole input. */
function reference(input: Buffer, max: number): { lines: string[]; rest: Buffer } {
  const cut = (line: Buffer): string => {
    let end = max;
    for (let back = 0; back < 3 && end > 0 && (line[end]! & 0xc0) === 0x80; back++) end--;
    return line.subarray(0, end).toString('utf8');
  };
  const lines: string[] = [];
  let start = 0;
  let nl: number;
  while ((nl = input.indexOf(0x0a, start)) >= 0) {
    let line = input.subarray(start, nl);
    if (line.length > max) lines.push(cut(line));
    else lines.push((line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line).toString('utf8'));
    start = nl + 1;
  }
  const rest = input.subarray(start);
  // An unfinished line is already emitted (cut) once it is known to be over-long.
  if (rest.length > max) lines.push(cut(rest));
  return { lines, rest };
}

/** A deterministic pseudo-random generator, so failures reproduce. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

describe('LineSplitter', () => {
  it('gives the same lines for every way of cutting the input into chunks', () => {
    const mixed = [0x0a, 0x0d, 0x61, 0x62, 0xc3, 0xa9, 0xe2, 0x9c, 0x93, 0xff, 0x20];
    // Chunks of plain ASCII take a decoder of their own: every third input has a rare non-ASCII byte.
    const mostlyAscii = [0x0a, 0x0d, 0x61, 0x62, 0x20, 0x61, 0x62, 0x20, 0x61, 0x62, 0x20, 0x61, 0x62, 0x20, 0x61, 0x62, 0x20, 0x61, 0x62, 0x20, 0xc3, 0xa9, 0xff];
    for (let seed = 1; seed <= 300; seed++) {
      const rand = random(seed);
      const alphabet = seed % 3 === 0 ? mostlyAscii : mixed;
      const max = 1 + Math.floor(rand() * 12);
      const input = Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => alphabet[Math.floor(rand() * alphabet.length)]!));
      const expected = reference(input, max);
      const splitter = new LineSplitter(max);
      const got: string[] = [];
      for (let pos = 0; pos < input.length;) {
        const size = 1 + Math.floor(rand() * 20);
        splitter.push(input.subarray(pos, pos + size), (l) => got.push(l));
        pos += size;
      }
      assert.deepEqual(got, expected.lines, `seed ${seed}`);
      // What is held back is exactly the unfinished last line (or nothing, while its over-long rest is skipped).
      if (splitter.discarding) assert.ok(expected.rest.length > max, `seed ${seed}`);
      else assert.equal(splitter.pendingBytes, expected.rest.length, `seed ${seed}`);
    }
  });

  it('cuts an over-long line as soon as it is known to be over-long', () => {
    const splitter = new LineSplitter(4);
    const got: string[] = [];
    splitter.push(Buffer.from('abcd'), (l) => got.push(l));
    assert.equal(got.length, 0);
    assert.equal(splitter.pendingBytes, 4);
    splitter.push(Buffer.from('e'), (l) => got.push(l));
    assert.deepEqual(got, ['abcd']);
    assert.ok(splitter.discarding);
    splitter.push(Buffer.from('fgh\nij\n'), (l) => got.push(l));
    assert.deepEqual(got, ['abcd', 'ij']);
  });

  it('emits an unfinished line on flush, and only then', () => {
    const splitter = new LineSplitter();
    const got: string[] = [];
    splitter.push(Buffer.from('one\ntw'), (l) => got.push(l));
    assert.equal(splitter.flush((l) => got.push(l)), true);
    assert.equal(splitter.flush((l) => got.push(l)), false);
    assert.deepEqual(got, ['one', 'tw']);
  });

  it('rejects a maximum that is not a positive whole number', () => {
    assert.throws(() => new LineSplitter(0), RangeError);
    assert.throws(() => new LineSplitter(1.5), RangeError);
  });
});
