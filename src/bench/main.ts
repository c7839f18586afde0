import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { printSection, type BenchSection } from './report.js';
import { flood } from './flood.js';
import { manyAttackers } from './many-attackers.js';
import { throughput } from './throughput.js';
import { latency } from './latency.js';
import { manyBans } from './many-bans.js';
import { hostile } from './hostile.js';

/**
 * `npm run bench [-- SECTION…]`: figures, not tests. Every section generates
 * its inputs deterministically (seeded), repeats its measurements and prints
 * medians, because the machines are shared and noisy; peers (sshguard's
 * parser, fail2ban-regex) run on the same input in the same run when
 * installed. Results also go to bench-results/<time>.json.
 */

const SECTIONS: Record<string, () => Promise<BenchSection>> = {
  throughput,
  'many-attackers': manyAttackers,
  flood,
  latency,
  'many-bans': manyBans,
  hostile,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const name of wanted) if (!(name in SECTIONS)) throw new Error(`unknown bench section "${name}"; known: ${Object.keys(SECTIONS).join(', ')}`);
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version };
  for (const [name, run] of Object.entries(SECTIONS)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    const section = await run();
    printSection(section, out);
    results[name] = { rows: section.rows, ...section.json };
  }
  mkdirSync('bench-results', { recursive: true });
  const file = join('bench-results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  out(`\nresults: ${file}`);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
