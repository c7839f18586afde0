import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PacedAnswers } from '../../src/core/paced.js';

/** Counts over a million bans are reused for 20 times their cost; cheap ones are always fresh. */

const busy = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

test('an answer that cost 50 ms or more is reused for 20 times its cost, per key; a cheap one never is', () => {
  let clock = 1_000_000;
  const paced = new PacedAnswers(() => clock);
  let computed = 0;
  const slow = (): number => {
    busy(60);
    return ++computed;
  };
  assert.equal(paced.get('a', slow), 1);
  clock += 1000; // within 20 × 60 ms
  assert.equal(paced.get('a', slow), 1);
  assert.equal(paced.get('b', slow), 2, 'another key is its own answer');
  clock += 300; // 1.3 s after the first: more than 20 × its cost
  assert.equal(paced.get('a', slow), 3);

  let cheap = 0;
  for (let i = 0; i < 3; i++) assert.equal(paced.get('cheap', () => ++cheap), i + 1);
});
