import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/daemon.js';

/**
 * The log excerpts of the seed documents (../shared/seeds), replayed with the
 * jail config a user of each would write, ban exactly the attackers.
 * 000 and 001 are the seeds' own lines (001's article wrapped them; rejoined);
 * 002 has the health messages the seed names; 003 and 004 describe attacks
 * without quoting logs, so their fixtures rebuild them in the services' formats.
 */

const seeds = fileURLToPath(new URL('../fixtures/seeds/', import.meta.url));

interface JsonDecision { action: string; target: string; jail: string; time: string; until: string | null; reason: string }

async function replay(configYaml: string, log: string): Promise<{ decisions: JsonDecision[]; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pc-seed-'));
  try {
    const config = join(dir, 'portcullis.yaml');
    writeFileSync(config, configYaml);
    const r = await runCli(['replay', '--json', '--config', config, join(seeds, log)]);
    assert.equal(r.code, 0, r.stderr);
    return { decisions: r.stdout.trim() ? r.stdout.trim().split('\n').map((l) => JSON.parse(l) as JsonDecision) : [], stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bans = (ds: JsonDecision[]): string[] => ds.filter((d) => d.action === 'ban').map((d) => `${d.jail} ${d.target}`).sort();

test('seed 000: the router\'s OpenVPN flood bans both attackers (with and without tls-auth)', async () => {
  const { decisions } = await replay(`
jails:
  sshd: { enabled: false }
  openvpn:
    enabled: true
    sources: [{ file: /var/log/messages }]
    programs: [vpnserver1]
    maxretry: 3
`, '000-openvpn-router.log');
  assert.deepEqual(bans(decisions), ['openvpn 148.163.126.72', 'openvpn 74.91.120.143']);
  const first = decisions.find((d) => d.target === '148.163.126.72')!;
  // Third failed handshake (12:40:20): each attempt's two error lines count once.
  assert.match(first.time, /T\d\d:40:20/);
});

test('seed 001: SSH password groping bans the groper', async () => {
  const { decisions } = await replay('jails:\n  sshd: { enabled: true, maxretry: 5, findtime: 10m, bantime: 1d }\n', '001-sshd-password-groping.log');
  assert.deepEqual(bans(decisions), ['sshd 200.72.41.31']);
  assert.equal(decisions.length, 1);
  assert.equal(Date.parse(decisions[0]!.until!) - Date.parse(decisions[0]!.time), 86_400_000);
});

test('seed 002: OpenVPN replay-window and output-saturation warnings are health events, never bans', async () => {
  const { decisions, stderr } = await replay('jails:\n  sshd: { enabled: false }\n  openvpn: { enabled: true, maxretry: 1 }\n', '002-openvpn-health.log');
  assert.deepEqual(decisions, []);
  assert.match(stderr, /replayed 8 lines \(8 matched\)/);
});

test('seed 003: the MTA connection flood bans every bot and never the mailers', async () => {
  const { decisions } = await replay('jails:\n  sshd: { enabled: false }\n  sendmail: { enabled: true }\n', '003-sendmail-mta-flood.log');
  assert.deepEqual(bans(decisions), ['198.51.100.31', '198.51.100.32', '198.51.100.33', '203.0.113.41', '203.0.113.42', '203.0.113.43'].map((a) => `sendmail ${a}`).sort());
});

test('seed 004: SIP extension brute force bans the scanner, from the right field', async () => {
  const { decisions } = await replay('jails:\n  sshd: { enabled: false }\n  asterisk: { enabled: true, sources: [{ file: /var/log/asterisk/full }] }\n', '004-asterisk-sip-bruteforce.log');
  assert.deepEqual(bans(decisions), ['asterisk 198.51.100.77', 'asterisk 203.0.113.78']);
  assert.ok(!decisions.some((d) => d.target === '192.0.2.10' || d.target === '192.0.2.50'));
});

test('replay without --config enables every built-in jail', async () => {
  const r = await runCli(['replay', '--json', join(seeds, '001-sshd-password-groping.log'), join(seeds, '004-asterisk-sip-bruteforce.log')]);
  assert.equal(r.code, 0, r.stderr);
  const ds = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as JsonDecision);
  assert.deepEqual(bans(ds), ['asterisk 198.51.100.77', 'asterisk 203.0.113.78', 'sshd 200.72.41.31']);
  for (const d of ds) assert.deepEqual(Object.keys(d), ['action', 'target', 'jail', 'time', 'until', 'reason']);
});
