import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FailureRows, SCHEMA_VERSION, Store, type ListingKey } from '../../src/state/store.js';
import type { Decision } from '../../src/core/types.js';

const ban = (target: string, time: number, until: number | null, jail = 'sshd'): Decision =>
  ({ action: 'ban', target, jail, time, until, reason: 'r', origin: 'n', evidence: ['line a', 'line b'] });

test('bans, failures and positions survive reopening; one ban per jail and target is active', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    let s = Store.open(dir);
    s.commit({
      checkpoints: [{ key: 'file:/x', value: '{"offset":10}' }],
      failuresAdded: FailureRows.of([{ id: 1, jail: 'sshd', address: '192.0.2.1', time: 1000, line: 'l1' }]),
      bans: [ban('198.51.100.1', 2000, 5000), ban('2001:db8::1', 2000, null)],
    });
    s.commit({ bans: [ban('198.51.100.1', 3000, 9000)] });
    s.close();
    s = Store.open(dir);
    assert.equal(s.getPosition('file:/x'), '{"offset":10}');
    assert.deepEqual(s.failuresSince(0).map((f) => f.address), ['192.0.2.1']);
    assert.equal(s.nextFailureId(), 2);
    assert.deepEqual(s.failureLines([1, 7]), new Map([[1, 'l1']]));
    const active = s.activeBans();
    assert.deepEqual(active.map((b) => [b.target, b.until]), [['2001:db8::1', null], ['198.51.100.1', 9000]]);
    assert.deepEqual(active[0]!.evidence, ['line a', 'line b']);
    assert.equal(s.banCount('198.51.100.1'), 2);
    assert.equal(s.banCount('198.51.100.1', 'sshd'), 2);
    s.commit({ unbans: [{ jail: 'sshd', target: '198.51.100.1', time: 9000, reason: 'bantime expired' }], failuresCleared: [{ jail: 'sshd', address: '192.0.2.1', before: 1000 }] });
    assert.deepEqual(s.activeBans().map((b) => b.target), ['2001:db8::1']);
    assert.equal(s.failuresSince(0).length, 0);
    const hist = s.history({ target: '198.51.100.1' });
    assert.equal(hist.length, 2);
    assert.ok(hist.every((h) => !h.active));
    assert.equal(hist[0]!.liftReason, 'bantime expired');
    assert.deepEqual([hist[1]!.liftReason, hist[1]!.liftedAt], ['replaced by a new ban', 3000]);
    s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed commit writes nothing of the batch', () => {
  const s = Store.open(':memory:');
  assert.throws(() => s.commit({
    checkpoints: [{ key: 'k', value: 'v' }],
    // A NULL line violates NOT NULL after the position row was prepared in the same transaction.
    failuresAdded: FailureRows.of([{ id: 1, jail: 'j', address: 'a', time: 1, line: null as unknown as string }]),
  }), /cannot write to the state database .* nothing from this batch was saved/);
  assert.equal(s.getPosition('k'), undefined);
  s.close();
});

test('schema version is recorded and a newer database is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    Store.open(dir).close();
    const db = new Database(join(dir, 'state.db'));
    assert.equal(db.prepare("SELECT value FROM meta WHERE key='schema_version'").pluck().get(), String(SCHEMA_VERSION));
    db.prepare("UPDATE meta SET value = '999' WHERE key = 'schema_version'").run();
    db.close();
    assert.throws(() => Store.open(dir), /schema version 999, newer than this Portcullis understands/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('many failures in one commit are all kept, in order; those consumed in the same commit are never written, earlier ones are cleared', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    const store = Store.open(dir);
    const row = (address: string, i: number) => ({ id: i + 1, jail: 'sshd', address, time: 1000 + i, line: `line ${i} from ${address}` });
    store.commit({ failuresAdded: FailureRows.of([row('198.51.100.1', 0), row('198.51.100.2', 1)]) });
    // 200 rows: several multi-row statements and a remainder; .2 is banned in this commit (one of its failures was written before), .3 too.
    const added = Array.from({ length: 200 }, (_, i) => row(['198.51.100.2', '198.51.100.3', '198.51.100.4', '2001:db8::5'][i % 4]!, 2 + i));
    const banned = (f: { address: string }) => f.address === '198.51.100.2' || f.address === '198.51.100.3';
    store.commit({
      failuresAdded: FailureRows.of(added), failuresConsumed: [2, ...added.filter(banned).map((f) => f.id)],
      failuresCleared: [{ jail: 'sshd', address: '198.51.100.2', before: 1000 + 196 }, { jail: 'sshd', address: '198.51.100.3', before: 1000 + 197 }],
    });
    const expected = [row('198.51.100.1', 0), ...added.filter((f) => !banned(f))];
    assert.deepEqual(store.failuresSince(0), expected);
    assert.equal(store.nextFailureId(), 203);
    // Written before its ban, the consumed failure 2 is still there for evidence; the rest are not.
    assert.deepEqual([...store.failureLines([2, 3, 4, 5]).keys()], [2, 5]);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cleared address stops counting up to its time, in its jail only: not restored, later failures are', () => {
  const store = Store.open(':memory:');
  const row = (id: number, jail: string, time: number) => ({ id, jail, address: '198.51.100.7', time, line: `line ${id}` });
  store.commit({ failuresAdded: FailureRows.of([row(1, 'sshd', 1000), row(2, 'sshd', 2000), row(3, 'dovecot', 2000)]) });
  store.commit({ failuresCleared: [{ jail: 'sshd', address: '198.51.100.7', before: 2000 }], failuresAdded: FailureRows.of([row(4, 'sshd', 3000)]) });
  assert.deepEqual(store.failuresSince(0).map((f) => f.id), [3, 4]);
  // Lines are still there for evidence until pruned; pruning drops the tombstone with them.
  assert.deepEqual(store.failureLines([2, 1]), new Map([[2, 'line 2'], [1, 'line 1']]));
  store.pruneFailures(2500);
  assert.deepEqual(store.failuresSince(0).map((f) => f.id), [4]);
  store.close();
});

test('bans in force: active and not expired, without their evidence', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    const store = Store.open(dir);
    const ban = (target: string, until: number | null): Decision => ({ action: 'ban', target, jail: 'sshd', time: 1000, until, reason: 'r', origin: 'o', evidence: ['e'] });
    store.commit({ bans: [ban('198.51.100.1', 5000), ban('198.51.100.2', null), ban('198.51.100.3', 2000)] });
    store.commit({ unbans: [{ jail: 'sshd', target: '198.51.100.1', time: 1500, reason: 'manual' }] });
    assert.deepEqual(store.bansInForce(3000).sort((a, b) => a.target.localeCompare(b.target)), [{ target: '198.51.100.2', jail: 'sshd', until: null }]);
    assert.equal(store.bansInForce(1500).length, 2);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a database from before failure ids (schema 2) migrates and keeps its pending failures and ban counts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    const store = Store.open(dir);
    store.close();
    // Back to schema 2 as it was: the address index, no tombstones, rows written without ids.
    const db = new Database(join(dir, 'state.db'));
    db.exec(`DROP TABLE failures_cleared; DROP INDEX bans_listing; CREATE INDEX failures_key ON failures(jail, address);
      DROP INDEX bans_target; CREATE INDEX bans_target ON bans(target);
      CREATE TABLE ban_counts (address TEXT NOT NULL, jail TEXT NOT NULL, count INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY (address, jail)) WITHOUT ROWID;
      INSERT INTO failures(jail, address, time, line) VALUES ('sshd', '192.0.2.9', 5, 'old one'), ('sshd', '192.0.2.9', 6, 'old two');
      INSERT INTO bans(target, jail, created, reason, origin, active) VALUES ('192.0.2.9', 'sshd', 1, 'r', 'o', 0), ('192.0.2.9', 'recidive', 2, 'r', 'o', 1);
      UPDATE meta SET value = '2' WHERE key = 'schema_version'`);
    db.close();
    const migrated = Store.open(dir);
    assert.deepEqual(migrated.failuresSince(0).map((f) => [f.id, f.line]), [[1, 'old one'], [2, 'old two']]);
    assert.equal(migrated.nextFailureId(), 3);
    // Ban counts come from the bans themselves.
    assert.deepEqual([migrated.banCount('192.0.2.9'), migrated.banCount('192.0.2.9', 'sshd'), migrated.banCount('192.0.2.9', 'dovecot')], [2, 1, 0]);
    migrated.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('active bans listed as JSON by SQLite, oldest first, exactly as JSON.stringify and toISOString would write them', () => {
  const store = Store.open(':memory:');
  const odd = { ...ban('2001:db8::7', 1_700_000_000_007, null, 'dovecot'), reason: 'quote " backslash \\ tab \t ünï', origin: 'node-β' };
  store.commit({ bans: [ban('198.51.100.9', 1_700_000_000_999, 1_700_000_600_001), odd] });
  store.commit({ bans: [ban('192.0.2.1', 1_600_000_000_000, 1_600_000_000_000)] });
  // Milliseconds at the edges of rounding, and a date far ahead.
  store.commit({ bans: [ban('192.0.2.2', 1_800_000_000_500, 4_102_444_799_999), ban('192.0.2.3', 1_800_000_000_501, 4_102_444_800_010)] });
  const expected = [ban('192.0.2.1', 1_600_000_000_000, 1_600_000_000_000), odd, ban('198.51.100.9', 1_700_000_000_999, 1_700_000_600_001),
    ban('192.0.2.2', 1_800_000_000_500, 4_102_444_799_999), ban('192.0.2.3', 1_800_000_000_501, 4_102_444_800_010)]
    .map((b) => ({ target: b.target, jail: b.jail, time: new Date(b.time).toISOString(), until: b.until === null ? null : new Date(b.until).toISOString(), reason: b.reason, origin: b.origin }));
  // Pages of two: each ban once, in order, however the listing is cut.
  const pages: string[] = [];
  let from: ListingKey | null = null;
  for (;;) {
    const to = store.activeListingEnd(from, 2);
    pages.push(store.activeListingRange(from, to)!.toString('utf8'));
    if (to === null) break;
    from = to;
  }
  assert.equal(pages.length, 3);
  assert.deepEqual(JSON.parse(`[${pages.join(',')}]`), expected);
  assert.equal(`[${pages.join(',')}]`, JSON.stringify(expected));
  assert.equal(store.activeListingEnd(null, 6), null, 'a page that is not full runs to the end');
  assert.equal(store.activeListingRange(store.activeListingEnd(null, 5), null), null, 'nothing after the last');
  store.close();
});

test('a read-only store opens only an existing database of this schema, and cannot write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-ro-'));
  try {
    assert.throws(() => Store.openReadOnly(dir), /cannot read the state database .*state\.db/);
    const writer = Store.open(dir);
    writer.commit({ bans: [ban('198.51.100.9', 1_700_000_000_000, null)] });
    const reader = Store.openReadOnly(dir);
    assert.equal(JSON.parse(`[${reader.activeListingRange(null, null)!.toString()}]`)[0].target, '198.51.100.9');
    assert.throws(() => reader.commit({ bans: [ban('198.51.100.10', 1_700_000_000_000, null)] }), /readonly|read-only/i);
    reader.close();
    writer.close();
    const db = new Database(join(dir, 'state.db'));
    db.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
    db.close();
    assert.throws(() => Store.openReadOnly(dir), new RegExp(`schema version 1, this Portcullis reads ${SCHEMA_VERSION}; the daemon migrates it`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a ban of a target still banned in the jail replaces it, in one commit and across the grouped commits of the writer thread', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  const s = Store.open(dir);
  try {
    s.commit({ bans: [ban('192.0.2.5', 1000, 60_000), ban('192.0.2.5', 2000, 70_000), ban('192.0.2.5', 2000, 70_000, 'recidive')] });
    const errors = s.commitGroup([
      { changes: { bans: [ban('192.0.2.6', 3000, 80_000)] }, now: 3000 },
      { changes: { bans: [ban('192.0.2.6', 4000, 90_000), ban('192.0.2.5', 4000, 95_000)] }, now: 4000 },
    ]);
    assert.deepEqual(errors, [null, null]);
    assert.deepEqual(s.activeBans().map((b) => [b.target, b.jail, b.until]).sort(), [
      ['192.0.2.5', 'recidive', 70_000], ['192.0.2.5', 'sshd', 95_000], ['192.0.2.6', 'sshd', 90_000],
    ]);
    const replaced = s.history({ jail: 'sshd' }).filter((h) => !h.active);
    assert.deepEqual(replaced.map((h) => [h.target, h.liftedAt, h.liftReason]).sort(), [
      ['192.0.2.5', 2000, 'replaced by a new ban'], ['192.0.2.5', 4000, 'replaced by a new ban'], ['192.0.2.6', 4000, 'replaced by a new ban'],
    ]);
  } finally {
    s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('in a group, a batch failing for a transient reason (disk full) takes the later ones with it, so that order is kept on the retry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  const s = Store.open(dir);
  try {
    // SQLite reports a full disk where it must write: here while the second batch is applied.
    const full = { get unbans(): never { throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }); } };
    const failures = s.commitGroup([
      { changes: { bans: [ban('192.0.2.1', 1000, 60_000)] }, now: 1000 },
      { changes: full, now: 2000 },
      { changes: { bans: [ban('192.0.2.3', 3000, 60_000)] }, now: 3000 },
    ]);
    assert.equal(failures[0], null);
    assert.match(failures[1]!.message, /disk is full; nothing from this batch was saved — free disk space or fix permissions: Portcullis keeps the batch/);
    assert.equal(failures[1]!.transient, true);
    assert.deepEqual(failures[2], failures[1]);
    assert.deepEqual(s.activeBans().map((b) => b.target), ['192.0.2.1']);
  } finally {
    s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('failure rows without those a ban consumed: ids in a row, ids far apart, and consumed ids from other batches', () => {
  const rows = (ids: number[]): FailureRows => FailureRows.of(ids.map((id) => ({ id, jail: 'sshd', address: `192.0.2.${id % 250}`, time: id, line: `line ${id}` })));
  const kept = (r: FailureRows): Array<[number, string]> => r.ids.map((id, i) => [id, r.lines[i]!]);
  // In a row (one byte per id of the range), with consumed ids before, inside and after it.
  const inRow = rows(Array.from({ length: 10 }, (_, i) => 100 + i));
  assert.deepEqual(kept(inRow.without([3, 100, 104, 109, 5000])), [101, 102, 103, 105, 106, 107, 108].map((id) => [id, `line ${id}`]));
  // Far apart (a set).
  const apart = rows([1, 1_000_000, 2_000_000_000]);
  assert.deepEqual(kept(apart.without([1_000_000, 7])), [[1, 'line 1'], [2_000_000_000, 'line 2000000000']]);
  assert.equal(inRow.without([]), inRow);
  // A commit that adds no row while a ban consumes rows of earlier commits.
  const none = new FailureRows();
  assert.equal(none.without([101, 7]).length, 0);
  assert.equal(inRow.without([50, 200]).length, 10);
});
