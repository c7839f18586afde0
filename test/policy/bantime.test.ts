import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BanCounts, grownBantime, type BantimeGrowth } from '../../src/policy/bantime.js';

const M = 60_000;
const growth: BantimeGrowth = { factor: 2, max: 60 * M, jitter: 0, count: 'all' };

test('bantime grows by factor per earlier ban and stops at max', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 40].map((n) => grownBantime(10 * M, growth, n, '198.51.100.1')), [10 * M, 20 * M, 40 * M, 60 * M, 60 * M, 60 * M]);
  assert.equal(grownBantime(10 * M, null, 5, '198.51.100.1'), 10 * M, 'a plain duration does not grow');
  assert.equal(grownBantime(null, growth, 5, '198.51.100.1'), null, 'permanent stays permanent');
});

test('jitter spreads durations within ±jitter, never past max, the same for the same target and count', () => {
  const g = { ...growth, jitter: 0.1, max: 1000 * M };
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const ms = grownBantime(10 * M, g, 1, `203.0.113.${i}`)!;
    assert.ok(ms >= 18 * M && ms <= 22 * M, String(ms));
    assert.equal(ms % 1000, 0, 'whole seconds');
    seen.add(ms);
  }
  assert.ok(seen.size > 50, 'targets get different durations');
  assert.equal(grownBantime(10 * M, g, 1, '203.0.113.7'), grownBantime(10 * M, g, 1, '203.0.113.7'));
  for (let i = 0; i < 50; i++) assert.ok(grownBantime(10 * M, { ...g, max: 60 * M }, 5, `198.51.100.${i}`)! <= 60 * M);
});

test('ban counts: loaded once from the store, then counted per jail and across jails', () => {
  const loads: string[] = [];
  const counts = new BanCounts((target, jail) => { loads.push(`${jail}/${target}`); return jail === '*' ? 4 : 1; });
  assert.equal(counts.get('198.51.100.1', 'sshd'), 1);
  counts.add('198.51.100.1', 'sshd');
  assert.equal(counts.get('198.51.100.1', 'sshd'), 2);
  assert.equal(counts.get('198.51.100.1', '*'), 5);
  assert.deepEqual(loads, ['sshd/198.51.100.1', '*/198.51.100.1']);
  const small = new BanCounts(null, 2);
  small.add('a', 'j');
  small.add('b', 'j');
  assert.equal(small.get('a', 'j'), 0, 'evicted entries are loaded again (none here)');
});
