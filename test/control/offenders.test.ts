import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OffenderTable } from '../../src/control/offenders.js';

const DAY = 86_400_000;
const members = (t: OffenderTable, since = 0): Map<string, { failures: number; bans: number; jails: readonly string[] }> =>
  new Map([...t.entries(since)].map((e) => [e.address, { failures: e.failures, bans: e.bans, jails: [...e.jails].sort() }]));

test('counts are exact for every address from the time it got into the table (random steps against a model)', () => {
  const table = new OffenderTable(64, DAY);
  const model = new Map<string, { failures: number; bans: number; jails: string[] }>();
  let x = 7;
  const rand = (n: number): number => ((x = (x * 48271) % 2147483647) % n);
  for (let step = 0; step < 20_000; step++) {
    const address = `198.51.100.${rand(200)}`;
    const present = new Set([...table.entries(0)].map((e) => e.address));
    // An address pushed out starts again from nothing when it comes back.
    for (const a of [...model.keys()]) if (!present.has(a)) model.delete(a);
    const m = model.get(address) ?? { failures: 0, bans: 0, jails: [] };
    model.set(address, m);
    if (rand(10) === 0) {
      table.addBan(address, 'recidive', step);
      m.bans++;
      if (!m.jails.includes('recidive')) m.jails.push('recidive');
    } else {
      const jails = rand(2) === 0 ? ['sshd'] : ['sshd', 'sshd-ddos'];
      table.addFailure(address, jails, step);
      m.failures++;
      for (const j of jails) if (!m.jails.includes(j)) m.jails.push(j);
    }
    // A newcomer to a full table may not be let in.
    if (![...table.entries(0)].some((e) => e.address === address)) model.delete(address);
    assert.ok(table.size <= 64);
  }
  assert.equal(table.size, 64);
  // The last step may have pushed an address out.
  const present = members(table);
  for (const a of [...model.keys()]) if (!present.has(a)) model.delete(a);
  assert.deepEqual(present, new Map([...model].map(([a, m]) => [a, { ...m, jails: m.jails.sort() }])));
});

test('under a flood of one-off addresses ten times the capacity, the heavy hitters keep their place and exact counts', () => {
  const table = new OffenderTable(1000, DAY);
  const heavy = ['203.0.113.1', '203.0.113.2', '2001:db8::bad', '203.0.113.4', '203.0.113.5'];
  for (const h of heavy) for (let i = 0; i < 20; i++) table.addFailure(h, ['sshd'], 0);
  for (let i = 0; i < 10_000; i++) {
    table.addFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, ['sshd'], 1);
    if (i % 100 === 0) table.addFailure(heavy[(i / 100) % heavy.length]!, ['sshd'], 1);
  }
  const top = [...table.entries(0)].sort((a, b) => b.failures - a.failures).slice(0, 5);
  assert.deepEqual(top.map((e) => e.address).sort(), [...heavy].sort());
  for (const e of top) assert.equal(e.failures, 40);
  assert.equal(table.size, 1000);
});

test('entries older than the maximum age are not listed and are pushed out before live ones', () => {
  const table = new OffenderTable(16, DAY);
  for (let i = 0; i < 16; i++) for (let k = 0; k < 50; k++) table.addFailure(`192.0.2.${i}`, ['sshd'], 0);
  assert.equal(members(table, 1).size, 0, 'nothing seen since time 1');
  // A ban gets in over a stale entry (a failure from a newcomer to a full table only sometimes).
  for (let i = 0; i < 4; i++) table.addBan(`198.51.100.${i}`, 'sshd', DAY + 1);
  // The newcomers took stale slots, although every stale entry is far heavier.
  assert.deepEqual([...members(table, DAY).keys()].sort(), ['198.51.100.0', '198.51.100.1', '198.51.100.2', '198.51.100.3']);
  assert.equal(table.size, 16);
});

test('once the table is full, a one-off address mostly stays out, and one that keeps coming gets in', () => {
  const table = new OffenderTable(100, DAY);
  for (let i = 0; i < 100; i++) table.addFailure(`192.0.2.${i}`, ['sshd'], 0);
  let admitted = 0;
  for (let i = 0; i < 8000; i++) {
    const a = `10.0.${i >> 8}.${i & 255}`;
    table.addFailure(a, ['sshd'], 1);
    if ([...table.entries(1)].some((e) => e.address === a)) admitted++;
  }
  assert.ok(admitted > 500 && admitted < 1500, `about one in eight admitted, got ${admitted}`);
  for (let k = 0; k < 100; k++) table.addFailure('203.0.113.66', ['sshd'], 2);
  assert.ok([...table.entries(2)].some((e) => e.address === '203.0.113.66' && e.failures > 50));
});

test('an address seen by more jails than fit in the bit set keeps all of them, and a reused slot starts with none', () => {
  const table = new OffenderTable(1, DAY);
  const jails = Array.from({ length: 40 }, (_, i) => `jail${i}`);
  for (const j of jails) table.addFailure('192.0.2.1', [j], 1);
  assert.deepEqual([...[...table.entries(0)][0]!.jails].sort(), [...jails].sort());
  // A ban outweighs an entry of fewer failures than a ban weighs, pushing the only entry out.
  const light = new OffenderTable(1, DAY);
  light.addFailure('192.0.2.3', ['sshd'], 1);
  light.addBan('192.0.2.2', 'recidive', 2);
  assert.deepEqual([...light.entries(0)].map((e) => [e.address, [...e.jails]]), [['192.0.2.2', ['recidive']]]);
  // The 40 failures outweigh a ban until they are a day old.
  table.addBan('192.0.2.2', 'recidive', 2);
  assert.deepEqual([...table.entries(0)].map((e) => e.address), ['192.0.2.1']);
  table.addBan('192.0.2.2', 'recidive', DAY + 2);
  assert.deepEqual([...table.entries(0)].map((e) => [e.address, [...e.jails]]), [['192.0.2.2', ['recidive']]]);
});

test('a burst of one-off bans leaves a table full of banned addresses as it is, and takes the place of lighter entries', () => {
  const table = new OffenderTable(1000, DAY);
  const first = Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  for (const a of first) table.addBan(a, 'sshd', 1);
  for (let i = 0; i < 10_000; i++) table.addBan(`10.1.${i >> 8}.${i & 255}`, 'sshd', 2);
  assert.deepEqual([...members(table).keys()].sort(), [...first].sort());
  // A failure-only entry weighs less than a ban: newcomers' bans take those places.
  const mixed = new OffenderTable(1000, DAY);
  for (let i = 0; i < 1000; i++) mixed.addFailure(`10.3.${i >> 8}.${i & 255}`, ['sshd'], 1);
  for (let i = 0; i < 5000; i++) mixed.addBan(`10.2.${i >> 8}.${i & 255}`, 'sshd', 2);
  const banned = [...mixed.entries(0)].filter((e) => e.bans === 1).length;
  assert.ok(banned > 900, `bans took the places of failure-only entries: ${banned} of 1000`);
  assert.equal(mixed.size, 1000);
});
