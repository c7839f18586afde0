import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bannedJson } from '../../src/control/banned.js';
import { streamDaemonResult } from '../../src/control/client.js';
import { ControlServer, JsonPieces } from '../../src/control/server.js';
import { createLogger } from '../../src/core/log.js';
import { Store } from '../../src/state/store.js';

const T0 = 1_700_000_000_000;

test('banned lists every active ban once, oldest first, as one JSON array whatever the page size', () => {
  const store = Store.open(':memory:');
  const bans = Array.from({ length: 7 }, (_, i) => ({
    action: 'ban' as const, target: `198.51.100.${i}`, jail: i % 2 ? 'sshd' : 'postfix', time: T0 + (i % 3) * 1000, until: i === 4 ? null : T0 + 3_600_000, reason: `reason ${i}`, origin: 'test', evidence: [],
  }));
  store.commit({ bans });
  store.commit({ unbans: [{ jail: 'sshd', target: '198.51.100.3', time: T0 + 5000, reason: 'lifted' }] });
  const expected = bans.filter((b) => b.target !== '198.51.100.3')
    .map((b, order) => ({ b, order }))
    .sort((x, y) => x.b.time - y.b.time || x.order - y.order)
    .map(({ b }) => ({ target: b.target, jail: b.jail, time: new Date(b.time).toISOString(), until: b.until === null ? null : new Date(b.until).toISOString(), reason: b.reason, origin: b.origin }));
  for (const pageSize of [1, 2, 3, 6, 100]) {
    const text = [...bannedJson(store, pageSize)].map((p) => p.toString()).join('');
    assert.deepEqual(JSON.parse(text), expected, `pages of ${pageSize}`);
  }
  store.close();
  const empty = Store.open(':memory:');
  assert.equal([...bannedJson(empty)].join(''), '[]');
  empty.close();
});

test('a listing that fails half-way cuts the connection, and the client says so at once instead of waiting', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-listing-'));
  const logged: string[] = [];
  const server = new ControlServer(join(dir, 'control.sock'), () => new JsonPieces((function* () {
    yield '[{"target":"198.51.100.1"}';
    throw new Error('database disk image is malformed');
  })()), createLogger({ write: (l) => logged.push(l), timestamps: false }));
  await server.listen();
  try {
    const received: string[] = [];
    const sink = { write: (chunk: Buffer | string) => received.push(chunk.toString()) > 0, once: () => sink };
    const started = Date.now();
    await assert.rejects(streamDaemonResult(join(dir, 'control.sock'), 'banned', sink, {}, 10_000), /closed the connection before the end of its answer/);
    assert.ok(Date.now() - started < 5000, 'not left to the timeout');
    assert.match(logged.join('\n'), /malformed/);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
