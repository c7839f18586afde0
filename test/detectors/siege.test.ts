import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SiegeDetector, type SiegeConfig, type SiegeTransition } from '../../src/detectors/siege.js';
import { brief, iso, replayLines, sshFail } from '../helpers/replay.js';

const config: SiegeConfig = { enterRate: 60, enterSources: 20, leaveRate: 10, leaveFor: 600_000, maxretry: 1, rateLimit: '10/minute', allowlistOnly: false };
const T0 = Date.UTC(2024, 5, 15, 10);

/** Feeds failures at the given offsets (seconds) from `sources` rotating addresses; returns the transitions. */
function feed(d: SiegeDetector, seconds: number[], sources: number, prefix = '203.0.113.'): SiegeTransition[] {
  const out: SiegeTransition[] = [];
  seconds.forEach((s, i) => {
    const t = d.record(`${prefix}${(i % sources) + 1}`, T0 + s * 1000);
    if (t) out.push(t);
  });
  return out;
}

const every = (from: number, to: number, step: number): number[] => {
  const out: number[] = [];
  for (let s = from; s < to; s += step) out.push(s);
  return out;
};

test('enters at enterRate failures a minute from enterSources addresses, not before', () => {
  const d = new SiegeDetector(config);
  // 120 failures a minute, but from only 10 addresses: one noisy network, not a siege.
  assert.deepEqual(feed(d, every(0, 60, 0.5), 10), []);
  const e = new SiegeDetector(config);
  const t = feed(e, every(0, 60, 1), 30);
  assert.deepEqual(t, [{ action: 'siege-on', time: T0 + 59_000, failures: 60, sources: 30 }]);
  assert.equal(e.active, true);
});

test('leaves only after the rate stayed below leaveRate for the whole cool-down, on the second it was due', () => {
  const d = new SiegeDetector(config);
  feed(d, every(0, 60, 1), 30);
  // The attack stops at 59 s; from 119 s on the last minute is empty (< 10 from 110 s on: 50..59 are 10 failures, 51..59 are 9).
  assert.equal(d.tick(T0 + 109_000), null);
  assert.equal(d.tick(T0 + 110_000 + 599_000), null);
  assert.deepEqual(d.tick(T0 + 3_600_000), { action: 'siege-off', time: T0 + 110_000 + 600_000 });
  assert.equal(d.active, false);
});

test('no flapping: a rate between the two thresholds keeps the siege on, short dips do not end it', () => {
  const d = new SiegeDetector(config);
  const transitions = [
    ...feed(d, every(0, 60, 1), 30),
    // 30 a minute for half an hour: far below entering, above leaving.
    ...feed(d, every(60, 1860, 2), 30),
    // Dips below 10 a minute for 5 minutes, then 12 a minute for a minute, three times over.
    ...[0, 1, 2].flatMap((k) => {
      const base = 1860 + k * 360;
      return [...feed(d, every(base, base + 300, 10), 5), ...feed(d, every(base + 300, base + 360, 5), 5)];
    }),
  ];
  assert.deepEqual(transitions.map((t) => t.action), ['siege-on']);
  assert.equal(d.active, true);
  // And once the rate stays low for the full 10 minutes, it ends exactly once.
  const end = feed(d, every(2940, 4200, 10), 5);
  assert.deepEqual(end.map((t) => t.action), ['siege-off']);
  // Hovering just under the enter rate afterwards does not start it again.
  assert.deepEqual(feed(d, every(4200, 6000, 1.05), 40), []);
});

test('failures logged out of order inside the minute still count; older ones are dropped', () => {
  const d = new SiegeDetector({ ...config, enterRate: 3, enterSources: 3 });
  d.record('a', T0 + 30_000);
  d.record('b', T0 + 29_000);
  d.record('c', T0 - 40_000);
  assert.equal(d.rate, 2);
  assert.equal(d.record('d', T0 + 30_500)?.action, 'siege-on');
});

test('replay: a generated botnet siege enters, tightens the jail, holds through a hover, leaves after the cool-down, and enters again', async () => {
  const at = (s: number): number => T0 + s * 1000;
  const lines: string[] = [];
  // A: 120 s at one failure a second from 100 bots (each under maxretry 5 in 10m).
  for (let s = 0; s < 120; s++) lines.push(sshFail(at(s), `198.18.0.${(s % 100) + 1}`));
  // B: a hover at 10 a minute (above leave, below enter) from new addresses.
  for (let k = 0; k < 30; k++) lines.push(sshFail(at(120 + 6 * k), `203.0.113.${k + 1}`));
  // C: calm, 2 a minute from one address (banned at its first failure, still counted).
  for (let s = 400; s <= 640; s += 30) lines.push(sshFail(at(s), '203.0.113.200'));
  // D: after the siege, 20 a minute from 41 addresses: under the enter rate, so no new siege.
  for (let k = 0; k <= 40; k++) lines.push(sshFail(at(700 + 3 * k), `198.51.100.${k + 1}`));
  // E: a second burst.
  for (let s = 900; s < 960; s++) lines.push(sshFail(at(s), `198.18.1.${s - 899}`));
  lines.sort();
  const { decisions } = await replayLines(`
jails:
  sshd:
    maxretry: 5
    findtime: 10m
    bantime: 1h
    siege:
      enter: { failures_per_minute: 30, sources: 10 }
      leave: { failures_per_minute: 5, for: 5m }
      maxretry: 1
      bantime: 1d
      rate_limit: 10/minute
`, lines);
  const D = 86_400_000;
  const expected: string[] = [`siege-on * sshd ${iso(at(29))} null`];
  for (let s = 29; s < 120; s++) expected.push(`ban 198.18.0.${(s % 100) + 1} sshd ${iso(at(s))} ${iso(at(s) + D)}`);
  for (let k = 0; k < 30; k++) expected.push(`ban 203.0.113.${k + 1} sshd ${iso(at(120 + 6 * k))} ${iso(at(120 + 6 * k) + D)}`);
  expected.push(`ban 203.0.113.200 sshd ${iso(at(400))} ${iso(at(400) + D)}`);
  // The last minute held fewer than 5 failures from 330 s on (hover failures at 276..294 are 4): off at 330 s + 5m.
  expected.push(`siege-off * sshd ${iso(at(630))} null`);
  expected.push(`siege-on * sshd ${iso(at(929))} null`);
  for (let s = 929; s < 960; s++) expected.push(`ban 198.18.1.${s - 899} sshd ${iso(at(s))} ${iso(at(s) + D)}`);
  assert.deepEqual(decisions.map(brief), expected);
  assert.equal(decisions[0]!.reason, '30 failures in the last minute from 30 addresses (siege at 30 a minute from 10): maxretry 1, bans of 1d, new connections limited to 10/minute');
  assert.equal(decisions.find((d) => d.action === 'siege-off')!.reason, 'fewer than 5 failures a minute for 5m');
  assert.match(decisions[1]!.reason, /; siege: maxretry 1$/);
});
