/**
 * Catastrophic backtracking: user patterns must not let one hostile line stall
 * the daemon. A nested repetition that a plain JavaScript translation runs
 * for ever on a 16 KiB line completes at once through our translation (V8's
 * linear-time fallback), and every stock fail2ban filter gets through lines
 * built to make regexes backtrack.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailregexEngine } from '../../src/fail2ban/engine.js';
import { readFilter } from '../../src/fail2ban/filter-reader.js';
import { sampleFilters } from './samples.js';

const HOSTILE = `Jan  1 00:00:00 host app[1]: ${'a'.repeat(16 * 1024)}!`;

/** Runs `code` in a fresh node; true when it finished within the limit. */
function finishes(code: string, limitMs: number): { done: boolean; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: limitMs, cwd: process.cwd() });
  return { done: r.status === 0 && r.signal === null, out: r.stdout + r.stderr };
}

test('a nested repetition that stalls a naive translation runs in linear time through ours', () => {
  const dir = mkdtempSync(join(tmpdir(), 'f2b-guard-'));
  try {
    mkdirSync(join(dir, 'filter.d'));
    writeFileSync(join(dir, 'filter.d', 'evil.conf'), '[Definition]\nfailregex = ^\\s*\\S+ app\\[\\d+\\]: (?:\\w+\\s?)+ from <HOST>$\n');
    writeFileSync(join(dir, 'line.txt'), HOSTILE);
    const naive = finishes(`import { readFileSync } from 'node:fs'; const line = readFileSync('${dir}/line.txt', 'utf8'); console.log(/^Jan  1 00:00:00 \\S+ app\\[\\d+\\]: (?:\\w+\\s?)+ from (?<ip4>\\d+\\.\\d+\\.\\d+\\.\\d+)$/.test(line));`, 3000);
    assert.equal(naive.done, false, 'the naive translation should still be backtracking after 3 s');
    const ours = finishes(`import { readFileSync } from 'node:fs'; import { createFail2banFilter } from '${process.cwd()}/src/fail2ban/fail2ban-filter.ts'; import { EnvelopeParser } from '${process.cwd()}/src/sources/envelope.ts';
      const f = createFail2banFilter('${dir}/filter.d/evil.conf'); const line = readFileSync('${dir}/line.txt', 'utf8');
      console.log(f.engine.failregex[0].guard.verdict, f.match(new EnvelopeParser().parse(line, 'file:x')));`, 60_000);
    assert.ok(ours.done, ours.out);
    assert.match(ours.out, /^linear-fallback null/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every stock fail2ban filter gets through lines built to backtrack', () => {
  const n = 16 * 1024;
  const pad = (s: string): string => s.repeat(Math.ceil(n / s.length)).slice(0, n);
  const lines = [
    `Jan  1 00:00:00 host sshd[1]: Failed password for ${pad(' ')}x`,
    `Jan  1 00:00:00 host sshd[1]: Invalid user ${pad(' from 192.0.2.1 x')}`,
    `Jan  1 00:00:00 host sshd[1]: ${pad('a.')}`,
    `Jan  1 00:00:00 host x[1]: ${pad('[a')}`,
    `<38>1 2019-07-08T17:40:16.954167-04:00 h sshd 1 - [${pad('a"b')}`,
    pad('1'),
    `SecurityEvent="FailedACL",${pad('a="b",')}`,
  ];
  let runs = 0;
  for (const name of sampleFilters()) {
    for (const options of [new Map<string, string>(), new Map([['mode', 'aggressive']])]) {
      const engine = new FailregexEngine(readFilter({ name, options }), { now: () => Date.UTC(2005, 7, 14) });
      for (const line of lines) { engine.processLine(line); runs++; }
    }
  }
  assert.ok(runs > 1000);
});
