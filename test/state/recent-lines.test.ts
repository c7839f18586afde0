import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentLines } from '../../src/state/recent-lines.js';
import { FailureRows } from '../../src/state/store.js';

const rows = (ids: number[]): FailureRows =>
  FailureRows.of(ids.map((id) => ({ id, jail: 'sshd', address: '192.0.2.1', time: id, line: `line ${String(id).padStart(4, '0')}` })));

test('recent failure lines are found by id across batches, within a budget of characters, oldest batches going first', () => {
  const recent = new RecentLines(30); // 9 characters a line: three lines fit
  recent.add(rows([1, 2]));
  recent.add(rows([3]));
  assert.equal(recent.get(1), 'line 0001');
  assert.equal(recent.get(3), 'line 0003');
  assert.equal(recent.get(0), undefined);
  assert.equal(recent.get(4), undefined);
  recent.add(rows([4, 5])); // 45 characters: the batch of 1 and 2 goes
  assert.equal(recent.get(1), undefined);
  assert.equal(recent.get(2), undefined);
  assert.deepEqual([3, 4, 5].map((id) => recent.get(id)), ['line 0003', 'line 0004', 'line 0005']);
  assert.equal(recent.size, 27);
});

test('a batch whose ids do not run on is not kept (lookups are by offset from its first id)', () => {
  const recent = new RecentLines(1000);
  recent.add(rows([10, 12]));
  recent.add(rows([]));
  assert.equal(recent.get(10), undefined);
  assert.equal(recent.get(12), undefined);
  assert.equal(recent.size, 0);
});
