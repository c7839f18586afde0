import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/** Escalation, repeat offenders and recidive through a real daemon: status lines, explain, and a restart. */

const dir = mkdtempSync(join(tmpdir(), 'pc-defences-'));
const socket = join(dir, 'c.sock');
const config = join(dir, 'portcullis.yaml');
const auth = join(dir, 'auth.log');
let daemon: RunningDaemon;

const fail = (address: string): void => {
  const d = new Date();
  appendFileSync(auth, `${d.toDateString().slice(4, 10)} ${d.toTimeString().slice(0, 8)} h sshd[1]: Failed password for root from ${address} port 1 ssh2\n`);
};

before(async () => {
  writeFileSync(auth, '');
  writeFileSync(config, `state_dir: ${dir}/state
control: { socket: ${socket} }
enforcer: dry-run
jails:
  sshd:
    sources: [{ file: ${auth} }]
    maxretry: 1
    bantime: { base: 10m, factor: 3, max: 1d }
    escalate: { threshold: 2, window: 1h, bantime: 2h }
    siege: { enter: { failures_per_minute: 100, sources: 50 } }
  recidive: { enabled: true, maxretry: 2 }
`);
  daemon = await startDaemon(['--config', config], socket);
});

after(async () => {
  if (daemon.proc.exitCode === null) await daemon.kill();
  rmSync(dir, { recursive: true, force: true });
});

test('escalation and repeat offenders show in status and explain, and survive a restart', async () => {
  fail('203.0.113.1');
  fail('203.0.113.2');
  const banned = async (): Promise<string[]> => (JSON.parse((await runCli(['banned', '--json', '--socket', socket])).stdout) as Array<{ target: string; jail: string }>).map((b) => `${b.jail} ${b.target}`).sort();
  await waitFor(async () => (await banned()).includes('sshd 203.0.113.0/24'), 10_000, () => daemon.output());
  let r = await runCli(['status', '--socket', socket]);
  assert.match(r.stdout, /Ban time: 10m × 3 per earlier ban \(counted across jails\), at most 1d/);
  assert.match(r.stdout, /Netblock escalation: 2 bans within 1h in one \/24 or \/64 → ban it for 2h; 1 prefix ban\(s\) now, 1 escalation\(s\)/);
  assert.match(r.stdout, /Siege: off; last minute: 2 failure\(s\) from 2 address\(es\)/);
  assert.match(r.stdout, /Slow brute force: off \(slow:\)/);
  assert.match(r.stdout, /Recidive: 2 bans within 1d in other jails/);
  r = await runCli(['explain', '203.0.113.77', '--socket', socket]);
  assert.match(r.stdout, /BANNED in sshd since .* \(by .*\): netblock escalation: 2 addresses of 203\.0\.113\.0\/24 banned within 1h/);
  assert.match(r.stdout, /sshd: banned with its netblock 203\.0\.113\.0\/24/);

  // A second ban of 203.0.113.1 after a manual unban: 30m, and the recidive jail's week on every port.
  r = await runCli(['unban', '203.0.113.1', '--socket', socket]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['unban', '203.0.113.0/24', '--socket', socket]);
  assert.equal(r.code, 0, r.stderr);
  await daemon.stop();
  daemon = await startDaemon(['--config', config], socket);
  fail('203.0.113.1');
  await waitFor(async () => (await banned()).includes('recidive 203.0.113.1'), 10_000, () => daemon.output());
  const bans = JSON.parse((await runCli(['banned', '--json', '--socket', socket])).stdout) as Array<{ target: string; jail: string; time: string; until: string; reason: string }>;
  const again = bans.find((b) => b.jail === 'sshd' && b.target === '203.0.113.1')!;
  // Live bans end by the wall clock, the ban's time is the line's (whole seconds).
  assert.ok(Math.abs(Date.parse(again.until) - Date.parse(again.time) - 30 * 60_000) < 5000, again.reason);
  assert.match(again.reason, /banned 1 time\(s\) before, so 30m/);
  r = await runCli(['explain', '203.0.113.1', '--socket', socket]);
  assert.match(r.stdout, /sshd: repeat offender: 3 earlier ban\(s\) counted; the next ban would last 4h30m/);
});
