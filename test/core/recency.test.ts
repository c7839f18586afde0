import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trimOldest } from '../../src/core/recency.js';

test('trimOldest keeps the newest entries, in order, within the bound', () => {
  const m = new Map<string, number>();
  for (let i = 0; i < 100; i++) {
    m.delete(`k${i % 70}`);
    m.set(`k${i % 70}`, i);
    trimOldest(m, 32);
    assert.ok(m.size <= 32);
  }
  const values = [...m.values()];
  // What is left is the most recently set, oldest first, ending with the last insert.
  assert.equal(values.at(-1), 99);
  for (let i = 1; i < values.length; i++) assert.equal(values[i], values[i - 1]! + 1);
  assert.ok(m.size >= 32 - 32 / 8, `drops only a batch at once (size ${m.size})`);
});

test('trimOldest leaves a map within its bound untouched', () => {
  const m = new Map([[1, 'a'], [2, 'b']]);
  trimOldest(m, 2);
  assert.deepEqual([...m.keys()], [1, 2]);
});

test('trimOldest stays cheap once full (no walk over deleted entries on every insert)', () => {
  // Counts the entries the iterator hands out, not time: one trim per eighth of the bound.
  const m = new Map<number, number>();
  let trims = 0;
  for (let i = 0; i < 10_000; i++) {
    m.set(i, i);
    const before = m.size;
    trimOldest(m, 1000);
    if (m.size < before) trims++;
  }
  assert.ok(trims <= 10_000 / (1000 / 8) + 1, `${trims} trims`);
});
