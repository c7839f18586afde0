import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replayDefaults } from '../config/load.js';
import { replay } from '../cli/replay.js';
import { writeAuthLog } from './generate.js';
import { timeFail2banRegex, timeSshgParser } from './peers.js';
import { fmt, median, spread, type BenchSection } from './report.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LINES = 1_000_000;
/** fail2ban-regex manages ~30k lines/s: it gets a 100,000-line prefix of the same file. */
const FAIL2BAN_LINES = 100_000;

/** Target 1: `replay` with every built-in jail over a generated log, against sshguard's parser and fail2ban-regex. */
export async function throughput(): Promise<BenchSection> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  try {
    const auth = join(dir, 'auth.log');
    writeAuthLog(auth, LINES, { seed: 42, attackers: 5000 });
    const prefix = join(dir, 'auth-prefix.log');
    writeAuthLog(prefix, FAIL2BAN_LINES, { seed: 42, attackers: 5000 });
    const mb = statSync(auth).size / 1e6;

    const ours: number[] = [];
    const sshg: number[] = [];
    let bans = 0;
    for (let i = 0; i < RUNS; i++) {
      const s = await replay(replayDefaults(), [auth], { onDecision: () => {} });
      ours.push(s.lines / s.seconds);
      bans = s.bans;
      const t = timeSshgParser(auth);
      if (t !== null) sshg.push(LINES / t);
    }
    const f2b: number[] = [];
    for (let i = 0; i < Math.min(RUNS, 3); i++) {
      const t = timeFail2banRegex(prefix);
      if (t !== null) f2b.push(FAIL2BAN_LINES / t);
    }
    const rows: BenchSection['rows'] = [
      { name: 'portcullis replay', value: `${spread(ours, 'lines/s')}; ${bans} bans`, target: '≥ 1,000,000 lines/s', met: median(ours) >= 1_000_000 },
    ];
    if (sshg.length) {
      const ratio = median(ours) / median(sshg);
      rows.push({ name: 'sshg-parser, same file', value: `${spread(sshg, 'lines/s')} → portcullis/sshguard ${ratio.toFixed(2)}×`, target: '≥ 3×', met: ratio >= 3 });
    } else rows.push({ name: 'sshg-parser', value: 'not installed (apt-get install sshguard)' });
    if (f2b.length) {
      const ratio = median(ours) / median(f2b);
      rows.push({ name: 'fail2ban-regex sshd', value: `${spread(f2b, 'lines/s')} on a ${fmt(FAIL2BAN_LINES)}-line prefix → ${ratio.toFixed(1)}×`, target: '≥ 50×', met: ratio >= 50 });
    } else rows.push({ name: 'fail2ban-regex', value: 'not installed (apt-get install fail2ban)' });
    return {
      title: `Throughput: replay, every built-in jail, ${fmt(LINES)}-line log (${mb.toFixed(0)} MB)`,
      rows,
      json: { replay: ours, bans, sshgParser: sshg, fail2banRegex: f2b },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
