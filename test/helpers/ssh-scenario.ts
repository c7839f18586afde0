/**
 * The SSH brute-force scenario of the end-to-end tests, run once per enforcer
 * (test/e2e/ssh.test.ts: nftables, test/e2e/ssh-ipset.test.ts: iptables+ipset).
 *
 * A real sshd in the server namespace logs to a file the daemon (also in the
 * server namespace) follows. The attacker first opens a legitimate session and
 * keeps it, then guesses passwords with real ssh clients until banned; the ban
 * must be in the kernel set, new connections must fail, the open session must
 * be cut (`flush: global`). The allowlisted friend fails as often as it likes
 * and still logs in throughout. When the short bantime is over, the attacker
 * gets in again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { waitFor } from './daemon.js';
import { kernelBans, startDaemonInServer, tempDir, type EnforcerKind } from './e2e.js';
import { createTopology } from './netns.js';
import { startSshd } from './sshd.js';

const MAXRETRY = 3;
const BANTIME_S = 8;

export async function sshScenario(enforcer: EnforcerKind, hooks: { after: (fn: () => unknown) => void }): Promise<void> {
  const dir = tempDir('ssh', hooks.after);
  const topology = await createTopology({ after: hooks.after });
  const { attacker, friend, server } = topology.addresses;
  const log = join(dir, 'auth.log');
  const sshd = await startSshd(topology, dir, log);
  const pc = await startDaemonInServer(topology, dir, [
    `enforcer: ${enforcer}`,
    `ignoreip: [203.0.113.0/24]`,
    'jails:',
    '  sshd:',
    '    enabled: true',
    `    sources: [{ file: ${log} }]`,
    `    maxretry: ${MAXRETRY}`,
    '    findtime: 10m',
    `    bantime: ${BANTIME_S}s`,
    '    flush: global',
    '',
  ].join('\n'), hooks.after);
  const context = (): string => `daemon:\n${pc.daemon.output()}\nsshd:\n${sshd.output()}`;
  const attackerBanned = async (): Promise<boolean> => (await kernelBans(topology, enforcer)).some((b) => b.address === attacker.v4);

  // The daemon's firewall objects exist in the server namespace (and so nowhere else: it runs there).
  await waitFor(async () => (await pc.status()).enforcers.every((e) => e.ready), 10_000, context);
  if (enforcer === 'nftables') await topology.exec('server', 'nft', ['list', 'table', 'inet', 'portcullis']);
  else await topology.exec('server', 'iptables', ['-w', '-C', 'INPUT', '-j', 'PORTCULLIS']);

  // The allowlisted friend: more wrong passwords than maxretry, then a good login.
  for (let i = 0; i < MAXRETRY + 1; i++) assert.notEqual((await sshd.login('friend', 'wrong')).code, 0);
  assert.match((await sshd.login('friend', sshd.password)).stdout, /logged-in/);

  // The attacker holds a real session, then guesses passwords from the same address.
  const session = await sshd.openSession('attacker');
  let guesses = 0;
  while (!(await attackerBanned())) {
    assert.ok(guesses < MAXRETRY, `still not banned after ${guesses} wrong passwords\n${context()}`);
    const r = await sshd.login('attacker', `guess-${guesses}`);
    assert.notEqual(r.code, 0, 'a wrong password logged in');
    guesses++;
    // Before guessing again: the daemon has counted this failure, or banned (then the kernel set must follow).
    const seen = await waitFor(async () => {
      const j = (await pc.explain(attacker.v4)).jails.find((x) => x.jail === 'sshd')!;
      return j.banned ? 'banned' : j.failing >= guesses ? 'counted' : null;
    }, 5000, context);
    if (seen === 'banned') await waitFor(attackerBanned, 5000, context);
  }
  console.log(`${enforcer}: attacker banned after ${guesses} wrong password(s)`);
  assert.deepEqual((await pc.banned()).map((b) => `${b.jail} ${b.target}`), [`sshd ${attacker.v4}`]);

  // The session it had open is cut, and it cannot connect again.
  const code = await Promise.race([session.ended, new Promise<string>((r) => setTimeout(() => r('still open'), 5000))]);
  assert.equal(code, 255, `the attacker's open session was not cut\n${context()}`);
  assert.equal(await topology.probeTcp('attacker', server.v4, 22), 'timeout');
  assert.notEqual((await sshd.login('attacker', sshd.password)).code, 0, 'the banned attacker logged in');

  // The friend is never banned and still gets in.
  assert.match((await sshd.login('friend', sshd.password)).stdout, /logged-in/);
  assert.ok(!(await kernelBans(topology, enforcer)).some((b) => b.address === friend.v4));

  // After bantime, the attacker is let in again (ban lifted in the database and gone from the kernel).
  await waitFor(async () => (await pc.banned()).length === 0 && !(await attackerBanned()), (BANTIME_S + 5) * 1000, context);
  // The kernel no longer drops it; on a loaded machine sshd can still be slow to send its banner: try again then.
  let back = await sshd.login('attacker', sshd.password);
  for (let retry = 0; retry < 3 && /timed out during banner exchange/.test(back.stderr); retry++) back = await sshd.login('attacker', sshd.password);
  assert.match(back.stdout, /logged-in/, `after bantime: ${back.stderr}`);
  assert.equal(await pc.daemon.stop(), 0, context());
}
