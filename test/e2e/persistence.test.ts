import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/state/store.js';
import { waitFor } from '../helpers/daemon.js';
import { nftBans, startDaemonInServer, syslogTime, tempDir, teardown } from '../helpers/e2e.js';
import { createTopology } from '../helpers/netns.js';

/**
 * SIGKILL in the middle of a burst of bans (daemon in the server namespace,
 * nftables). On restart, the kernel holds exactly the bans the database holds
 * — none lost, none twice, each with its own end — and the bans that ended
 * while the daemon was dead are gone from both.
 */

const cleanup = teardown(after);
const SSH_ATTACKERS = 3000;
const VPN_ATTACKERS = 50;
const VPN_BANTIME_S = 6;
const sshAddress = (i: number): string => `198.18.${i >> 8}.${i & 255}`;
const vpnAddress = (i: number): string => `198.19.0.${i + 1}`;

test('a daemon killed during a burst of bans resumes with the kernel equal to its database', async () => {
  const dir = tempDir('persist', cleanup);
  const topology = await createTopology({ after: cleanup });
  const auth = join(dir, 'auth.log');
  const vpn = join(dir, 'openvpn.log');
  writeFileSync(auth, '');
  writeFileSync(vpn, '');
  const pc = await startDaemonInServer(topology, dir, [
    'enforcer: nftables',
    'jails:',
    `  sshd: { enabled: true, sources: [{ file: ${auth} }], maxretry: 1, bantime: 1h }`,
    `  openvpn: { enabled: true, sources: [{ file: ${vpn} }], maxretry: 1, bantime: ${VPN_BANTIME_S}s }`,
    '',
  ].join('\n'), cleanup);
  let firstRun = '';
  const context = () => `${firstRun}\n--- restarted ---\n${pc.daemon.output()}`;
  const kernel = async (set: string) => (await nftBans(topology)).filter((b) => b.set === set);

  // Short bans first, all in the kernel; then the burst of long ones, killed part way.
  appendFileSync(vpn, Array.from({ length: VPN_ATTACKERS }, (_, i) =>
    `${syslogTime()} server openvpn[535]: TLS Error: cannot locate HMAC in incoming packet from [AF_INET]${vpnAddress(i)}:2302\n`).join(''));
  await waitFor(async () => (await kernel('openvpn_v4')).length === VPN_ATTACKERS, 10_000, context);

  // Two thirds of the burst in one write, SIGKILL as soon as the kernel shows its first bans (the daemon is
  // then usually still reading, committing and applying), then the last third while it is dead.
  const burst = (from: number, to: number): void => appendFileSync(auth, Array.from({ length: to - from }, (_, k) =>
    `${syslogTime()} server sshd[${1000 + from + k}]: Failed password for root from ${sshAddress(from + k)} port ${40000 + k} ssh2\n`).join(''));
  burst(0, (SSH_ATTACKERS * 2) / 3);
  await waitFor(async () => (await kernel('sshd_v4')).length > 0, 10_000, context);
  await pc.daemon.kill();
  firstRun = pc.daemon.output();
  const atKill = (await kernel('sshd_v4')).length;
  burst((SSH_ATTACKERS * 2) / 3, SSH_ATTACKERS);

  // While it is dead: the short bans are still active in the database; wait for their end.
  const store = Store.open(join(dir, 'state'));
  const dead = store.activeBans();
  store.close();
  const shortOnes = dead.filter((b) => b.jail === 'openvpn');
  assert.equal(shortOnes.length, VPN_ATTACKERS, 'the short bans were still active when the daemon died');
  console.log(`killed with ${atKill} bans of the burst in the kernel, ${dead.length - VPN_ATTACKERS} in the database`);
  const lastEnd = Math.max(...shortOnes.map((b) => b.until!));
  await waitFor(() => Date.now() > lastEnd + 1000, VPN_BANTIME_S * 1000 + 5000);

  await pc.restart();
  // The rest of the burst is read after the restart; then database and kernel agree exactly.
  const bans = await waitFor(async () => {
    const b = await pc.banned();
    return b.length === SSH_ATTACKERS ? b : null;
  }, 30_000, context);
  assert.ok(bans.every((b) => b.jail === 'sshd'), 'the expired short bans are gone from the database');
  const keys = bans.map((b) => b.target);
  assert.equal(new Set(keys).size, keys.length, 'a ban is in the database twice');
  assert.deepEqual([...keys].sort(), Array.from({ length: SSH_ATTACKERS }, (_, i) => sshAddress(i)).sort());

  const until = new Map(bans.map((b) => [b.target, Date.parse(b.until!)]));
  await waitFor(async () => (await kernel('sshd_v4')).length === SSH_ATTACKERS, 10_000, context);
  const inKernel = await nftBans(topology);
  assert.deepEqual(inKernel.filter((b) => b.set !== 'sshd_v4'), [], 'nothing else in the kernel (the short bans expired there too)');
  const addresses = inKernel.map((b) => b.address);
  assert.equal(new Set(addresses).size, addresses.length, 'an element is in the kernel twice');
  assert.deepEqual([...addresses].sort(), [...keys].sort());
  // Each keeps its own end. The kernel counts from the moment nft committed the element, so it may end
  // later than the database by the time that took (seconds on a loaded machine), never earlier.
  const now = Date.now();
  const wrongEnd = inKernel
    .filter((b) => {
      const late = b.expires === null ? Infinity : b.expires - (until.get(b.address)! - now) / 1000;
      return late < -2 || late > 60;
    })
    .map((b) => `${b.address}: ${b.expires}s left in the kernel, ${((until.get(b.address)! - now) / 1000).toFixed(1)}s in the database`);
  assert.deepEqual(wrongEnd, [], context());
  assert.match(pc.daemon.output(), new RegExp(`lifted ${VPN_ATTACKERS} ban\\(s\\) that expired while the daemon was stopped`));
  assert.equal(await pc.daemon.stop(), 0, context());
});
