import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LongWindowDetector, type LongWindowConfig } from '../../src/detectors/spray.js';
import { brief, iso, replayLines, sshFail } from '../helpers/replay.js';

const H = 3_600_000;
const D = 24 * H;
const config: LongWindowConfig = { window: D, maxretry: 4, spray: { sources: 3, maxretry: 2 }, maxTracked: 1000 };

test('slow: an address failing maxretry times within the long window trips; spread wider, it does not', () => {
  const d = new LongWindowDetector({ ...config, spray: null });
  for (const h of [0, 6, 12]) assert.deepEqual(d.record('198.51.100.7', null, h * H), []);
  assert.deepEqual(d.record('198.51.100.7', null, 18 * H), [{ address: '198.51.100.7', kind: 'slow', failures: 4 }]);
  const e = new LongWindowDetector({ ...config, spray: null });
  for (const h of [0, 9, 18, 27, 36, 45]) assert.deepEqual(e.record('198.51.100.8', null, h * H), [], `hour ${h}`);
  assert.equal(e.evidenceOf('198.51.100.8', 45 * H).failures, 3);
});

test('spray: a user name tried from `sources` addresses marks them all; those with enough failures are banned at once', () => {
  const d = new LongWindowDetector(config);
  assert.deepEqual(d.record('203.0.113.1', 'backup', 0), []);
  assert.deepEqual(d.record('203.0.113.1', 'admin', H), []);
  assert.deepEqual(d.record('203.0.113.2', 'admin', 2 * H), []);
  // The third address makes "admin" sprayed: .1 already has 2 failures, .2 and .3 only 1.
  assert.deepEqual(d.record('203.0.113.3', 'admin', 3 * H), [{ address: '203.0.113.1', kind: 'spray', failures: 2, user: 'admin' }]);
  assert.equal(d.sprayedUsers, 1);
  assert.deepEqual(d.evidenceOf('203.0.113.2', 3 * H), { failures: 1, sprayedUser: 'admin' });
  // A participant's next failure, whatever the user name, bans it.
  assert.deepEqual(d.record('203.0.113.2', 'zeus', 4 * H), [{ address: '203.0.113.2', kind: 'spray', failures: 2, user: 'admin' }]);
  // A newcomer trying the sprayed name joins the participants.
  assert.deepEqual(d.record('203.0.113.9', 'admin', 5 * H), []);
  assert.deepEqual(d.record('203.0.113.9', 'root', 6 * H), [{ address: '203.0.113.9', kind: 'spray', failures: 2, user: 'admin' }]);
});

test('a user name tried from fewer addresses than the threshold, or spread wider than the window, is not a spray', () => {
  const d = new LongWindowDetector(config);
  d.record('198.51.100.60', 'carol', 0);
  d.record('198.51.100.61', 'carol', H);
  assert.deepEqual(d.record('198.51.100.61', 'carol', 2 * H), []);
  assert.deepEqual(d.record('198.51.100.62', 'carol', D + 0.5 * H), [], 'the first attempt is older than a day');
  assert.equal(d.sprayedUsers, 0);
});

test('memory stays bounded: counts, capped addresses and user names, aged out', () => {
  const d = new LongWindowDetector({ ...config, maxTracked: 100 });
  for (let i = 0; i < 10_000; i++) d.record(`10.0.${i >> 8}.${i & 255}`, `user${i}`, i * 1000);
  // At most the cap; the oldest eighth goes at once when it is exceeded.
  for (const n of [d.trackedAddresses, d.trackedUsers]) assert.ok(n <= 100 && n > 100 - 100 / 8 - 1, `${n} tracked`);
  d.expire(10_000_000 + D);
  assert.equal(d.trackedAddresses, 0);
  assert.equal(d.trackedUsers, 0);
});

test('replay: a generated Hail Mary Cloud — slow source and sprayed user names — banned exactly; legitimate users are not', async () => {
  const t0 = Date.UTC(2024, 5, 15, 0, 0, 0);
  const at = (m: number): number => t0 + m * 60_000;
  const lines: string[] = [];
  // A slow source: one failure every three hours (8 a day, never 2 within 10 minutes).
  for (let m = 0; m <= 900; m += 180) lines.push(sshFail(at(m), '198.51.100.7', 'backup'));
  // The cloud: 8 hosts work through an alphabetical list, one attempt each every 40 minutes across the hosts.
  for (let k = 1; k <= 8; k++) lines.push(sshFail(at(40 * k + 5), `203.0.113.${k}`, 'admin'));
  for (let k = 1; k <= 8; k++) lines.push(sshFail(at(360 + 40 * k + 5), `203.0.113.${k}`, 'alice'));
  // Legitimate users: bob mistypes twice a day, carol from her phone, laptop and office.
  lines.push(sshFail(at(100), '198.51.100.50', 'bob'), sshFail(at(500), '198.51.100.50', 'bob'));
  lines.push(sshFail(at(150), '198.51.100.60', 'carol'), sshFail(at(300), '198.51.100.61', 'carol'), sshFail(at(450), '198.51.100.62', 'carol'));
  lines.sort();
  const { decisions } = await replayLines(`
jails:
  sshd:
    maxretry: 5
    findtime: 10m
    bantime: 1h
    slow: { window: 1d, maxretry: 6, bantime: 1w, spray: { sources: 5, maxretry: 2 } }
`, lines);
  const W = 7 * D;
  const ban = (m: number, target: string): string => `ban ${target} sshd ${iso(at(m))} ${iso(at(m) + W)}`;
  assert.deepEqual(decisions.map(brief), [
    ...[1, 2, 3, 4, 5, 6, 7, 8].map((k) => ban(360 + 40 * k + 5, `203.0.113.${k}`)),
    ban(900, '198.51.100.7'),
  ]);
  const reasons = decisions.map((d) => d.reason);
  assert.equal(reasons[0], 'distributed brute force: tried user "admin", which was tried from at least 5 addresses within 1d; 2 failure(s) within 1d');
  // Host 5 made "alice" sprayed too (hosts 1-4 were banned by then, so they no longer count as its participants).
  assert.match(reasons[4]!, /tried user "alice"/);
  assert.equal(reasons[8], 'slow brute force: 6 failures within 1d');
});
