import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionTable } from '../../src/filters/connections.js';

test('a connection is found by host and pid; hosts and pids do not collide', () => {
  const t = new ConnectionTable(100, 60_000);
  const a = t.add(t.key('web1', 4242), '198.51.100.1', 0);
  assert.throws(() => t.add(t.key('web1', 1), 'localhost', 0), /not an address/);
  const b = t.add(t.key('web2', 4242), '2001:db8::1', 0);
  const c = t.add(t.key(null, 4242), '192.0.2.1', 0);
  const d = t.add(t.key('web1', 4243), '192.0.2.2', 0);
  assert.equal(new Set([a, b, c, d]).size, 4);
  assert.equal(t.address(t.find(t.key('web2', 4242))), '2001:db8::1');
  assert.equal(t.address(t.find(t.key(null, 4242))), '192.0.2.1');
  assert.equal(t.find(t.key('web3', 4242)), -1);
  t.counted[a] = 3;
  t.setAddress(a, '198.51.100.9');
  assert.equal(t.address(t.find(t.key('web1', 4242))), '198.51.100.9');
  assert.equal(t.counted[a], 3, 'the filter decides what a new peer resets');
});

test('behaves like a Map with the same eviction (stale first, then the older half by arrival) over random steps', () => {
  // Stale evictions leave their slots' places in the arrival queue behind: a short TTL makes most
  // evictions stale ones, and pauses longer than the TTL, between runs that fill the table, make the
  // queue fill up with them before the older half is dropped again.
  for (const [ttl, pauseEvery] of [[600, 0], [100, 0], [600, 700]] as const) modelSteps(ttl, pauseEvery);
});

function modelSteps(ttl: number, pauseEvery: number): void {
  const capacity = 50;
  const t = new ConnectionTable(capacity, ttl);
  const model = new Map<string, { address: string; time: number; counted: number }>();
  let x = 11;
  const rand = (n: number): number => ((x = (x * 48271) % 2147483647) % n);
  let now = 0;
  for (let step = 0; step < 20_000; step++) {
    now += rand(20) + (pauseEvery > 0 && step % pauseEvery === pauseEvery - 1 ? 2 * ttl : 0);
    const host = ['a', 'b', null][rand(3)]!;
    const pid = 100 + rand(60);
    const id = `${host}/${pid}`;
    const address = ['10.0.0.1', '10.0.0.2', '2001:db8::1', '2001:db8:0:1::1', '::'][rand(5)]!;
    const slot = t.find(t.key(host, pid));
    const m = model.get(id);
    assert.equal(slot === -1, m === undefined, `step ${step}: ${id} present in one only`);
    if (m === undefined) {
      if (model.size >= capacity) {
        for (const [k, v] of model) if (now - v.time > ttl) model.delete(k);
        if (model.size > capacity * 0.9) {
          let drop = model.size - capacity / 2;
          for (const k of model.keys()) if (drop-- > 0) model.delete(k);
        }
      }
      model.set(id, { address, time: now, counted: 0 });
      const s = t.add(t.key(host, pid), address, now);
      assert.equal(t.counted[s], 0, 'a reused slot starts with zero tallies');
      t.counted[s] = 0;
    } else {
      assert.equal(t.address(slot), m.address);
      assert.ok(t.serves(slot, m.address) && !t.serves(slot, '10.0.0.99'));
      assert.equal(t.times[slot], m.time);
      assert.equal(t.counted[slot], m.counted);
      t.setAddress(slot, address);
      t.times[slot] = now;
      t.counted[slot]!++;
      Object.assign(m, { address, time: now, counted: m.counted + 1 });
    }
    assert.equal(t.size, model.size);
  }
}
