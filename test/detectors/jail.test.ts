import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureCounter } from '../../src/detectors/jail.js';

test('maxretry failures within findtime trip; older ones do not count', () => {
  const c = new FailureCounter({ maxretry: 3, findtime: 60_000 });
  assert.equal(c.record('a', 0, 'l0'), null);
  assert.equal(c.record('a', 30_000, 'l1'), null);
  // The first failure falls out of the window (61 s > findtime).
  assert.equal(c.record('a', 61_000, 'l2'), null);
  const trip = c.record('a', 62_000, 'l3');
  assert.deepEqual(trip, { address: 'a', evidence: ['l1', 'l2', 'l3'], failures: 3 });
  // The counter restarts after a trip.
  assert.equal(c.failuresOf('a'), 0);
});

test('addresses are counted independently and idle ones are forgotten', () => {
  const c = new FailureCounter({ maxretry: 2, findtime: 10_000 });
  c.record('a', 0, 'x');
  c.record('b', 5_000, 'x');
  assert.equal(c.size, 2);
  c.expire(12_000);
  assert.equal(c.size, 1);
  assert.equal(c.failuresOf('b'), 1);
  c.expire(16_000);
  assert.equal(c.size, 0);
});

test('a million distinct addresses: memory is given back as they age out', () => {
  const c = new FailureCounter({ maxretry: 5, findtime: 1_000 });
  for (let i = 0; i < 1_000_000; i++) c.record(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, i, 'l');
  assert.ok(c.size <= 1002, `size ${c.size}`);
});

test('without keepLines, lines are held only until release(): the caller has them in its database by then', () => {
  const c = new FailureCounter({ maxretry: 3, findtime: 60_000 }, { keepLines: false });
  c.record('a', 1_000, 'one');
  c.release();
  c.record('a', 2_000, 'two');
  const trip = c.record('a', 3_000, 'three')!;
  assert.equal(trip.failures, 3);
  assert.deepEqual(trip.evidence, ['two', 'three'], 'the released line is not held; the caller reads it back');
  c.record('b', 4_000, 'x');
  c.release();
  c.record('b', 5_000, 'y');
  assert.deepEqual(c.record('b', 6_000, 'z')!.evidence, ['y', 'z']);
});
