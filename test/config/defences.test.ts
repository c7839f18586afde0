import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromFiles } from '../../src/config/load.js';
import { ConfigErrors } from '../../src/core/errors.js';

const FILE = '/etc/portcullis/portcullis.yaml';

function errorsOf(text: string): string[] {
  try {
    configFromFiles([{ file: FILE, text }]);
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, String(e));
    return e.errors.map((x) => x.message);
  }
  assert.fail('expected a configuration error');
}

const sshd = (text: string) => configFromFiles([{ file: FILE, text }]).jails.find((j) => j.name === 'sshd')!;

test('the settled keys from DESIGN.md load with their meaning', () => {
  const j = sshd(`
jails:
  sshd:
    escalate: { prefix4: 24, prefix6: 64, threshold: 3, window: 1h, bantime: 1d }
    bantime: { base: 10m, factor: 2, max: 5w, jitter: 10% }
    siege:
      enter: { failures_per_minute: 60, sources: 20 }
      leave: { failures_per_minute: 10, for: 10m }
      maxretry: 1
      rate_limit: 10/minute
      allowlist_only: false
    slow: { window: 2d, maxretry: 8, bantime: 1w, spray: { sources: 10, maxretry: 2 } }
`);
  assert.deepEqual(j.escalate, [{ prefix4: 24, prefix6: 64, threshold: 3, window: 3_600_000, bantime: 86_400_000 }]);
  assert.equal(j.bantime, 600_000);
  assert.deepEqual(j.bantimeGrowth, { factor: 2, max: 5 * 604_800_000, jitter: 0.1, count: 'all' });
  assert.deepEqual(j.siege, { enterRate: 60, enterSources: 20, leaveRate: 10, leaveFor: 600_000, maxretry: 1, rateLimit: '10/minute', allowlistOnly: false });
  assert.deepEqual(j.slow, { window: 172_800_000, maxretry: 8, bantime: 604_800_000, spray: { sources: 10, maxretry: 2 }, maxTracked: 100_000 });
});

test('a plain bantime still works, also as a growth rule in defaults; everything is off unless configured', () => {
  const j = sshd('jails:\n  sshd: { bantime: 2h }\n');
  assert.equal(j.bantime, 7_200_000);
  assert.equal(j.bantimeGrowth, null);
  assert.equal(j.escalate, null);
  assert.equal(j.siege, null);
  assert.equal(j.slow, null);
  const d = sshd('defaults: { bantime: { base: 5m, factor: 3 } }\n');
  assert.equal(d.bantime, 300_000);
  assert.deepEqual(d.bantimeGrowth, { factor: 3, max: 5 * 604_800_000, jitter: 0, count: 'all' });
});

test('the recidive jail is built in (off), reads no logs, counts a day and bans a week on every port', () => {
  const c = configFromFiles([{ file: FILE, text: 'defaults: { findtime: 5m }\njails:\n  recidive: { enabled: true }\n' }]);
  const r = c.jails.find((j) => j.name === 'recidive')!;
  assert.equal(r.enabled, true);
  assert.deepEqual([r.maxretry, r.findtime, r.bantime, r.ports, r.protocol, r.sources.length], [5, 86_400_000, 604_800_000, null, 'all', 0]);
  assert.equal(configFromFiles([]).jails.find((j) => j.name === 'recidive')!.enabled, false);
  assert.deepEqual(errorsOf('jails:\n  recidive:\n    enabled: true\n    sources: [{ file: /var/log/auth.log }]\n'), [
    `${FILE}:4:5: jail "recidive": the recidive jail reads no logs (it counts the other jails' bans), so "sources:" does not apply; remove it`,
  ]);
});

test('mistakes are reported at file:line:column with what is allowed', () => {
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    bantime: { base: 10m, factr: 2 }\n'), [
    `${FILE}:3:27: unknown key "factr" in jails.sshd.bantime (did you mean "factor"?); allowed keys: base, factor, max, jitter, count`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    bantime: { base: 10m, jitter: lots }\n'), [
    `${FILE}:3:35: jails.sshd.bantime.jitter: "lots" is not valid; expected a percentage from 0% to 100%, such as 10%`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    bantime: soon\n'), [
    `${FILE}:3:14: jails.sshd.bantime: "soon" is not valid; expected a duration such as 90s, 10m, 1h, 1d, 1w (or a combination like 1h30m, or plain seconds), or -1/permanent`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    bantime: { base: 1h, max: 10m }\n'), [
    `${FILE}:3:26: jail "sshd": bantime.max: max (10m) is shorter than base (1h); max must be at least base`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    siege: { rate_limit: fast }\n'), [
    `${FILE}:3:26: jails.sshd.siege.rate_limit: "fast" is not valid; expected a rate N/second, N/minute, N/hour or N/day, such as 10/minute`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    siege:\n      enter: { failures_per_minute: 20 }\n      leave: { failures_per_minute: 30 }\n'), [
    `${FILE}:5:16: jail "sshd": siege.leave.failures_per_minute: must be below enter.failures_per_minute (20): the gap between entering and leaving is what keeps a siege from flapping`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    escalate: { prefix4: 24, then: { prefix4: 24 } }\n'), [
    `${FILE}:3:38: jail "sshd": escalate.then.prefix4: the second step must cover a wider prefix than the first: /24 is not wider than /24`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    escalate: { prefix4: 33 }\n'), [
    `${FILE}:3:26: jails.sshd.escalate.prefix4: 33 is out of range; it must be at most 31`,
  ]);
  assert.deepEqual(errorsOf('jails:\n  sshd:\n    slow: { window: 1m }\n'), [
    `${FILE}:3:13: jail "sshd": slow.window: must be at least 10m; slow brute force is counted over hours or days`,
  ]);
});
