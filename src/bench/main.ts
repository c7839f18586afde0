import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replayDefaults } from '../config/load.js';
import { replay } from '../cli/replay.js';
import { writeAuthLog } from './generate.js';
import { timeFail2banRegex, timeSshgParser } from './peers.js';

/**
 * `npm run bench`: figures, not tests. Inputs are generated deterministically
 * (seeded); each measurement runs several times and the median is printed,
 * because the machines are shared and noisy. Peers (sshguard's parser,
 * fail2ban-regex) run on the same input in the same run when installed, and
 * the ratio is printed. Results also go to bench-results/<time>.json.
 */

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const LINES = 1_000_000;
/** fail2ban-regex manages ~30k lines/s: it gets a 100,000-line prefix of the same file. */
const FAIL2BAN_LINES = 100_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const results: Record<string, unknown> = { date: new Date().toISOString(), runs: RUNS };
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
    const rss = process.memoryUsage().rss / 1e6;
    const out = (s: string): boolean => process.stdout.write(`${s}\n`);
    out(`replay, every built-in jail, ${fmt(LINES)}-line auth log (${mb.toFixed(0)} MB, 5,000 attackers), median of ${RUNS}:`);
    out(`  portcullis replay   ${fmt(median(ours)).padStart(11)} lines/s  (min ${fmt(Math.min(...ours))}, max ${fmt(Math.max(...ours))}); ${bans} bans; rss ${rss.toFixed(0)} MB`);
    if (sshg.length) out(`  sshg-parser         ${fmt(median(sshg)).padStart(11)} lines/s  → portcullis/sshguard = ${(median(ours) / median(sshg)).toFixed(2)}×`);
    else out('  sshg-parser         not installed (apt-get install sshguard)');
    if (f2b.length) out(`  fail2ban-regex sshd ${fmt(median(f2b)).padStart(11)} lines/s  (on a ${fmt(FAIL2BAN_LINES)}-line prefix) → portcullis/fail2ban = ${(median(ours) / median(f2b)).toFixed(1)}×`);
    else out('  fail2ban-regex      not installed (apt-get install fail2ban)');
    Object.assign(results, {
      replay: { linesPerSecond: median(ours), all: ours, bans, rssMB: rss },
      sshgParser: sshg.length ? { linesPerSecond: median(sshg), all: sshg } : null,
      fail2banRegex: f2b.length ? { linesPerSecond: median(f2b), all: f2b } : null,
    });
    mkdirSync('bench-results', { recursive: true });
    const file = join('bench-results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    out(`results: ${file}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
