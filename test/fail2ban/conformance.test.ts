/**
 * Conformance of our fail2ban loader with fail2ban itself: every filter of
 * the installed Debian fail2ban package that has a sample log, loaded from
 * /etc/fail2ban through src/fail2ban, must give the results fail2ban's own
 * annotations demand (see samples.ts for the rules, which are those of
 * fail2ban's tests/samplestestcase.py).
 *
 * Required: overall agreement ≥ 99 % of cases (line × filter options, matches
 * and non-matches alike, host and time must agree for a match), no filter
 * below 90 %, every filter loads, and every disagreement is listed with its
 * reason in known-disagreements.txt (listed ones that agree again fail too,
 * so the list stays true).
 */

// fail2ban's tests run in TZ=CET-01CEST-02,M3.5.0,M10.5.0; ICU ignores POSIX rule
// strings, and the IANA zone CET has the same offsets and EU transitions.
process.env.TZ = 'CET';

import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSamples, sampleFilters, type FilterResult } from './samples.js';

const KNOWN = new URL('./known-disagreements.txt', import.meta.url);
const OVERALL = 0.99;
const PER_FILTER = 0.9;

function knownDisagreements(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(KNOWN, 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = /^(\S+) (\S+ \[[^\]]*\]) — (.+)$/.exec(line);
    if (!m) throw new Error(`known-disagreements.txt: cannot read ${JSON.stringify(line)}`);
    out.set(`${m[1]} ${m[2]}`, m[3]!);
  }
  return out;
}

test('fail2ban sample logs: our loader agrees with fail2ban on every installed filter', () => {
  const filters = sampleFilters();
  assert.ok(filters.length >= 80, `expected the installed fail2ban package's filters, found ${filters.length}`);
  const results: FilterResult[] = filters.map(runSamples);
  const known = knownDisagreements();
  let cases = 0;
  let agreed = 0;
  const lines: string[] = [];
  const unexplained: string[] = [];
  const seen = new Set<string>();
  for (const r of results) {
    cases += r.cases;
    agreed += r.agreed;
    const pct = r.cases ? (100 * r.agreed) / r.cases : 100;
    lines.push(`${r.filter.padEnd(22)} ${String(r.agreed).padStart(4)}/${String(r.cases).padEnd(4)} ${pct.toFixed(1).padStart(5)}%${r.error ? `  ERROR ${r.error}` : ''}`);
    for (const d of r.disagreements) {
      const key = `${d.filter} ${d.key}`;
      seen.add(key);
      if (!known.has(key)) unexplained.push(`${key} — line ${JSON.stringify(d.line)}: fail2ban: ${d.expected}; we: ${d.got}`);
    }
  }
  const overall = agreed / cases;
  process.stdout.write(`fail2ban conformance, per filter:\n${lines.map((l) => `  ${l}`).join("\n")}\noverall: ${agreed}/${cases} = ${(100 * overall).toFixed(2)}% over ${results.length} filters\n`);
  const broken = results.filter((r) => r.error).map((r) => `${r.filter}: ${r.error}`);
  assert.deepEqual(broken, [], 'every filter must load and run');
  const low = results.filter((r) => r.cases && r.agreed / r.cases < PER_FILTER).map((r) => `${r.filter} ${r.agreed}/${r.cases}`);
  assert.deepEqual(low, [], `no filter may agree on less than ${PER_FILTER * 100}% of its cases`);
  assert.ok(overall >= OVERALL, `overall agreement ${(100 * overall).toFixed(2)}% is below ${OVERALL * 100}%`);
  assert.deepEqual(unexplained, [], 'disagreements not listed in test/fail2ban/known-disagreements.txt');
  const stale = [...known.keys()].filter((k) => !seen.has(k));
  assert.deepEqual(stale, [], 'known-disagreements.txt lists cases that agree now: remove them');
});
