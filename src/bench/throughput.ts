import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replayDefaults } from '../config/load.js';
import { replay } from '../cli/replay.js';
import { resolveFilter, testFilter } from '../cli/test-filter.js';
import { writeMixedLog } from './generate.js';
import { FAIL2BAN_SSHD_FILTER, timeFail2banRegex, timeSshgParser } from './peers.js';
import { fmt, median, spread, type BenchRow, type BenchSection } from './report.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LINES = Number(process.env.BENCH_LINES ?? 1_000_000);
/** fail2ban-regex manages ~30k lines/s: it gets the first 100,000 lines of the same file. */
const FAIL2BAN_LINES = Math.min(LINES, 100_000);

/**
 * Target 1: `replay` with every built-in jail over a generated mixed syslog
 * (sshd, OpenVPN, Postfix, Sendmail, Asterisk, kernel and cron noise, a third
 * attacks from 20,000 IPv4/IPv6 sources), against sshguard's parser and
 * fail2ban-regex on the same file; and `test-filter` with fail2ban's own sshd
 * filter loaded, against fail2ban-regex with that filter.
 */
export async function throughput(): Promise<BenchSection> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  try {
    const log = join(dir, 'syslog');
    writeMixedLog(log, LINES, { seed: 7, attackers: 20_000 });
    // The same generator and seed: the prefix is the big file's first lines.
    const prefix = join(dir, 'syslog-prefix');
    writeMixedLog(prefix, FAIL2BAN_LINES, { seed: 7, attackers: 20_000 });
    const mb = statSync(log).size / 1e6;

    const ours: number[] = [];
    const sshg: number[] = [];
    const loaded: number[] = [];
    let bans = 0;
    const fail2banFilter = `fail2ban:${FAIL2BAN_SSHD_FILTER}`;
    for (let i = 0; i < RUNS; i++) {
      const s = await replay(replayDefaults(), [log], { onDecision: () => {} });
      ours.push(s.lines / s.seconds);
      bans = s.bans;
      const t = timeSshgParser(log);
      if (t !== null) sshg.push(LINES / t);
      if (statSyncOrNull(FAIL2BAN_SSHD_FILTER)) {
        const r = await testFilter(resolveFilter(fail2banFilter), log, { maxLineLength: 65536 });
        loaded.push(r.lines / r.seconds);
      }
    }
    const f2b: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 3); i++) {
      const t = timeFail2banRegex(prefix);
      if (t !== null) f2b.push(FAIL2BAN_LINES / t);
    }
    const rows: BenchRow[] = [
      { name: 'portcullis replay, every built-in jail', value: `${spread(ours, 'lines/s')}; ${bans} bans`, target: '≥ 1,000,000 lines/s', met: median(ours) >= 1_000_000 },
    ];
    if (sshg.length) {
      const ratio = median(ours) / median(sshg);
      rows.push({ name: 'sshg-parser, same file', value: `${spread(sshg, 'lines/s')} → portcullis/sshguard ${ratio.toFixed(2)}×`, target: '≥ 3×', met: ratio >= 3 });
    } else rows.push({ name: 'sshg-parser', value: 'not installed (apt-get install sshguard)' });
    if (f2b.length) {
      const ratio = median(ours) / median(f2b);
      rows.push({ name: 'fail2ban-regex, stock sshd filter', value: `${spread(f2b, 'lines/s')} on the first ${fmt(FAIL2BAN_LINES)} lines → replay/fail2ban ${ratio.toFixed(1)}×`, target: '≥ 50×', met: ratio >= 50 });
      if (loaded.length) {
        const r2 = median(loaded) / median(f2b);
        rows.push({ name: 'portcullis test-filter fail2ban:sshd', value: `${spread(loaded, 'lines/s')} → test-filter/fail2ban-regex ${r2.toFixed(1)}×`, target: '≥ 10×', met: r2 >= 10 });
      }
    } else rows.push({ name: 'fail2ban-regex', value: 'not installed (apt-get install fail2ban)' });
    return {
      title: `Throughput: ${fmt(LINES)}-line mixed syslog (${mb.toFixed(0)} MB; sshd, OpenVPN, Postfix, Sendmail, Asterisk, noise)`,
      rows,
      json: { replay: ours, bans, sshgParser: sshg, fail2banRegex: f2b, testFilterFail2banSshd: loaded },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function statSyncOrNull(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
