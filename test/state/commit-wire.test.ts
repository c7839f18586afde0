import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Decision } from '../../src/core/types.js';
import { fromWire, toWire } from '../../src/state/commit-wire.js';
import { FailureRows, type StateChanges } from '../../src/state/store.js';

/** A commit's trip to the writer thread (commit-wire.ts): what the store writes survives it, as a structured clone. */

const rows = (ids: number[]): FailureRows => FailureRows.of(ids.map((id) => ({ id, jail: 'sshd', address: `192.0.2.${id}`, time: 1000 + id, line: `line ${id}` })));

test('bans, their evidence and what to read into it survive the trip; consumed failures stay behind', () => {
  const stored = ['', '', 'line 11'];
  const bans: Decision[] = [
    { action: 'ban', target: '192.0.2.10', jail: 'sshd', time: 5000, until: 65_000, duration: 60_000, reason: '3 failures', origin: 'gw', evidence: stored, ports: [22], protocol: 'tcp' },
    { action: 'ban', target: '2001:db8::/64', jail: 'sshd', time: 5001, until: null, reason: 'netblock escalation', origin: 'gw', evidence: ['banned 2001:db8::1', 'banned 2001:db8::2'] },
    { action: 'ban', target: '198.51.100.7', jail: 'recidive', time: 5002, until: 99_000, reason: 'manual', origin: 'cli' },
  ];
  const changes: StateChanges = {
    checkpoints: [{ key: 'file:/var/log/auth.log', value: '{"ino":1}' }],
    failuresAdded: rows([11, 12, 13]),
    failuresConsumed: [2, 11],
    failuresCleared: [{ jail: 'sshd', address: '192.0.2.10', before: 5000 }],
    bans,
    evidenceToRead: [{ lines: stored, ids: [1, 2] }],
    unbans: [{ jail: 'sshd', target: '192.0.2.99', time: 5003, reason: 'manual unban' }],
  };
  const back = fromWire(structuredClone(toWire(changes)));
  assert.ok(back.failuresAdded instanceof FailureRows);
  assert.deepEqual(back.failuresAdded.ids, [12, 13], 'row 11 was consumed by a ban of this commit; id 2 is older and not in it');
  assert.deepEqual(back.failuresAdded.lines, ['line 12', 'line 13']);
  assert.equal(back.failuresConsumed, undefined);
  assert.deepEqual(back.checkpoints, changes.checkpoints);
  assert.deepEqual(back.failuresCleared, changes.failuresCleared);
  assert.deepEqual(back.unbans, changes.unbans);
  const stripped = bans.map(({ action, target, jail, time, until, reason, origin, evidence }) => ({ action, target, jail, time, until, reason, origin, evidence: evidence ?? [] }));
  assert.deepEqual(back.bans, stripped);
  // The store fills placeholders in place: the array to read into must be the ban's own.
  assert.equal(back.evidenceToRead!.length, 1);
  assert.equal(back.evidenceToRead![0]!.lines, back.bans![0]!.evidence);
  assert.deepEqual(back.evidenceToRead![0]!.ids, [1, 2]);
});

test('a commit without bans or failures crosses as it is', () => {
  const changes: StateChanges = { checkpoints: [{ key: 'k', value: 'v' }], pruneBefore: 42 };
  assert.deepEqual(fromWire(structuredClone(toWire(changes))), changes);
});

test('evidence to read that belongs to no ban of the commit is refused', () => {
  assert.throws(() => toWire({ bans: [], evidenceToRead: [{ lines: [''], ids: [1] }] }), /belongs to no ban/);
});
