import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFiles } from '../../src/config/load.js';
import type { Decision } from '../../src/core/types.js';
import { Pipeline, stateChangesOf } from '../../src/daemon/pipeline.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';
import { FailureRows, Store } from '../../src/state/store.js';

const NOW = new Date(2024, 5, 15, 12, 0, 0).getTime();

function run(yaml: string, lines: string[], mode: 'replay' | 'live' = 'replay'): { decisions: Decision[]; pipeline: Pipeline } {
  const config = configFromFiles([{ file: 't.yaml', text: yaml }]);
  const jails = config.jails.filter((j) => j.enabled);
  const pipeline = new Pipeline({ jails, globalIgnore: config.ignoreip, mode, origin: 'test', now: () => NOW, includeHostAddresses: false });
  pipeline.addRoute('r', jails.map((j) => j.name));
  const parser = new EnvelopeParser({ now: () => NOW });
  const decisions: Decision[] = [];
  for (const l of lines) {
    pipeline.process(parser.parse(l, 'test'), 'r');
    decisions.push(...pipeline.take().decisions);
  }
  return { decisions, pipeline };
}

const fail = (t: string, addr: string, user = 'root'): string => `Jun 15 ${t} host sshd[1]: Failed password for ${user} from ${addr} port 4242 ssh2`;

test('maxretry failures within findtime ban for bantime on the log\'s own clock', () => {
  const { decisions } = run('jails:\n  sshd: { maxretry: 3, findtime: 10m, bantime: 1h }\n', [
    fail('10:00:00', '198.51.100.7'),
    fail('10:01:00', '198.51.100.7'),
    fail('10:01:30', '203.0.113.9'),
    fail('10:02:00', '198.51.100.7'),
  ]);
  assert.equal(decisions.length, 1);
  const d = decisions[0]!;
  assert.equal(d.action, 'ban');
  assert.equal(d.target, '198.51.100.7');
  assert.equal(d.jail, 'sshd');
  assert.equal(d.time, new Date(2024, 5, 15, 10, 2, 0).getTime());
  assert.equal(d.until, d.time + 3_600_000);
  assert.equal(d.evidence!.length, 3);
  assert.deepEqual(d.ports, [22]);
});

test('failures spread wider than findtime do not ban', () => {
  const { decisions } = run('jails:\n  sshd: { maxretry: 3, findtime: 1m }\n', [
    fail('10:00:00', '198.51.100.7'), fail('10:00:50', '198.51.100.7'), fail('10:01:10', '198.51.100.7'),
  ]);
  assert.deepEqual(decisions, []);
});

test('replay lifts bans when the log clock passes their end; a banned address is not re-banned meanwhile', () => {
  const { decisions } = run('jails:\n  sshd: { maxretry: 2, bantime: 10m }\n', [
    fail('10:00:00', '198.51.100.7'), fail('10:00:01', '198.51.100.7'),
    fail('10:00:02', '198.51.100.7'), fail('10:00:03', '198.51.100.7'),
    fail('10:20:00', '203.0.113.1'),
    fail('10:21:00', '198.51.100.7'), fail('10:21:01', '198.51.100.7'),
  ]);
  assert.deepEqual(decisions.map((d) => `${d.action} ${d.target}`), ['ban 198.51.100.7', 'unban 198.51.100.7', 'ban 198.51.100.7']);
  assert.equal(decisions[1]!.time, new Date(2024, 5, 15, 10, 10, 1).getTime());
});

test('live mode: bans end by the wall clock', () => {
  const { decisions } = run('jails:\n  sshd: { maxretry: 1, bantime: 1h }\n', [fail('10:00:00', '198.51.100.7')], 'live');
  assert.equal(decisions[0]!.until, NOW + 3_600_000);
});

test('ignoreip, global and per jail, and loopback are never banned', () => {
  const { decisions, pipeline } = run('ignoreip: [198.51.100.0/24]\njails:\n  sshd: { maxretry: 1, ignoreip: ["2001:db8::/32"] }\n', [
    fail('10:00:00', '198.51.100.7'), fail('10:00:01', '2001:db8::1'), fail('10:00:02', '127.0.0.1'), fail('10:00:03', '::1'), fail('10:00:04', '203.0.113.5'),
  ]);
  assert.deepEqual(decisions.map((d) => d.target), ['203.0.113.5']);
  assert.equal(pipeline.jails.get('sshd')!.stats.ignored, 4);
});

test('an attacker-written address in the user name is not banned', () => {
  const { decisions } = run('jails:\n  sshd: { maxretry: 1 }\n', [
    'Jun 15 10:00:00 host sshd[1]: Invalid user x from 8.8.8.8 port 22 from 198.51.100.66 port 4242',
    'Jun 15 10:00:01 host sshd[1]: Failed password for invalid user from 8.8.4.4 port 22 from 198.51.100.67 port 4242 ssh2',
  ]);
  assert.ok(decisions.every((d) => d.target !== '8.8.8.8' && d.target !== '8.8.4.4'), JSON.stringify(decisions));
});

test('lines of other programs never reach a filter', () => {
  const { decisions, pipeline } = run('jails:\n  sshd: { maxretry: 1 }\n', ['Jun 15 10:00:00 host su[1]: Failed password for root from 198.51.100.7 port 4242 ssh2']);
  assert.deepEqual(decisions, []);
  assert.equal(pipeline.linesMatched, 0);
});

test('extra program names route a router\'s OpenVPN lines (seed 000)', () => {
  const lines = [
    'Sep 6 12:40:17 vpnserver1[535]: 148.163.126.72:20089 TLS Error: TLS key negotiation failed to occur within 60 seconds (check your network connectivity)',
    'Sep 6 12:40:17 vpnserver1[535]: 148.163.126.72:20089 TLS Error: TLS handshake failed',
    'Sep 6 12:40:18 vpnserver1[535]: 148.163.126.72:35987 TLS Error: TLS key negotiation failed to occur within 60 seconds (check your network connectivity)',
    'Sep 6 12:40:18 vpnserver1[535]: 148.163.126.72:35987 TLS Error: TLS handshake failed',
    'Sep 6 12:40:19 vpnserver1[535]: 148.163.126.72:55183 TLS: Initial packet from [AF_INET]148.163.126.72:55183 (via [AF_INET]%eth0), sid=6a22eb44 5adb63fe',
    'Sep 6 12:40:20 vpnserver1[535]: 148.163.126.72:50926 TLS Error: TLS key negotiation failed to occur within 60 seconds (check your network connectivity)',
  ];
  const { decisions } = run('jails:\n  sshd: { enabled: false }\n  openvpn: { enabled: true, programs: [vpnserver1], sources: [{ file: /var/log/messages }] }\n', lines);
  // Each failed handshake counts once (its two error lines are one attempt): the third attempt bans.
  assert.deepEqual(decisions.map((d) => `${d.action} ${d.target} ${d.jail}`), ['ban 148.163.126.72 openvpn']);
});

test('manual ban and unban, and restore after a restart', () => {
  const { pipeline } = run('jails:\n  sshd: { maxretry: 3 }\n', []);
  pipeline.manualBan('192.0.2.0/24', 'sshd', NOW + 1000, 'manual', 'cli', NOW);
  assert.equal(pipeline.take().decisions.length, 1);
  assert.equal(pipeline.manualUnban('192.0.2.0/24', null, 'manual', 'cli', NOW).length, 1);
  assert.equal(pipeline.manualUnban('192.0.2.0/24', null, 'manual', 'cli', NOW).length, 0);
  assert.equal(pipeline.take().decisions.length, 1);
  pipeline.restore([{ target: '198.51.100.1', jail: 'sshd', until: NOW + 5000 }], [
    { id: 1, jail: 'sshd', address: '203.0.113.3', time: NOW - 1000, line: 'a' },
    { id: 2, jail: 'sshd', address: '203.0.113.3', time: NOW - 500, line: 'b' },
  ]);
  assert.equal(pipeline.failing('sshd'), 1);
  pipeline.expire(NOW + 6000);
  assert.deepEqual(pipeline.take().decisions.map((d) => `${d.action} ${d.target}`), ['unban 198.51.100.1']);
});

test('sshd: maxretry counts attempts, not the several lines one attempt writes', () => {
  const attempt = (pid: number, t: string): string[] => [
    `Jun 15 ${t} host sshd[${pid}]: Invalid user admin from 198.51.100.8 port ${pid}`,
    `Jun 15 ${t} host sshd[${pid}]: Failed password for invalid user admin from 198.51.100.8 port ${pid} ssh2`,
    `Jun 15 ${t} host sshd[${pid}]: Connection closed by invalid user admin 198.51.100.8 port ${pid} [preauth]`,
  ];
  const yaml = 'jails:\n  sshd: { maxretry: 3 }\n';
  assert.deepEqual(run(yaml, [...attempt(101, '10:00:00'), ...attempt(102, '10:00:05')]).decisions, []);
  const { decisions } = run(yaml, [...attempt(101, '10:00:00'), ...attempt(102, '10:00:05'), ...attempt(103, '10:00:09')]);
  assert.deepEqual(decisions.map((d) => `${d.action} ${d.target}`), ['ban 198.51.100.8']);
  // Two wrong passwords on one connection are two attempts; its closing line is not a third.
  const one = run(yaml, [
    'Jun 15 10:00:00 host sshd[7]: Failed password for root from 198.51.100.9 port 7 ssh2',
    'Jun 15 10:00:02 host sshd[7]: Failed password for root from 198.51.100.9 port 7 ssh2',
    'Jun 15 10:00:03 host sshd[7]: Connection closed by authenticating user root 198.51.100.9 port 7 [preauth]',
  ]);
  assert.deepEqual(one.decisions, []);
});

test('with a failure log, a ban\'s older evidence is filled in by the commit, read by id once per batch, in order, without lines pruned meanwhile', () => {
  const config = configFromFiles([{ file: 't.yaml', text: 'jails:\n  sshd: { maxretry: 4, findtime: 10m }\n' }]);
  const jails = config.jails.filter((j) => j.enabled);
  const store = Store.open(':memory:');
  store.commit({ failuresAdded: FailureRows.of([{ id: 9, jail: 'sshd', address: '192.0.2.1', time: 0, line: 'earlier' }]) });
  const asked: number[][] = [];
  const read = store.failureLines.bind(store);
  store.failureLines = (ids) => { asked.push([...ids]); return read(ids); };
  const pipeline = new Pipeline({ jails, globalIgnore: [], mode: 'live', origin: 'test', now: () => NOW, includeHostAddresses: false, failureLog: { nextId: store.nextFailureId() } });
  pipeline.addRoute('r', ['sshd']);
  const parser = new EnvelopeParser({ now: () => NOW });
  const feed = (lines: string[]): Decision[] => {
    for (const l of lines) pipeline.process(parser.parse(l, 'test'), 'r');
    const out = pipeline.take();
    store.commit(stateChangesOf(out));
    return out.decisions;
  };
  const a = (t: string): string => fail(t, '198.51.100.7');
  const b = (t: string): string => fail(t, '2001:db8::9');
  assert.deepEqual(feed([a('10:00:00'), b('09:59:59'), a('10:00:01')]), []);
  assert.deepEqual(feed([b('10:00:02'), a('10:00:02')]), []);
  store.pruneFailures(new Date(2024, 5, 15, 10, 0, 0).getTime()); // b's first line pruned meanwhile
  const decisions = feed([b('10:00:03'), a('10:00:03'), b('10:00:04')]);
  assert.deepEqual(decisions.map((d) => d.target), ['198.51.100.7', '2001:db8::9']);
  assert.deepEqual(decisions[0]!.evidence, [a('10:00:00'), a('10:00:01'), a('10:00:02'), a('10:00:03')]);
  assert.deepEqual(decisions[1]!.evidence, [b('10:00:02'), b('10:00:03'), b('10:00:04')]);
  // One read for the batch, both bans' older ids together; the stored ban rows hold the same lines.
  assert.deepEqual(asked, [[10, 12, 14, 11, 13]]);
  assert.deepEqual(store.activeBans().map((r) => r.evidence), decisions.map((d) => d.evidence));
  store.close();
});

test('a ban writes a tombstone only for failures already on disk, or when its jail has a long window', () => {
  const tombstones = (yaml: string, batches: string[][]): string[] => {
    const config = configFromFiles([{ file: 't.yaml', text: yaml }]);
    const p = new Pipeline({
      jails: config.jails.filter((j) => j.enabled), globalIgnore: [], mode: 'replay', origin: 'test', includeHostAddresses: false,
      failureLog: { nextId: 1 },
    });
    p.addRoute('r', ['sshd']);
    const parser = new EnvelopeParser({ now: () => NOW });
    return batches.flatMap((lines) => {
      for (const l of lines) p.process(parser.parse(l, 't'), 'r');
      return p.take().failuresCleared.map((c) => c.address);
    });
  };
  const a = '198.51.100.7';
  const b = '203.0.113.9';
  const plain = 'jails:\n  sshd: { maxretry: 2, findtime: 10m }\n';
  // a: both failures in one batch, never written, nothing to clear. b: its first failure was committed alone.
  assert.deepEqual(tombstones(plain, [[fail('10:00:00', b)], [fail('10:00:01', a), fail('10:00:02', a), fail('10:00:03', b)]]), [b]);
  // An old failure of a, out of the window, stays on disk without harm: it cannot count with later ones.
  assert.deepEqual(tombstones(plain, [[fail('09:00:00', a)], [fail('10:00:01', a), fail('10:00:02', a)]]), []);
  // A long window remembers the old failure for hours: its ban clears it.
  assert.deepEqual(tombstones('jails:\n  sshd: { maxretry: 2, findtime: 10m, slow: { window: 1d, maxretry: 10 } }\n', [[fail('09:00:00', a)], [fail('10:00:01', a), fail('10:00:02', a)]]), [a]);
});

test('failures that ended in a ban do not count again after a restart, once the ban is over; pending ones do', () => {
  const config = configFromFiles([{ file: 't.yaml', text: 'jails:\n  sshd: { maxretry: 3, findtime: 1h, bantime: 10m }\n' }]);
  const jails = config.jails.filter((j) => j.enabled);
  const store = Store.open(':memory:');
  const parser = new EnvelopeParser({ now: () => NOW });
  const lifetime = (restoreAt: number | null): ((line: string) => string[]) => {
    const p = new Pipeline({
      jails, globalIgnore: [], mode: 'replay', origin: 'test', includeHostAddresses: false,
      failureLog: { nextId: store.nextFailureId() },
    });
    p.addRoute('r', ['sshd']);
    if (restoreAt !== null) p.restore(store.activeBans().filter((b) => b.until === null || b.until > restoreAt), store.failuresSince(restoreAt - 3_600_000), []);
    // One commit per line, as a quiet daemon makes them: the ban's earlier failures are already on disk.
    return (line) => {
      p.process(parser.parse(line, 't'), 'r');
      const out = p.take();
      store.commit(stateChangesOf(out));
      return out.decisions.map((d) => `${d.action} ${d.target} ${d.evidence!.length}`);
    };
  };
  const a = '198.51.100.7';
  const b = '203.0.113.9';
  let step = lifetime(null);
  assert.deepEqual([fail('10:00:00', a), fail('10:00:01', b), fail('10:00:02', a), fail('10:00:03', b)].flatMap(step), []);
  assert.deepEqual(step(fail('10:00:04', a)), [`ban ${a} 3`]);
  // Restart after a's ban ended: b's two failures still count, a's three were used up by its ban.
  step = lifetime(new Date(2024, 5, 15, 10, 15).getTime());
  assert.deepEqual(step(fail('10:16:00', a)), []);
  assert.deepEqual(step(fail('10:16:01', b)), [`ban ${b} 3`]);
  assert.deepEqual(step(fail('10:16:02', a)), []);
  assert.deepEqual(step(fail('10:16:03', a)), [`ban ${a} 3`]);
  store.close();
});

test('a fail2ban filter gives up a line crafted to stall its pattern, counts it, and bans from the lines after it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pipeline-budget-'));
  try {
    const conf = join(dir, 'colons.conf');
    writeFileSync(conf, '[Definition]\nfailregex = ^\\[(?:error|\\S+:\\S+)\\] \\[client <HOST>\\] user \\S+ denied$\n');
    const { decisions, pipeline } = run(`jails:\n  web: { filters: ["${conf}"], sources: [{ file: /var/log/web.log }], maxretry: 1 }\n`, [
      `[${':'.repeat(30_000)}] [client 198.51.100.8] user mallory denied!`,
      `[error] [client 198.51.100.9] user ${'u'.repeat(1500)} denied`,
    ]);
    assert.equal(pipeline.linesOverBudget(conf), 1);
    assert.deepEqual(decisions.map((d) => d.target), ['198.51.100.9']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
