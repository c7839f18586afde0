import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';
import { createTopology, type Topology } from '../helpers/netns.js';
import { httpUrl, syslogTime, TOKEN } from './fixture.js';

/**
 * /metrics of the real daemon enforcing with nftables inside a test network
 * namespace: lines appended, bans decided, a manual ban and unban over the
 * API, and an attacker whose packets the firewall drops. The scrape is parsed
 * with an independent Prometheus text-format parser and every value checked
 * against what the test did.
 */

const dir = mkdtempSync(join(tmpdir(), 'pc-metrics-'));
const socket = join(dir, 'control.sock');
const auth = join(dir, 'auth.log');
const vpn = join(dir, 'openvpn.log');
const tokenFile = join(dir, 'token');
let topo: Topology;
let daemon: RunningDaemon;
let url: string;

before(async () => {
  topo = await createTopology();
  await topo.listen(22, 'tcp');
  writeFileSync(auth, '');
  writeFileSync(vpn, '');
  writeFileSync(tokenFile, TOKEN);
  chmodSync(tokenFile, 0o600);
  const config = join(dir, 'portcullis.yaml');
  writeFileSync(config, [
    `state_dir: ${join(dir, 'state')}`,
    `control: { socket: ${socket} }`,
    `http: { listen: "127.0.0.1:0", token_file: ${tokenFile} }`,
    'enforcer: nftables',
    'defaults: { maxretry: 3, findtime: 10m, bantime: 1h }',
    'jails:',
    // From the beginning: the lines appended right after start are read even if the files are opened later.
    `  sshd: { sources: [{ file: ${auth}, start_at: beginning }], ports: [22] }`,
    `  openvpn: { enabled: true, sources: [{ file: ${vpn}, start_at: beginning }], programs: [ovpn-server] }`,
  ].join('\n'));
  daemon = await startDaemon(['--config', config, '--flush-on-exit'], socket, {}, { netns: topo.ns.server });
  url = await httpUrl(daemon);
});

after(async () => {
  if (daemon && daemon.proc.exitCode === null) await daemon.stop();
  await topo?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** An HTTP request made inside the server's namespace, where the daemon's loopback listener is. */
async function request(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const script = `const r = await fetch(${JSON.stringify(url + path)}, { method: ${JSON.stringify(method)}, headers: { authorization: 'Bearer ${TOKEN}', 'content-type': 'application/json' }${body === undefined ? '' : `, body: ${JSON.stringify(JSON.stringify(body))}`} });
process.stdout.write(JSON.stringify({ status: r.status, text: await r.text() }));`;
  const { stdout } = await topo.exec('server', process.execPath, ['--input-type=module', '-e', script]);
  return JSON.parse(stdout) as { status: number; text: string };
}

type Family = { name: string; type: string; metrics: Array<{ value: string; labels?: Record<string, string> }> };

async function scrape(): Promise<Map<string, Family>> {
  const r = await request('GET', '/metrics');
  assert.equal(r.status, 200);
  return new Map((parsePrometheusTextFormat(r.text) as Family[]).map((f) => [f.name, f]));
}

function value(m: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = m.get(name);
  const sample = family?.metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  return sample === undefined ? undefined : Number(sample.value);
}

test('metrics count what happened: lines, matches, health, decisions, active bans, dropped packets', async () => {
  const attacker = topo.addresses.attacker.v4;
  const line = (a: string, n: number): string => `${syslogTime()} web1 sshd[${n}]: Failed password for root from ${a} port ${40000 + n} ssh2\n`;
  for (let n = 0; n < 3; n++) appendFileSync(auth, line(attacker, n));
  for (let n = 0; n < 3; n++) appendFileSync(auth, line('2001:db8:bad::1', 10 + n));
  for (let n = 0; n < 2; n++) appendFileSync(auth, line('198.51.100.50', 20 + n));
  appendFileSync(auth, `${syslogTime()} web1 sshd[30]: Accepted publickey for deploy from 203.0.113.9 port 5000 ssh2: ED25519 SHA256:x\n`);
  appendFileSync(vpn, `${syslogTime()} gw ovpn-server[812]: laptop/203.0.113.20:443 MULTI: packet dropped due to output saturation\n`);
  // A line under sshd's name longer than sshd can write: skipped unread, and counted.
  appendFileSync(auth, `${syslogTime()} web1 sshd[31]: Failed password for ${'x'.repeat(3000)} from 198.51.100.70 port 1 ssh2\n`);

  // A manual ban and its unban through the API (token from the file).
  await waitFor(async () => value(await scrape(), 'portcullis_bans_active', { jail: 'sshd', family: '6' }) === 1, 10_000, () => daemon.output());
  assert.equal((await request('POST', '/api/bans', { target: '198.51.100.60', jail: 'sshd', for: '10m' })).status, 201);
  assert.equal((await request('DELETE', '/api/bans/198.51.100.60')).status, 200);

  // The banned attacker knocks on port 22 five times; the firewall drops every packet.
  for (let i = 0; i < 5; i++) assert.equal(await topo.probeTcp('attacker', topo.addresses.server.v4, 22, 300), 'timeout');
  assert.equal(await topo.probeTcp('friend', topo.addresses.server.v4, 22, 2000), 'connected');

  const m = await scrape();
  for (const f of m.values()) assert.ok(f.name.startsWith('portcullis_'), f.name);
  assert.equal(m.get('portcullis_lines_read_total')!.metrics.reduce((n, x) => n + Number(x.value), 0), 11);
  assert.equal(value(m, 'portcullis_lines_overlong_total', { filter: 'sshd' }), 1);
  assert.equal(value(m, 'portcullis_lines_overlong_total', { filter: 'openvpn' }), 0);
  assert.equal(value(m, 'portcullis_lines_over_budget_total', { filter: 'sshd' }), 0);
  assert.equal(value(m, 'portcullis_lines_matched_total', { filter: 'sshd', kind: 'auth-failure' }), 8);
  assert.equal(value(m, 'portcullis_lines_matched_total', { filter: 'openvpn', kind: 'health' }), 1);
  assert.equal(m.get('portcullis_health_events_total')!.metrics.reduce((n, s) => n + Number(s.value), 0), 1);
  assert.equal(value(m, 'portcullis_decisions_total', { jail: 'sshd', action: 'ban' }), 3);
  assert.equal(value(m, 'portcullis_decisions_total', { jail: 'sshd', action: 'unban' }), 1);
  assert.equal(value(m, 'portcullis_bans_active', { jail: 'sshd', family: '4' }), 1);
  assert.equal(value(m, 'portcullis_bans_active', { jail: 'sshd', family: '6' }), 1);
  assert.equal(value(m, 'portcullis_bans_active', { jail: 'openvpn', family: '4' }), 0);
  assert.equal(value(m, 'portcullis_failing_addresses', { jail: 'sshd' }), 1);
  assert.equal(value(m, 'portcullis_siege', { jail: 'sshd' }), 0);
  assert.equal(value(m, 'portcullis_enforcer_up', { enforcer: 'nftables' }), 1);
  assert.equal(value(m, 'portcullis_enforcer_errors_total', { enforcer: 'nftables' }), 0);
  const dropped = value(m, 'portcullis_dropped_packets_total', { jail: 'sshd' })!;
  assert.ok(dropped >= 5, `at least one dropped SYN per probe, got ${dropped}`);
  assert.ok(value(m, 'portcullis_dropped_bytes_total', { jail: 'sshd' })! >= dropped * 40, 'a TCP SYN is at least 40 bytes');
  assert.equal(value(m, 'portcullis_source_lag_bytes', { item: auth }), 0);
  assert.ok(value(m, 'portcullis_source_lag_seconds', { source: `file:${auth}` })! >= 0);
  assert.equal(m.get('portcullis_lines_read_total')!.type, 'COUNTER');
  assert.equal(m.get('portcullis_bans_active')!.type, 'GAUGE');
});
