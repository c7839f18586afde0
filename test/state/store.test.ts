import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION, Store } from '../../src/state/store.js';
import type { Decision } from '../../src/core/types.js';

const ban = (target: string, time: number, until: number | null, jail = 'sshd'): Decision =>
  ({ action: 'ban', target, jail, time, until, reason: 'r', origin: 'n', evidence: ['line a', 'line b'] });

test('bans, failures and positions survive reopening; one ban per jail and target is active', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    let s = Store.open(dir);
    s.commit({
      checkpoints: [{ key: 'file:/x', value: '{"offset":10}' }],
      failuresAdded: [{ jail: 'sshd', address: '192.0.2.1', time: 1000, line: 'l1' }],
      bans: [ban('198.51.100.1', 2000, 5000), ban('2001:db8::1', 2000, null)],
    });
    s.commit({ bans: [ban('198.51.100.1', 3000, 9000)] });
    s.close();
    s = Store.open(dir);
    assert.equal(s.getPosition('file:/x'), '{"offset":10}');
    assert.deepEqual(s.failuresSince(0).map((f) => f.address), ['192.0.2.1']);
    const active = s.activeBans();
    assert.deepEqual(active.map((b) => [b.target, b.until]), [['2001:db8::1', null], ['198.51.100.1', 9000]]);
    assert.deepEqual(active[0]!.evidence, ['line a', 'line b']);
    assert.equal(s.banCount('198.51.100.1'), 2);
    assert.equal(s.banCount('198.51.100.1', 'sshd'), 2);
    s.commit({ unbans: [{ jail: 'sshd', target: '198.51.100.1', time: 9000, reason: 'bantime expired' }], failuresCleared: [{ jail: 'sshd', address: '192.0.2.1' }] });
    assert.deepEqual(s.activeBans().map((b) => b.target), ['2001:db8::1']);
    assert.equal(s.failuresSince(0).length, 0);
    const hist = s.history({ target: '198.51.100.1' });
    assert.equal(hist.length, 2);
    assert.ok(hist.every((h) => !h.active));
    assert.equal(hist[0]!.liftReason, 'bantime expired');
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
    failuresAdded: [{ jail: 'j', address: 'a', time: 1, line: null as unknown as string }],
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

test('many failures in one commit are all kept, in order; those cleared in the same commit are never written, earlier ones are deleted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-store-'));
  try {
    const store = Store.open(dir);
    const row = (address: string, i: number) => ({ jail: 'sshd', address, time: 1000 + i, line: `line ${i} from ${address}` });
    store.commit({ failuresAdded: [row('198.51.100.1', 0), row('198.51.100.2', 1)] });
    // 200 rows: several multi-row statements and a remainder; .2 is banned in this commit, .3 too.
    const added = Array.from({ length: 200 }, (_, i) => row(['198.51.100.2', '198.51.100.3', '198.51.100.4', '2001:db8::5'][i % 4]!, 2 + i));
    store.commit({ failuresAdded: added, failuresCleared: [{ jail: 'sshd', address: '198.51.100.2' }, { jail: 'sshd', address: '198.51.100.3' }] });
    const expected = [row('198.51.100.1', 0), ...added.filter((f) => f.address !== '198.51.100.2' && f.address !== '198.51.100.3')];
    assert.deepEqual(store.failuresSince(0), expected);
    // Cleared in another jail only: kept here.
    store.commit({ failuresCleared: [{ jail: 'dovecot', address: '198.51.100.1' }] });
    assert.equal(store.failuresSince(0).length, expected.length);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
