import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromFiles } from '../../src/config/load.js';
import type { Decision } from '../../src/core/types.js';
import { EscalationDetector } from '../../src/detectors/escalation.js';
import { Pipeline } from '../../src/daemon/pipeline.js';
import { brief, iso, replayLines, sshFail } from '../helpers/replay.js';

const H = 3_600_000;
const M = 60_000;
const step = { prefix4: 24, prefix6: 64, threshold: 3, window: H, bantime: 86_400_000 };

test('three addresses of one /24 banned within the window escalate to the /24', () => {
  const d = new EscalationDetector([step]);
  assert.equal(d.onBan('203.0.113.1', 0), null);
  assert.equal(d.onBan('203.0.113.2', 10 * M), null);
  // Another /24 and an IPv6 address count separately.
  assert.equal(d.onBan('198.51.100.1', 11 * M), null);
  assert.equal(d.onBan('2001:db8::1', 12 * M), null);
  assert.deepEqual(d.onBan('203.0.113.3', 20 * M), { step: 0, prefix: '203.0.113.0/24', members: ['203.0.113.1', '203.0.113.2', '203.0.113.3'] });
  // The evidence was consumed: it takes three new bans to escalate again.
  assert.equal(d.onBan('203.0.113.4', 21 * M), null);
});

test('bans older than the window do not count; the same address twice counts once', () => {
  const d = new EscalationDetector([step]);
  d.onBan('203.0.113.1', 0);
  d.onBan('203.0.113.1', 5 * M);
  assert.equal(d.onBan('203.0.113.2', 10 * M), null);
  // 203.0.113.1's last ban (5m) is still inside the hour at 1h04m; its first is not.
  assert.notEqual(d.onBan('203.0.113.3', H + 4 * M), null);
  const e = new EscalationDetector([step]);
  e.onBan('203.0.113.1', 0);
  e.onBan('203.0.113.2', 0);
  assert.equal(e.onBan('203.0.113.3', H), null);
});

test('IPv6 escalates to the /64; a second step counts prefix bans inside a wider prefix', () => {
  const d = new EscalationDetector([step, { prefix4: 16, prefix6: 48, threshold: 2, window: 24 * H, bantime: null }]);
  d.onBan('2001:db8:1:2::a', 0);
  d.onBan('2001:db8:1:2::b', 0);
  assert.deepEqual(d.onBan('2001:db8:1:2::c', 0)?.prefix, '2001:db8:1:2::/64');
  assert.equal(d.onBan('2001:db8:1:2::/64', 0), null);
  assert.deepEqual(d.onBan('2001:db8:1:3::/64', M), { step: 1, prefix: '2001:db8:1::/48', members: ['2001:db8:1:2::/64', '2001:db8:1:3::/64'] });
});

test('lifting a prefix ban forgets its evidence and its place in the wider step', () => {
  const d = new EscalationDetector([step, { prefix4: 16, prefix6: 48, threshold: 2, window: 24 * H, bantime: null }]);
  d.onBan('203.0.113.1', 0);
  d.onBan('203.0.113.2', 0);
  d.onBan('198.51.100.0/24', 0);
  d.forget('203.0.113.0/24');
  d.forget('198.51.100.0/24');
  assert.equal(d.onBan('203.0.113.3', M), null);
  assert.equal(d.onBan('198.51.7.0/24', M), null, 'the lifted /24 no longer counts towards 198.51.0.0/16');
  assert.deepEqual(d.progress('203.0.113.9', M).map((p) => [p.prefix, p.members.length]), [['203.0.113.0/24', 1], ['203.0.0.0/16', 0]]);
});

test('pipeline: manually lifting the prefix ban lifts the escalation; covered addresses are not banned one by one', () => {
  const config = configFromFiles([{ file: 't.yaml', text: 'jails:\n  sshd: { maxretry: 1, bantime: 10m, escalate: { threshold: 3 } }\n' }]);
  const jails = config.jails.filter((j) => j.enabled);
  const p = new Pipeline({ jails, globalIgnore: [], mode: 'replay', origin: 'test', includeHostAddresses: false });
  p.addRoute('r', ['sshd']);
  const t0 = Date.UTC(2024, 5, 15, 10);
  const feed = (ms: number, a: string): Decision[] => {
    p.process({ raw: sshFail(ms, a), time: ms, timeFromLine: true, host: 'h', program: 'sshd', pid: 1, message: `Failed password for root from ${a} port 4242 ssh2`, source: 't' }, 'r');
    return p.take().decisions;
  };
  feed(t0, '203.0.113.1');
  feed(t0 + 1000, '203.0.113.2');
  assert.deepEqual(feed(t0 + 2000, '203.0.113.3').map((d) => `${d.action} ${d.target}`), ['ban 203.0.113.3', 'ban 203.0.113.0/24']);
  assert.deepEqual(feed(t0 + 3000, '203.0.113.4'), [], 'covered by the /24 ban');
  assert.equal(p.manualUnban('203.0.113.0/24', null, 'manual', 'cli', t0 + 4000).length, 1);
  p.take();
  assert.deepEqual(feed(t0 + 5000, '203.0.113.5').map((d) => `${d.action} ${d.target}`), ['ban 203.0.113.5']);
  assert.deepEqual(feed(t0 + 6000, '203.0.113.6').map((d) => `${d.action} ${d.target}`), ['ban 203.0.113.6']);
  assert.deepEqual(feed(t0 + 7000, '203.0.113.7').map((d) => `${d.action} ${d.target}`), ['ban 203.0.113.7', 'ban 203.0.113.0/24']);
  assert.deepEqual(p.defenceStatus('sshd')!.escalation!.escalations, 2);
});

test('replay: generated botnet in netblocks → exact address, /24, /64 and /16 bans; an allowlisted mailer keeps its /24 open', async () => {
  const t0 = Date.UTC(2024, 5, 15, 10, 0, 0);
  const at = (m: number, s = 0): number => t0 + m * M + s * 1000;
  const lines: string[] = [];
  // Background noise: one failure each from many addresses, never enough for anything.
  for (let i = 0; i < 40; i++) lines.push(sshFail(at(i % 5, i), `192.0.2.${100 + i}`));
  // Three bots of 203.0.113.0/24, each failing twice, five minutes apart.
  for (let i = 1; i <= 3; i++) lines.push(sshFail(at(5 * i), `203.0.113.${10 + i}`), sshFail(at(5 * i, 10), `203.0.113.${10 + i}`));
  // Another bot of that /24 after the escalation: already covered, nothing new.
  lines.push(sshFail(at(16), '203.0.113.99'), sshFail(at(16, 5), '203.0.113.99'));
  // Three bots of one IPv6 /64.
  for (const [i, a] of ['2001:db8:1:2::a', '2001:db8:1:2::b', '2001:db8:1:2::c'].entries()) lines.push(sshFail(at(20 + i), a), sshFail(at(20 + i, 1), a));
  // Two /24s of 198.18.0.0/16, three bots each: the second /24 escalates the /16.
  for (const [i, a] of ['198.18.1.1', '198.18.1.2', '198.18.1.3', '198.18.2.1', '198.18.2.2', '198.18.2.3'].entries()) lines.push(sshFail(at(30 + i), a), sshFail(at(30 + i, 1), a));
  // Three bots next to an allowlisted mailer (198.51.100.25): their /24 must not be banned.
  for (const [i, a] of ['198.51.100.61', '198.51.100.62', '198.51.100.63'].entries()) lines.push(sshFail(at(40 + i), a), sshFail(at(40 + i, 1), a));
  lines.sort();
  const { decisions, stderr } = await replayLines(`
ignoreip: [198.51.100.25]
jails:
  sshd:
    maxretry: 2
    findtime: 10m
    bantime: 10m
    escalate: { prefix4: 24, prefix6: 64, threshold: 3, window: 1h, bantime: 1d, then: { prefix4: 16, prefix6: 48, threshold: 2, window: 1d, bantime: 1w } }
`, lines);
  const ban = (t: number, target: string, ms: number): string => `ban ${target} sshd ${iso(t)} ${iso(t + ms)}`;
  const unban = (t: number, target: string): string => `unban ${target} sshd ${iso(t)} null`;
  const D = 86_400_000;
  assert.deepEqual(decisions.map(brief), [
    ban(at(5, 10), '203.0.113.11', 10 * M),
    ban(at(10, 10), '203.0.113.12', 10 * M),
    unban(at(15, 10), '203.0.113.11'),
    ban(at(15, 10), '203.0.113.13', 10 * M),
    ban(at(15, 10), '203.0.113.0/24', D),
    ban(at(20, 1), '2001:db8:1:2::a', 10 * M),
    // Replay lifts a ban when the log's clock passes its end: at the next line (10:21:00).
    unban(at(20, 10), '203.0.113.12'),
    ban(at(21, 1), '2001:db8:1:2::b', 10 * M),
    ban(at(22, 1), '2001:db8:1:2::c', 10 * M),
    ban(at(22, 1), '2001:db8:1:2::/64', D),
    unban(at(25, 10), '203.0.113.13'),
    unban(at(30, 1), '2001:db8:1:2::a'),
    ban(at(30, 1), '198.18.1.1', 10 * M),
    unban(at(31, 1), '2001:db8:1:2::b'),
    ban(at(31, 1), '198.18.1.2', 10 * M),
    unban(at(32, 1), '2001:db8:1:2::c'),
    ban(at(32, 1), '198.18.1.3', 10 * M),
    ban(at(32, 1), '198.18.1.0/24', D),
    ban(at(33, 1), '198.18.2.1', 10 * M),
    ban(at(34, 1), '198.18.2.2', 10 * M),
    ban(at(35, 1), '198.18.2.3', 10 * M),
    ban(at(35, 1), '198.18.2.0/24', D),
    ban(at(35, 1), '198.18.0.0/16', 7 * D),
    unban(at(40, 1), '198.18.1.1'),
    ban(at(40, 1), '198.51.100.61', 10 * M),
    unban(at(41, 1), '198.18.1.2'),
    ban(at(41, 1), '198.51.100.62', 10 * M),
    unban(at(42, 1), '198.18.1.3'),
    ban(at(42, 1), '198.51.100.63', 10 * M),
  ]);
  assert.match(decisions.find((d) => d.target === '203.0.113.0/24')!.reason, /^netblock escalation: 3 addresses of 203\.0\.113\.0\/24 banned within 1h \(203\.0\.113\.11, 203\.0\.113\.12, 203\.0\.113\.13\)$/);
  assert.match(decisions.find((d) => d.target === '198.18.0.0/16')!.reason, /2 prefixes of 198\.18\.0\.0\/16 banned within 1d/);
  assert.match(stderr, /\[sshd\] not banning 198\.51\.100\.0\/24 although 3 addresses of 198\.51\.100\.0\/24 banned within 1h: it covers allowlist entry 198\.51\.100\.25/);
});

test('an address unbanned by hand no longer counts towards its netblock', () => {
  const d = new EscalationDetector([step]);
  d.onBan('203.0.113.1', 0);
  d.onBan('203.0.113.2', 0);
  d.forget('203.0.113.2');
  assert.equal(d.onBan('203.0.113.3', M), null);
  assert.equal(d.onBan('203.0.113.4', M)?.prefix, '203.0.113.0/24');
});
