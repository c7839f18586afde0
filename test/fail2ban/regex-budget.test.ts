/**
 * The time budget of user-supplied patterns on long lines: a line crafted to
 * make a fail2ban pattern backtrack for seconds is given up and counted, while
 * long lines that match normally give the same failures as short ones, and
 * short lines never wait for the matching thread.
 */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFail2banFilter, type Fail2banFilter } from '../../src/fail2ban/fail2ban-filter.js';
import { budgetStats, HARD_LIMIT_MS, LOCAL_LENGTH } from '../../src/fail2ban/regex-budget.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';

let dir: string;
let filter: Fail2banFilter;
const parser = new EnvelopeParser();

// The shape of apache-common's client prefix: `\S+:\S+` can split a run of colons in as many ways as it is
// long, and the greedy loops backtrack without counting towards V8's linear-time fallback.
const FILTER = '[Definition]\nfailregex = ^\\[(?:error|\\S+:\\S+)\\] \\[client <HOST>\\] user <F-USER>\\S+</F-USER> denied$\n';

// An error log of its own, without dates: the regex sees the line as it is.
const line = (body: string): string => body;
const match = (text: string): ReturnType<Fail2banFilter['match']> => filter.match(parser.parse(text, 'file:x'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
// Far above what the lines that match take on a loaded CI machine (the default 5 ms is not: a line that
// matches was given up there once), far below what the crafted ones take.
const TEST_BUDGET_MS = 200;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'f2b-budget-'));
  mkdirSync(join(dir, 'filter.d'));
  writeFileSync(join(dir, 'filter.d', 'colons.conf'), FILTER);
  filter = createFail2banFilter(join(dir, 'filter.d', 'colons.conf'), { budgetMs: TEST_BUDGET_MS });
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('a long line that matches gives the failure a short one gives, groups included', () => {
  const longUser = 'u'.repeat(3000);
  const short = match(line('[auth:error] [client 192.0.2.7] user alice denied'));
  assert.deepEqual(short && { address: short.address, user: short.user }, { address: '192.0.2.7', user: 'alice' });
  const remoteBefore = budgetStats.remote;
  const long = match(line(`[auth:error] [client 192.0.2.8] user ${longUser} denied`));
  assert.ok(budgetStats.remote > remoteBefore, 'a line over LOCAL_LENGTH is matched by the thread');
  assert.deepEqual(long && { address: long.address, user: long.user }, { address: '192.0.2.8', user: longUser });
  assert.equal(match(line(`[auth:error] [client 192.0.2.9] user ${longUser} allowed`)), null);
  assert.equal(filter.linesOverBudget, 0);
});

test('a line crafted to backtrack is given up and counted; other lines still match', () => {
  // The closing `denied!` fails only after `\S+:\S+` tried every split of 30,000 colons, each rescanning them:
  // ~5·10^8 steps, over half a second on any machine.
  const crafted = line(`[${':'.repeat(30_000)}] [client 192.0.2.10] user mallory denied!`);
  assert.equal(match(crafted), null);
  assert.equal(filter.linesOverBudget, 1);
  // Short lines run here, never behind a busy thread.
  const shortLine = line('[error] [client 192.0.2.11] user bob denied');
  assert.ok(shortLine.length <= LOCAL_LENGTH);
  assert.equal(match(shortLine)?.address, '192.0.2.11');
  // The other thread takes the next long line.
  assert.equal(match(line(`[error] [client 192.0.2.12] user ${'v'.repeat(2000)} denied`))?.address, '192.0.2.12');
  // Both threads busy: a long line is given up at once, not waited for.
  assert.equal(match(crafted), null);
  assert.equal(match(line(`[error] [client 192.0.2.13] user ${'w'.repeat(2000)} denied`)), null);
  assert.equal(filter.linesOverBudget, 3);
});

test('a match that would run for ever is ended after HARD_LIMIT_MS and its thread replaced', async () => {
  // A nested repetition with a lookbehind: V8's linear engine cannot run it, so nothing else stops it.
  writeFileSync(join(dir, 'filter.d', 'forever.conf'), '[Definition]\nfailregex = ^\\[(?:\\S+:?)+(?<!x)\\] \\[client <HOST>\\]\n');
  const forever = createFail2banFilter(join(dir, 'filter.d', 'forever.conf'));
  assert.equal(forever.engine.warnings.length, 1, 'loaded with a warning');
  // The crafted lines of the test before have run out (or been ended) by then.
  await sleep(HARD_LIMIT_MS + 500);
  const started = budgetStats.threadsStarted;
  for (let i = 0; i < 2; i++) assert.equal(forever.match(parser.parse(`[${':'.repeat(2000)}] [client !]`, 'file:x')), null);
  assert.equal(forever.linesOverBudget, 2);
  await sleep(HARD_LIMIT_MS + 1000);
  assert.ok(budgetStats.threadsStarted >= started + 2, 'both stalled threads were replaced');
  assert.equal(match(line(`[error] [client 192.0.2.21] user ${'x'.repeat(2000)} denied`))?.address, '192.0.2.21');
});

test('a multi-line buffer holds at most 32 KiB: long lines push out what is older, short failures still join', async () => {
  await sleep(HARD_LIMIT_MS + 500);
  writeFileSync(join(dir, 'filter.d', 'conn.conf'), [
    '[Definition]',
    'failregex = ^conn=(?P<_c>\\d+) ACCEPT from IP=<HOST>\\s*<SKIPLINES>conn=(?P=_c) RESULT err=49$',
    '[Init]',
    'maxlines = 20',
    '',
  ].join('\n'));
  const conn = createFail2banFilter(join(dir, 'filter.d', 'conn.conf'), { budgetMs: TEST_BUDGET_MS });
  const feed = (text: string) => conn.match(parser.parse(text, 'file:x'));
  const noise = (n: number) => `conn=9 SEARCH ${'a'.repeat(n)}`;
  // Two short lines apart, with long ones between that fit in the buffer together.
  assert.equal(feed('conn=1 ACCEPT from IP=192.0.2.31'), null);
  for (let i = 0; i < 3; i++) assert.equal(feed(noise(8_000)), null);
  assert.equal(feed('conn=1 RESULT err=49')?.address, '192.0.2.31');
  // 40 KiB in between: the first line has left the buffer, where fail2ban's 20 lines would still hold it.
  assert.equal(feed('conn=2 ACCEPT from IP=192.0.2.32'), null);
  for (let i = 0; i < 5; i++) assert.equal(feed(noise(8_000)), null);
  assert.equal(feed('conn=2 RESULT err=49'), null);
  assert.equal(conn.linesOverBudget, 0);
});
