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

test('what is recorded with each failure comes back as the evidence: ids to read lines back by, in the daemon', () => {
  const c = new FailureCounter<number>({ maxretry: 3, findtime: 60_000 });
  c.record('192.0.2.1', 1_000, 11);
  c.record('2001:db8::1', 1_500, 12);
  c.record('192.0.2.1', 2_000, 13);
  assert.deepEqual(c.record('192.0.2.1', 3_000, 14), { address: '192.0.2.1', evidence: [11, 13, 14], failures: 3 });
  assert.equal(c.failuresOf('2001:db8::1'), 1);
  // The same address written another way is the same address.
  assert.equal(c.failuresOf('2001:DB8:0::1'), 1);
});

test('agrees with a plain list-per-address model on random traffic (IPv4, IPv6, networks; the table grows and shrinks)', () => {
  let seed = 7;
  const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x7fffffff);
  // Few addresses and slower traffic make windows slide: failures leave from the front while several stay.
  for (const { maxretry, count, gap } of [{ maxretry: 4, count: 5000, gap: 4 }, { maxretry: 2, count: 500, gap: 40 }, { maxretry: 7, count: 200, gap: 40 }]) {
    const limits = { maxretry, findtime: 5_000 };
    const counter = new FailureCounter(limits);
    const model = new Map<string, { time: number; line: string }[]>();
    const addresses = Array.from({ length: count }, (_, i) =>
      i % 3 === 0 ? `10.${(i >> 8) & 255}.${i & 255}.1` : i % 3 === 1 ? `2001:db8::${i.toString(16)}:1` : `192.0.${i & 255}.0/24`);
    let time = 1_700_000_000_000;
    for (let step = 0; step < 60_000; step++) {
      time += Math.floor(random() * gap);
      if (step % 20_000 === 19_999) time += 3 * limits.findtime; // everybody ages out: the table shrinks
      const address = addresses[Math.floor(random() * random() * addresses.length)]!;
      const line = `line ${step}`;
      const window = (model.get(address) ?? []).filter((f) => f.time > time - limits.findtime);
      window.push({ time, line });
      while (window.length > limits.maxretry) window.shift();
      const trip = counter.record(address, time, line);
      if (window.length >= limits.maxretry) {
        model.delete(address);
        assert.deepEqual(trip, { address, evidence: window.map((f) => f.line), failures: limits.maxretry }, `step ${step}`);
      } else {
        model.set(address, window);
        assert.equal(trip, null, `step ${step}`);
        assert.equal(counter.failuresOf(address), window.length, `step ${step}`);
      }
      if (step % 1000 === 0) {
        counter.expire(time);
        // Expiry is lazy by at most one findtime: an entry moved to the back of the queue waits for its turn.
        let lazy = 0;
        for (const [a, w] of model) {
          const newest = w[w.length - 1]!.time;
          if (newest <= time - limits.findtime) model.delete(a);
          if (newest > time - 2 * limits.findtime) lazy++;
        }
        assert.ok(counter.size >= model.size && counter.size <= lazy, `size ${counter.size} at step ${step}: ${model.size}..${lazy}`);
      }
    }
  }
});

test('a trip on the failure whose sweep rebuilds the table smaller bans the right address (no stale entry number)', { timeout: 20_000 }, () => {
  // 3,000 addresses fail once, then each a second time, 1 ms apart: every second failure trips, and
  // the sweep at the 5,000th ms finds a quarter of the table live and rebuilds it smaller on a trip.
  const counter = new FailureCounter<number>({ maxretry: 2, findtime: 16_000 });
  const t0 = 1_700_000_000_000;
  const address = (i: number): string => `10.0.${i >> 8}.${i & 255}`;
  for (let i = 0; i < 3000; i++) assert.equal(counter.record(address(i), t0 + i, i), null);
  for (let i = 0; i < 3000; i++) {
    assert.deepEqual(counter.record(address(i), t0 + 3000 + i, 3000 + i), { address: address(i), evidence: [i, 3000 + i], failures: 2 }, `address ${i}`);
  }
  assert.equal(counter.size, 0);
});
