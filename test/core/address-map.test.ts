import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressMap } from '../../src/core/address-map.js';

test('AddressMap agrees with a Map through growth, deletes and shrinking, for IPv4, IPv6 and networks', () => {
  const map = new AddressMap();
  const model = new Map<string, number | null>();
  // A fixed LCG: the same sequence every run.
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const keyOf = (i: number): string =>
    i % 5 === 0 ? `2001:db8::${(i % 65536).toString(16)}:${(i >>> 16).toString(16)}` : i % 7 === 0 ? `10.${i % 200}.0.0/16` : `198.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
  for (let step = 0; step < 60_000; step++) {
    // Fill up to ~20k keys, then delete most of them: the table grows, then shrinks.
    const phase = step < 30_000 ? 3 : 1;
    const key = keyOf(rand(25_000));
    if (rand(4) < phase) {
      const value = rand(10) === 0 ? null : step;
      map.set(key, value);
      model.set(key, value);
    } else {
      assert.equal(map.delete(key), model.delete(key), `delete ${key}`);
    }
    if (step % 997 === 0) {
      assert.equal(map.size, model.size);
      for (const [k, v] of model) assert.equal(map.get(k), v, k);
    }
  }
  for (let i = 0; i < 25_000; i++) {
    const k = keyOf(i);
    assert.equal(map.has(k), model.has(k), k);
    assert.equal(map.get(k), model.get(k), k);
  }
  map.clear();
  assert.equal(map.size, 0);
  assert.equal(map.get('198.0.0.1'), undefined);
});

test('AddressMap keeps every key through churn at a constant size near its fill limit (deleted rows are filled from their probe runs)', () => {
  const map = new AddressMap();
  const live: string[] = [];
  let next = 0;
  let seed = 777;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const add = (): void => {
    const key = next % 3 === 0 ? `2001:db8:${(next >>> 16).toString(16)}::${(next & 65535).toString(16)}` : `203.${(next >>> 16) & 255}.${(next >>> 8) & 255}.${next & 255}`;
    map.set(key, next++);
    live.push(key);
  };
  // 2,047 keys: one short of half of 4,096 rows, the most this size holds before it grows.
  while (live.length < 2047) add();
  for (let step = 0; step < 100_000; step++) {
    const i = rand(live.length);
    const key = live[i]!;
    live[i] = live[live.length - 1]!;
    live.pop();
    assert.equal(map.delete(key), true, key);
    assert.equal(map.has(key), false, key);
    add();
    if (step % 4999 === 0) {
      assert.equal(map.size, live.length);
      for (const k of live) assert.ok(map.has(k), `${k} lost at step ${step}`);
    }
  }
  for (const k of live) assert.ok(map.has(k), k);
});

test('AddressMap: an IPv4 address and its IPv4-mapped IPv6 spelling are one key', () => {
  const map = new AddressMap();
  map.set('192.0.2.7', 5);
  assert.equal(map.get('::ffff:192.0.2.7'), 5);
  assert.equal(map.has('192.0.2.8'), false);
  assert.equal(map.get('not an address'), undefined);
});
