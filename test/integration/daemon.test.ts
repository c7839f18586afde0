import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/daemon.js';
import { startDaemon, waitFor, type RunningDaemon } from '../helpers/daemon.js';

/**
 * The real daemon on temporary files with the dry-run enforcer: attack lines
 * for every built-in service, a restart in the middle of counting (no line
 * counted twice or missed), rotation by rename and by copytruncate while
 * writing, and bans that persist across restarts.
 */

const dir = mkdtempSync(join(tmpdir(), 'pc-daemon-'));
const socket = join(dir, 'control.sock');
const config = join(dir, 'portcullis.yaml');
const f = {
  auth: join(dir, 'auth.log'),
  vpn: join(dir, 'openvpn.log'),
  mail: join(dir, 'mail.log'),
  exim: join(dir, 'mainlog'),
  asterisk: join(dir, 'asterisk.log'),
  nginx: join(dir, 'nginx-error.log'),
  apache: join(dir, 'apache-error.log'),
};
let daemon: RunningDaemon | null = null;

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');
const syslog = (d = new Date()): string => `${MON[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
const isoLocal = (d = new Date(), sep = '-'): string => `${d.getFullYear()}${sep}${p2(d.getMonth() + 1)}${sep}${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
const ctime = (d = new Date()): string => `${['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getDay()]} ${MON[d.getMonth()]} ${p2(d.getDate())} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}.123456 ${d.getFullYear()}`;

/** One attack line per service, each from its own attacker; `n` varies the ports so lines differ. */
const attacks: Record<string, { file: string; addr: string; line: (n: number) => string }> = {
  sshd: { file: f.auth, addr: '198.51.100.10', line: (n) => `${syslog()} web1 sshd[${100 + n}]: Failed password for root from 198.51.100.10 port ${40000 + n} ssh2` },
  openvpn: { file: f.vpn, addr: '198.51.100.11', line: (n) => `${syslog()} gw openvpn[535]: 198.51.100.11:${20000 + n} TLS Error: TLS handshake failed` },
  postfix: { file: f.mail, addr: '198.51.100.12', line: (n) => `${syslog()} mx postfix/smtpd[${200 + n}]: warning: unknown[198.51.100.12]: SASL LOGIN authentication failed: UGFzc3dvcmQ6` },
  sendmail: { file: f.mail, addr: '198.51.100.13', line: (n) => `${syslog()} mx sm-mta[${300 + n}]: 4AB${n}CDE: [198.51.100.13] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA` },
  dovecot: { file: f.mail, addr: '2001:db8:bad::14', line: (n) => `${syslog()} mx dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u${n}>, method=PLAIN, rip=2001:db8:bad::14, lip=192.0.2.1, session=<abc${n}>` },
  exim: { file: f.exim, addr: '198.51.100.15', line: (n) => `${isoLocal()} login authenticator failed for (x${n}) [198.51.100.15]: 535 Incorrect authentication data (set_id=admin)` },
  asterisk: { file: f.asterisk, addr: '198.51.100.16', line: (n) => `[${isoLocal()}] NOTICE[${400 + n}] chan_sip.c: Registration from '"20${n}" <sip:20${n}@192.0.2.1>' failed for '198.51.100.16:5060' - Wrong password` },
  'nginx-http-auth': { file: f.nginx, addr: '198.51.100.17', line: (n) => `${isoLocal(new Date(), '/')} [error] 12#12: *${n} user "admin${n}": password mismatch, client: 198.51.100.17, server: example.org, request: "GET /private HTTP/1.1", host: "example.org"` },
  'nginx-limit-req': { file: f.nginx, addr: '198.51.100.18', line: (n) => `${isoLocal(new Date(), '/')} [error] 12#12: *${50 + n} limiting requests, excess: 10.${n}00 by zone "one", client: 198.51.100.18, server: example.org, request: "GET / HTTP/1.1", host: "example.org"` },
  'apache-auth': { file: f.apache, addr: '198.51.100.19', line: (n) => `[${ctime()}] [auth_basic:error] [pid 77:tid 88] [client 198.51.100.19:${5000 + n}] AH01617: user admin${n}: authentication failure for "/private": Password Mismatch` },
};

const noise = [
  () => appendFileSync(f.auth, `${syslog()} web1 sshd[9]: Accepted publickey for deploy from 203.0.113.50 port 5000 ssh2: ED25519 SHA256:x\n`),
  () => appendFileSync(f.mail, `${syslog()} mx postfix/smtpd[9]: connect from mail.example.net[203.0.113.51]\n`),
  () => appendFileSync(f.auth, `${syslog()} web1 CRON[10]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n`),
];

const jailFiles: Record<string, string[]> = {};
for (const [jail, a] of Object.entries(attacks)) jailFiles[jail] = [a.file];

before(() => {
  for (const path of Object.values(f)) writeFileSync(path, '');
  const jails = Object.entries(jailFiles).map(([name, files]) => `  ${name}:\n    enabled: true\n    sources: [${files.map((x) => `{ file: ${x} }`).join(', ')}]`).join('\n');
  writeFileSync(config, `state_dir: ${join(dir, 'state')}\ncontrol: { socket: ${socket} }\nenforcer: dry-run\ndefaults: { maxretry: 3, findtime: 10m, bantime: 1h }\njails:\n${jails}\n`);
});

after(async () => {
  if (daemon && daemon.proc.exitCode === null) await daemon.kill();
  rmSync(dir, { recursive: true, force: true });
});

const status = async (): Promise<StatusReport> => (await callDaemon(socket, 'status')) as StatusReport;
const banned = async (): Promise<Array<{ target: string; jail: string; until: string | null }>> =>
  (await callDaemon(socket, 'banned')) as Array<{ target: string; jail: string; until: string | null }>;

test('every built-in service is counted across a restart and across rotation, and its attacker banned once', async () => {
  daemon = await startDaemon(['--config', config], socket);
  // Two failures each, plus noise: nobody reaches maxretry 3 yet.
  let expectedLines = 0;
  for (let n = 1; n <= 2; n++) {
    for (const a of Object.values(attacks)) { appendFileSync(a.file, `${a.line(n)}\n`); expectedLines++; }
    for (const w of noise) { w(); expectedLines++; }
  }
  await waitFor(async () => (await status()).linesRead >= expectedLines, 10_000, () => `lines read: ${daemon!.output()}`);
  assert.deepEqual(await banned(), []);
  const before = await status();
  for (const j of before.jails) assert.equal(j.failing, 1, `${j.name} should have one address failing`);

  // Restart: the two failures per attacker must be remembered, and not read again.
  assert.equal(await daemon.stop(), 0, daemon.output());
  daemon = await startDaemon(['--config', config], socket);
  const restarted = await status();
  for (const j of restarted.jails) assert.equal(j.failing, 1, `${j.name} after restart`);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(await banned(), [], 'lines re-read after the restart would have banned');

  // Rename-and-create rotation of auth.log, with a late line written to the old file.
  renameSync(f.auth, `${f.auth}.1`);
  writeFileSync(f.auth, '');
  appendFileSync(`${f.auth}.1`, `${attacks.sshd!.line(3)}\n`);
  // copytruncate of mail.log, then the third line of each mail attacker.
  copyFileSync(f.mail, `${f.mail}.1`);
  truncateSync(f.mail, 0);
  for (const [jail, a] of Object.entries(attacks)) if (jail !== 'sshd') appendFileSync(a.file, `${a.line(3)}\n`);
  // A second SSH attacker whose lines straddle the rotation: one in the new file.
  appendFileSync(f.auth, `${syslog()} web1 sshd[7]: Invalid user oracle from 198.51.100.99 port 1\n`);

  const want = Object.entries(attacks).map(([jail, a]) => `${jail} ${a.addr}`).sort();
  const got = await waitFor(async () => {
    const b = await banned();
    return b.length >= want.length ? b : null;
  }, 10_000, () => `bans so far; daemon said:\n${daemon!.output()}`);
  assert.deepEqual(got.map((b) => `${b.jail} ${b.target}`).sort(), want);
  for (const b of got) assert.ok(b.until !== null && Date.parse(b.until) > Date.now() + 3_500_000, 'bantime 1h from now');
  assert.match(daemon.output(), /\[sshd\] ban 198\.51\.100\.10 for 1h/);

  // Bans persist across a restart, without duplicates.
  assert.equal(await daemon.stop(), 0);
  daemon = await startDaemon(['--config', config], socket);
  assert.deepEqual((await banned()).map((b) => `${b.jail} ${b.target}`).sort(), want);
  const s = await status();
  assert.equal(s.jails.find((j) => j.name === 'sshd')!.failing, 1, 'the second SSH attacker is still counted');
  assert.equal(s.jails.find((j) => j.name === 'sshd')!.bannedTotal, 1);
  assert.equal(await daemon.stop(), 0);
});
