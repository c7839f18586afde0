/**
 * `import-fail2ban` on Debian's stock /etc/fail2ban (copied to a temporary
 * directory) plus a jail.local enabling sshd, postfix, asterisk and recidive
 * (maxretry 2) on fail2ban's sample logs: the converted configuration passes `check`, and
 * replaying the samples through it bans the same addresses at the same times
 * as fail2ban would, judged from `fail2ban-regex` (fail2ban's own filter run)
 * with fail2ban's counting: maxretry failures within findtime ban for bantime,
 * failures of a banned address do not count, loopback is never banned.
 * Failures fail2ban finds by host name (it resolves them) or by a malformed
 * address are left out: Portcullis never bans a name read from a log line.
 */

process.env.TZ = 'UTC';

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DateDetector } from '../../src/fail2ban/date-detector.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalAddress } from '../../src/core/address.js';
import { configFromFiles } from '../../src/config/load.js';
import { replay } from '../../src/cli/replay.js';
import { importFail2ban } from '../../src/fail2ban/import.js';
import { SAMPLES_DIR } from './samples.js';

const JAILS = ['sshd', 'postfix', 'asterisk', 'recidive'] as const;

interface Ban {
  address: string;
  time: number;
}

/** fail2ban's decisions from its failures: maxretry within findtime → ban; a banned address's failures do not count. */
function fail2banBans(failures: Array<{ address: string; time: number }>, maxretry: number, findtime: number, bantime: number): Ban[] {
  const pending = new Map<string, number[]>();
  const bannedUntil = new Map<string, number>();
  const bans: Ban[] = [];
  for (const f of failures) {
    if (f.address.startsWith('127.') || f.address === '::1') continue;
    if ((bannedUntil.get(f.address) ?? -Infinity) > f.time) continue;
    const times = (pending.get(f.address) ?? []).filter((t) => t > f.time - findtime);
    times.push(f.time);
    if (times.length >= maxretry) {
      bans.push({ address: f.address, time: f.time });
      bannedUntil.set(f.address, f.time + bantime);
      pending.delete(f.address);
    } else {
      pending.set(f.address, times);
    }
  }
  return bans;
}

function chronological(text: string): string {
  const detector = new DateDetector(null, { now: Date.now, zone: null });
  let last = 0;
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).map((l, i) => {
    const t = detector.find(l)?.time ?? null;
    if (t !== null) last = t;
    return { l, t: last, i };
  });
  lines.sort((a, b) => a.t - b.t || a.i - b.i);
  return `${lines.map((x) => x.l).join('\n')}\n`;
}

function fail2banRegexFailures(dir: string, log: string, filter: string): Array<{ address: string; time: number }> {
  const out = execFileSync('fail2ban-regex', ['-c', dir, '-o', 'row', log, filter], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, maxBuffer: 64 << 20 });
  const failures: Array<{ address: string; time: number }> = [];
  for (const line of out.split('\n')) {
    const m = /^\['([^']+)',\s*([\d.]+),\s*(\{.*\})\],?$/.exec(line.trim());
    if (!m) continue;
    if (/'dns': '/.test(m[3]!)) continue; // found by host name: fail2ban resolves it, we never ban names
    const address = canonicalAddress(m[1]!);
    if (address === null) continue; // not a valid address (e.g. 192.030.0.6)
    failures.push({ address, time: Math.round(Number(m[2]) * 1000) });
  }
  return failures;
}

test('import-fail2ban: stock Debian config + jail.local gives a config that check accepts and bans like fail2ban on the samples', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-f2b-'));
  try {
    const etc = join(dir, 'fail2ban');
    cpSync('/etc/fail2ban', etc, { recursive: true });
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    // The samples jump back and forth in time (they collect cases, not a day's log); a live log is in time
    // order, so both sides get each sample sorted by the time fail2ban reads in each line (stable, so the
    // lines of one connection keep their order; undated lines stay with the line before them).
    for (const j of JAILS) writeFileSync(join(logs, j), chronological(readFileSync(join(SAMPLES_DIR, j), 'utf8')));
    // The samples hold a few failures per address close together: maxretry 2 makes them ban.
    writeFileSync(join(etc, 'jail.local'), JAILS.map((j) => `[${j}]\nenabled = true\nlogpath = ${join(logs, j)}\nmaxretry = 2\n`).join('\n'));

    const result = importFail2ban(etc);
    assert.deepEqual(result.skipped, [], `jails left out: ${result.report.join('; ')}`);
    const yamlPath = join(dir, 'portcullis.yaml');
    writeFileSync(yamlPath, result.yaml);
    const check = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'check', '--config', yamlPath], { encoding: 'utf8' });
    assert.equal(check.status, 0, `portcullis check failed: ${check.stderr}`);
    for (const j of ['sshd', 'postfix', 'asterisk', 'recidive-fail2ban']) assert.match(check.stdout, new RegExp(`\\b${j}\\b`), `${j} enabled`);

    const config = configFromFiles([{ file: yamlPath, text: result.yaml }]);
    for (const sample of JAILS) {
      // Portcullis' own `recidive` counts bans natively; fail2ban's log-reading one is imported under another name.
      const name = sample === 'recidive' ? 'recidive-fail2ban' : sample;
      const jail = config.jails.find((j) => j.name === name)!;
      const log = join(logs, sample);
      const filter = jail.filters[0]!;
      const expected = fail2banBans(fail2banRegexFailures(etc, log, filter.replace(/^.*\/filter\.d\//, '').replace('.conf', '')), jail.maxretry, jail.findtime, jail.bantime ?? Infinity);
      const only = { ...config, jails: config.jails.map((j) => ({ ...j, enabled: j.name === name })) };
      const got: Ban[] = [];
      await replay(only, [log], { includeHostAddresses: false, onDecision: (d) => { if (d.action === 'ban') got.push({ address: d.target, time: d.time }); } });
      assert.ok(expected.length > 0, `${name}: the sample should produce bans`);
      assert.deepEqual(got, expected, `${name}: bans differ from fail2ban's (filter ${filter})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

