import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseBantime, parseDuration } from '../../src/core/duration.js';

test('durations in every unit and combined', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  assert.equal(parseDuration('1w'), 604_800_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('600'), 600_000);
  assert.equal(parseDuration(600), 600_000);
  for (const bad of ['', 'h', '10x', '-5m', '1h junk', 'm10']) assert.equal(parseDuration(bad), null, bad);
});

test('bantime accepts permanent forms', () => {
  assert.equal(parseBantime(-1), null);
  assert.equal(parseBantime('-1'), null);
  assert.equal(parseBantime('permanent'), null);
  assert.equal(parseBantime('2h'), 7_200_000);
  assert.equal(parseBantime('soon'), undefined);
});

test('format round-trips', () => {
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(null), 'permanent');
  assert.equal(formatDuration(604_800_000 + 1000), '1w1s');
});
