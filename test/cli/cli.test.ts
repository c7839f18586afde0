import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/** The CLI against a real daemon: status, ban, banned, explain, unban, check, test-filter, replay from stdin. */

const dir = mkdtempSync(join(tmpdir(), 'pc-cli-'));
const socket = join(dir, 'c.sock');
const config = join(dir, 'portcullis.yaml');
const auth = join(dir, 'auth.log');
const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
let daemon: RunningDaemon;

before(async () => {
  writeFileSync(auth, '');
  writeFileSync(config, `state_dir: ${dir}/state\ncontrol: { socket: ${socket} }\nenforcer: dry-run\njails:\n  sshd: { sources: [{ file: ${auth} }], maxretry: 2, ignoreip: [203.0.113.0/24] }\n`);
  daemon = await startDaemon(['--config', config], socket);
});

after(async () => {
  if (daemon.proc.exitCode === null) await daemon.kill();
  rmSync(dir, { recursive: true, force: true });
});

test('the control socket is root-only', () => {
  assert.equal(statSync(socket).mode & 0o777, 0o600);
});

test('ban, banned, explain, status and unban through the CLI', async () => {
  let r = await runCli(['ban', '198.51.100.0/24', '--for', '2h', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /banned 198\.51\.100\.0\/24 in sshd until/);
  r = await runCli(['banned', '--json', '--socket', socket]);
  const bans = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  assert.equal(bans.length, 1);
  assert.equal(bans[0]!.target, '198.51.100.0/24');
  assert.equal(bans[0]!.origin, 'cli');
  assert.ok(Math.abs(Date.parse(bans[0]!.until as string) - Date.now() - 7_200_000) < 60_000);

  const d = new Date();
  const stamp = `${d.toDateString().slice(4, 10)} ${d.toTimeString().slice(0, 8)}`;
  appendFileSync(auth, `${stamp} h sshd[1]: Failed password for root from 192.0.2.44 port 1 ssh2\n`);
  await waitFor(async () => JSON.parse((await runCli(['status', '--json', '--socket', socket])).stdout).linesRead >= 1);
  r = await runCli(['explain', '192.0.2.44', '--socket', socket]);
  assert.match(r.stdout, /sshd: 1 of 2 failures counted/);
  r = await runCli(['explain', '203.0.113.9', '--socket', socket]);
  assert.match(r.stdout, /allowed in sshd: matches allowlist entry 203\.0\.113\.0\/24/);

  r = await runCli(['status', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Jail sshd/);
  assert.match(r.stdout, /Currently banned: 1/);
  assert.match(r.stdout, /Currently failing: 1/);
  assert.match(r.stdout, new RegExp(`file ${auth.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: following`));

  r = await runCli(['unban', '198.51.100.0/24', '--socket', socket]);
  assert.match(r.stdout, /lifted 1 ban/);
  r = await runCli(['unban', '--all', '--socket', socket]);
  assert.match(r.stdout, /was not banned|lifted 0/);
  r = await runCli(['banned', '--socket', socket]);
  assert.match(r.stdout, /no active bans/);
});

test('usage and configuration errors exit 2 with a clear message', async () => {
  let r = await runCli(['ban', 'not-an-ip', '--socket', socket]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /"not-an-ip" is not an IPv4\/IPv6 address or CIDR/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'jails:\n  sshd:\n    bantime: 1 hour\n');
  r = await runCli(['check', '--config', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad\.yaml:3:14: jails\.sshd\.bantime: "1 hour" is not valid/);
  r = await runCli(['run', '--config', bad]);
  assert.equal(r.code, 2, 'the daemon refuses to start on a bad config');
  // A named config that is missing (a typo in the path) must not start the daemon on the embedded defaults.
  for (const extra of [[], ['--fail2ban-config', dir]]) {
    r = await runCli(['run', '--config', join(dir, 'typo.yaml'), ...extra]);
    assert.equal(r.code, 2, `run ${extra.join(' ')} refuses a missing --config`);
    assert.match(r.stderr, /typo\.yaml:1:1: the configuration file does not exist; create it or pass --config with an existing file/);
  }
  r = await runCli(['check', '--config', config]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /OK — 1 jail\(s\) enabled: sshd/);
  r = await runCli(['status', '--socket', join(dir, 'nothing.sock')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot reach the daemon .* is the daemon running\?/);
});

test('test-filter summarises and emits one JSON object per matched line', async () => {
  let r = await runCli(['test-filter', 'sshd', join(fixtures, 'seeds/001-sshd-password-groping.log')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Lines: 17, matched: \d+/);
  assert.match(r.stdout, /200\.72\.41\.31/);
  r = await runCli(['test-filter', 'sshd', join(fixtures, 'seeds/001-sshd-password-groping.log'), '--json']);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(rows.length >= 6);
  assert.deepEqual(Object.keys(rows[0]!), ['line', 'time', 'address', 'user', 'filter', 'kind']);
  assert.equal(rows[0]!.line, 1);
  assert.equal(rows[0]!.address, '200.72.41.31');
  assert.equal(rows[0]!.user, 'root');
  r = await runCli(['test-filter', 'nope', auth]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown filter "nope"; built-in filters: sshd/);
});

test('replay reads standard input with -', async () => {
  const lines = Array.from({ length: 5 }, (_, i) => `Jan 10 10:00:0${i} h sshd[1]: Failed password for root from 198.51.100.9 port ${i} ssh2`).join('\n');
  const r = await runCli(['replay', '--json', '-'], `${lines}\n`);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  assert.equal(d.action, 'ban');
  assert.equal(d.target, '198.51.100.9');
  assert.match(r.stderr, /replayed 5 lines \(5 matched\)/);
});

test('banned reads the state database itself when it can, the same answer as the daemon, also while it is stopped', async () => {
  let r = await runCli(['ban', '192.0.2.200', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  const viaDaemon = await runCli(['banned', '--json', '--socket', socket]);
  const direct = await runCli(['banned', '--json', '--config', config]);
  assert.equal(direct.code, 0, direct.stderr);
  assert.equal(direct.stdout, viaDaemon.stdout);
  assert.equal((JSON.parse(direct.stdout) as Array<{ target: string }>).at(-1)!.target, '192.0.2.200');
  await daemon.kill();
  r = await runCli(['banned', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /192\.0\.2\.200/);
  r = await runCli(['banned', '--json', '--socket', socket]);
  assert.equal(r.code, 1, 'named, the daemon is asked, and it is gone');
  assert.match(r.stderr, /cannot reach the daemon/);
});
