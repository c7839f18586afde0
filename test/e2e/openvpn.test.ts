import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/daemon.js';
import { nftBans, nftCounter, startDaemonInServer, tempDir, teardown, type DaemonInNamespace } from '../helpers/e2e.js';
import { createTopology, type Topology } from '../helpers/netns.js';
import { attackOpenvpn, makePki, startOpenvpn, type OpenvpnServer } from '../helpers/openvpn.js';

/**
 * Seed 000 against a real OpenVPN 2.6 server in the server namespace, Portcullis
 * (nftables) following the servers' own log files:
 * - with `tls-auth`, a stream of bogus packets makes the server log
 *   `cannot locate HMAC in incoming packet from [AF_INET]ADDR:PORT`; the source
 *   is banned and its further packets are dropped before OpenVPN sees them;
 * - without it, abandoned handshakes end in `TLS key negotiation failed to
 *   occur within 3 seconds` (`hand-window 3`); the source is banned too.
 * Each attack comes from its own attacker address (198.51.100.2 and .3).
 */

const FLOODER = '198.51.100.2';
const HANDSHAKER = '198.51.100.3';

let topology: Topology;
let pc: DaemonInNamespace;
let withTlsAuth: OpenvpnServer;
let without: OpenvpnServer;
const cleanup = teardown(after);

before(async () => {
  const dir = tempDir('openvpn', cleanup);
  topology = await createTopology({ after: cleanup });
  await topology.exec('attacker', 'ip', ['addr', 'add', `${HANDSHAKER}/24`, 'dev', 'eth0']);
  const pki = makePki(dir);
  withTlsAuth = await startOpenvpn(topology, dir, pki, { name: 'pcvpn-auth', port: 1194, tlsAuth: true, subnet: '10.89.0.0' });
  without = await startOpenvpn(topology, dir, pki, { name: 'pcvpn-open', port: 1195, tlsAuth: false, subnet: '10.90.0.0' });
  pc = await startDaemonInServer(topology, dir, [
    'enforcer: nftables',
    'jails:',
    '  sshd: { enabled: false }',
    '  openvpn:',
    '    enabled: true',
    `    sources: [{ file: ${withTlsAuth.log} }, { file: ${without.log} }]`,
    '    ports: [1194, 1195]',
    '    protocol: udp',
    '    maxretry: 3',
    '    bantime: 1h',
    '',
  ].join('\n'), cleanup);
  await waitFor(async () => (await pc.status()).enforcers.every((e) => e.ready), 10_000, () => pc.daemon.output());
});

const banned = async (address: string): Promise<boolean> => (await nftBans(topology)).some((b) => b.set === 'openvpn_v4' && b.address === address);
const context = (server: OpenvpnServer) => () => `daemon:\n${pc.daemon.output()}\nopenvpn:\n${server.lines().join('\n')}`;

test('with tls-auth: bogus packets are logged as "cannot locate HMAC", the source is banned, and its packets no longer reach OpenVPN', async (t) => {
  const hmacLines = () => withTlsAuth.lines().filter((l) => l.includes(`cannot locate HMAC in incoming packet from [AF_INET]${FLOODER}:`)).length;
  const flood = attackOpenvpn(topology, 'attacker', 'bogus', FLOODER, topology.addresses.server.v4, 1194);
  t.after(() => flood.stop());
  await waitFor(() => banned(FLOODER), 10_000, context(withTlsAuth));
  assert.ok(hmacLines() >= 3, 'banned on the server\'s own HMAC errors');

  // The flood goes on, but from now on the kernel drops it: the counter rises, the log stays still.
  const seen = hmacLines();
  const dropped = await nftCounter(topology, 'openvpn_blocked');
  await waitFor(async () => (await nftCounter(topology, 'openvpn_blocked')) >= dropped + 25, 10_000, context(withTlsAuth));
  assert.equal(hmacLines(), seen, 'packets of the banned source still reached OpenVPN');
  flood.stop();

  const bans = await pc.banned();
  assert.deepEqual(bans.map((b) => `${b.jail} ${b.target}`), [`openvpn ${FLOODER}`]);
});

test('without tls-auth: abandoned handshakes time out ("TLS key negotiation failed"), the source is banned, and the server stops answering it', async (t) => {
  const timeouts = () => without.lines().filter((l) => l.includes(` ${HANDSHAKER}:`) && l.includes('TLS key negotiation failed to occur within 3 seconds')).length;
  const attack = attackOpenvpn(topology, 'attacker', 'abandon', HANDSHAKER, topology.addresses.server.v4, 1195);
  t.after(() => attack.stop());
  await waitFor(() => banned(HANDSHAKER), 20_000, context(without));
  assert.ok(timeouts() >= 3, `banned on the server's handshake timeouts:\n${without.lines().join('\n')}`);

  // New handshakes get no answer any more; the dropped resets are counted.
  const replies = attack.replies();
  const dropped = await nftCounter(topology, 'openvpn_blocked');
  await waitFor(async () => (await nftCounter(topology, 'openvpn_blocked')) >= dropped + 3, 10_000, context(without));
  assert.equal(attack.replies(), replies, 'the server still answered the banned source');
  attack.stop();

  assert.deepEqual((await pc.banned()).map((b) => `${b.jail} ${b.target}`).sort(), [`openvpn ${FLOODER}`, `openvpn ${HANDSHAKER}`]);
  assert.equal(await pc.daemon.stop(), 0);
});
