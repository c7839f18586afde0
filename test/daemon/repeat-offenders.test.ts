import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFiles } from '../../src/config/load.js';
import type { Decision } from '../../src/core/types.js';
import { Pipeline, stateChangesOf } from '../../src/daemon/pipeline.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';
import { Store } from '../../src/state/store.js';
import { brief, iso, replayLines, sshFail } from '../helpers/replay.js';

const M = 60_000;
const T0 = Date.UTC(2024, 5, 15, 10, 0, 0);
const at = (m: number, s = 0): number => T0 + m * M + s * 1000;

test('replay: a returning attacker gets 10m, 20m, 40m, then 1h (max), and the recidive jail bans it on every port for a week', async () => {
  const a = '198.51.100.9';
  const lines = [0, 15, 40, 90].flatMap((m) => [sshFail(at(m), a), sshFail(at(m, 1), a)]);
  const { decisions } = await replayLines(`
jails:
  sshd:
    maxretry: 2
    findtime: 10m
    bantime: { base: 10m, factor: 2, max: 1h }
  recidive: { enabled: true, maxretry: 4, findtime: 1d, bantime: 1w }
`, lines);
  assert.deepEqual(decisions.map(brief), [
    `ban ${a} sshd ${iso(at(0, 1))} ${iso(at(10, 1))}`,
    `unban ${a} sshd ${iso(at(10, 1))} null`,
    `ban ${a} sshd ${iso(at(15, 1))} ${iso(at(35, 1))}`,
    `unban ${a} sshd ${iso(at(35, 1))} null`,
    `ban ${a} sshd ${iso(at(40, 1))} ${iso(at(80, 1))}`,
    `unban ${a} sshd ${iso(at(80, 1))} null`,
    `ban ${a} sshd ${iso(at(90, 1))} ${iso(at(150, 1))}`,
    `ban ${a} recidive ${iso(at(90, 1))} ${iso(at(90, 1) + 7 * 86_400_000)}`,
  ]);
  assert.match(decisions[6]!.reason, /; banned 3 time\(s\) before, so 1h$/);
  assert.equal(decisions[7]!.reason, 'banned 4 times within 1d (in sshd)');
});

test('replay: counted per jail, or across jails', async () => {
  const a = '203.0.113.5';
  const { decisions } = await replayLines(`
jails:
  sshd: { maxretry: 2, bantime: { base: 10m, factor: 2, max: 1d, count: jail } }
  ssh-all: { filters: [sshd], sources: [{ file: /var/log/auth.log }], maxretry: 2, bantime: { base: 10m, factor: 2, max: 1d, count: all } }
`, [sshFail(at(0), a), sshFail(at(0, 1), a), sshFail(at(100), a), sshFail(at(100, 1), a)]);
  assert.deepEqual(decisions.map(brief), [
    `ban ${a} sshd ${iso(at(0, 1))} ${iso(at(10, 1))}`,
    // Across jails, the sshd ban a moment ago already counts.
    `ban ${a} ssh-all ${iso(at(0, 1))} ${iso(at(20, 1))}`,
    `unban ${a} sshd ${iso(at(10, 1))} null`,
    `unban ${a} ssh-all ${iso(at(20, 1))} null`,
    `ban ${a} sshd ${iso(at(100, 1))} ${iso(at(120, 1))}`,
    `ban ${a} ssh-all ${iso(at(100, 1))} ${iso(at(180, 1))}`,
  ]);
});

test('ban counts and the recidive window survive a restart (through the SQLite store)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-repeat-'));
  try {
    const config = configFromFiles([{ file: 't.yaml', text: `
jails:
  sshd: { maxretry: 1, bantime: { base: 10m, factor: 3, max: 1d } }
  recidive: { enabled: true, maxretry: 3, findtime: 1d, bantime: 1w }
` }]);
    const jails = config.jails.filter((j) => j.enabled);
    const parser = new EnvelopeParser();
    /** One daemon lifetime: a pipeline over the store, committing like the daemon does. */
    const lifetime = (store: Store, restoreAt: number | null) => {
      const p = new Pipeline({
        jails, globalIgnore: [], mode: 'replay', origin: 'test', includeHostAddresses: false, banCounts: (t, j) => store.banCount(t, j),
        failureLog: { nextId: store.nextFailureId() },
      });
      p.addRoute('r', jails.map((j) => j.name));
      if (restoreAt !== null) {
        const r = p.retention();
        p.restore(store.activeBans().filter((b) => b.until === null || b.until > restoreAt), store.failuresSince(restoreAt - r.failures), store.bansSince(restoreAt - r.history));
      }
      return (line: string | null, expireAt?: number): Decision[] => {
        if (line !== null) p.process(parser.parse(line, 't'), 'r');
        if (expireAt !== undefined) p.expire(expireAt);
        const out = p.take();
        store.commit(stateChangesOf(out));
        return out.decisions;
      };
    };
    const a = '198.51.100.20';
    let store = Store.open(dir);
    let step = lifetime(store, null);
    assert.deepEqual(step(sshFail(at(0), a)).map((d) => `${d.action} ${d.target} ${d.jail} ${d.until! - d.time}`), [`ban ${a} sshd ${10 * M}`]);
    assert.deepEqual(step(null, at(10)).map((d) => `${d.action} ${d.target}`), [`unban ${a}`]);
    assert.deepEqual(step(sshFail(at(11), a)).map((d) => `${d.action} ${d.target} ${d.jail} ${d.until! - d.time}`), [`ban ${a} sshd ${30 * M}`]);
    store.close();

    // Restart: a new pipeline, the same database.
    store = Store.open(dir);
    step = lifetime(store, at(50));
    const d = step(sshFail(at(60), a));
    assert.deepEqual(d.map((x) => brief({ ...x, time: iso(x.time), until: x.until === null ? null : iso(x.until) })), [
      `ban ${a} sshd ${iso(at(60))} ${iso(at(60) + 90 * M)}`,
      `ban ${a} recidive ${iso(at(60))} ${iso(at(60) + 7 * 86_400_000)}`,
    ]);
    assert.equal(store.banCount(a, 'sshd'), 3);
    assert.equal(store.banCount(a), 4);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
