import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replayDefaults } from '../config/load.js';
import { replay } from '../cli/replay.js';
import { writeAuthLog } from './generate.js';

/**
 * `npm run bench`: figures, not tests. Inputs are generated deterministically;
 * each measurement runs several times and the median is printed, because the
 * machines are shared and noisy.
 */

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  try {
    const auth = join(dir, 'auth.log');
    writeAuthLog(auth, 1_000_000, { seed: 42, attackers: 5000 });
    const mb = statSync(auth).size / 1e6;
    const rates: number[] = [];
    let bans = 0;
    for (let i = 0; i < RUNS; i++) {
      const config = replayDefaults();
      const s = await replay(config, [auth], { onDecision: () => {} });
      rates.push(s.lines / s.seconds);
      bans = s.bans;
    }
    const rss = process.memoryUsage().rss / 1e6;
    process.stdout.write(`replay, every built-in jail, 1,000,000-line auth log (${mb.toFixed(0)} MB, 5,000 attackers):\n`);
    process.stdout.write(`  median ${Math.round(median(rates)).toLocaleString('en')} lines/s over ${RUNS} runs (min ${Math.round(Math.min(...rates)).toLocaleString('en')}, max ${Math.round(Math.max(...rates)).toLocaleString('en')}); ${bans} bans; rss ${rss.toFixed(0)} MB\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
