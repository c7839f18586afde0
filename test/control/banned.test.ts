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

async function listing(pieces: AsyncIterable<string | Buffer>): Promise<string> {
  const parts: string[] = [];
  for await (const piece of pieces) parts.push(piece.toString());
  return parts.join('');
}

function ban(i: number) {
  return {
    action: 'ban' as const, target: `198.51.${i >> 8}.${i & 255}`, jail: i % 2 ? 'sshd' : 'postfix', time: T0 + (i % 3) * 1000, until: i === 4 ? null : T0 + 3_600_000, reason: `reason ${i}`, origin: 'test', evidence: [],
  };
}

/** What the listing must be: the active bans oldest first (by time, then as made), as JSON.stringify writes them. */
function expectedOf(bans: Array<ReturnType<typeof ban>>) {
  return bans.map((b, order) => ({ b, order }))
    .sort((x, y) => x.b.time - y.b.time || x.order - y.order)
    .map(({ b }) => ({ target: b.target, jail: b.jail, time: new Date(b.time).toISOString(), until: b.until === null ? null : new Date(b.until).toISOString(), reason: b.reason, origin: b.origin }));
}

test('banned lists every active ban once, oldest first, as one JSON array whatever the page size', async () => {
  const store = Store.open(':memory:');
  const bans = Array.from({ length: 7 }, (_, i) => ban(i));
  store.commit({ bans });
  store.commit({ unbans: [{ jail: 'sshd', target: '198.51.0.3', time: T0 + 5000, reason: 'lifted' }] });
  const expected = expectedOf(bans.filter((b) => b.target !== '198.51.0.3'));
  for (const pageSize of [1, 2, 3, 6, 100]) {
    assert.deepEqual(JSON.parse(await listing(bannedJson(store, { pageSize }))), expected, `pages of ${pageSize}`);
  }
  store.close();
  const empty = Store.open(':memory:');
  assert.equal(await listing(bannedJson(empty)), '[]');
  empty.close();
});

test('worker threads build the pages of a large listing, and the answer is the same, in order, byte for byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-listing-'));
  const store = Store.open(dir);
  try {
    const bans = Array.from({ length: 3000 }, (_, i) => ban(i));
    store.commit({ bans });
    // Lifted bans leave holes, some pages hold none at all.
    store.commit({ unbans: bans.filter((_, i) => i % 7 === 0 || (i >= 900 && i < 1200)).map((b) => ({ jail: b.jail, target: b.target, time: T0 + 5000, reason: 'lifted' })) });
    const inline = await listing(bannedJson(store, { pageSize: 50, threads: 1 }));
    assert.deepEqual(JSON.parse(inline), expectedOf(bans.filter((_, i) => !(i % 7 === 0 || (i >= 900 && i < 1200)))));
    for (const threads of [2, 3]) {
      assert.equal(await listing(bannedJson(store, { pageSize: 50, threads })), inline, `${threads} threads`);
    }
    // A reader that stops early ends the workers (the test would not end otherwise).
    const early = bannedJson(store, { pageSize: 50, threads: 2 });
    for await (const piece of early) if (piece.length > 100) break;
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker that cannot open the database fails the listing with the reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-listing-'));
  const store = Store.open(dir);
  try {
    store.commit({ bans: Array.from({ length: 10 }, (_, i) => ban(i)) });
    // The daemon's own connection goes on working on the deleted file; a new connection cannot open it.
    rmSync(join(dir, 'state.db'));
    await assert.rejects(listing(bannedJson(store, { pageSize: 3, threads: 2 })), /a thread listing the bans from .*state\.db failed: .*SQLITE_CANTOPEN/);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
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

test('the client passes a streamed answer on exactly, however the socket cuts it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-listing-'));
  const text = JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ n: i, s: 'x'.repeat(i) })));
  // One byte a piece, then pieces of every length up to 5: the held-back tail meets chunks of 1, 2 and more bytes.
  const cuts = [...text.slice(0, 200)].concat(text.slice(200).match(/[^]{1,5}/g)!);
  const server = new ControlServer(join(dir, 'control.sock'), () => new JsonPieces(cuts), createLogger({ write: () => undefined, timestamps: false }));
  await server.listen();
  try {
    const received: Buffer[] = [];
    const sink = { write: (chunk: Buffer | string) => received.push(Buffer.from(chunk)) > 0, once: () => sink };
    await streamDaemonResult(join(dir, 'control.sock'), 'banned', sink, {}, 10_000);
    assert.equal(Buffer.concat(received).toString(), text);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
