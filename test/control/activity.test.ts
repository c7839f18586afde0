import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Activity } from '../../src/control/activity.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { SampledCounters } from '../../src/daemon/enforcement.js';

/** The dropped-traffic series from paced counter reads: what a late read adds is spread over the minutes it covers. */

test('packets stopped between two reads minutes apart are spread over those minutes, and a reused read adds nothing', async () => {
  const MINUTE = 60_000;
  const start = Math.floor(Date.now() / MINUTE) * MINUTE - 30 * MINUTE;
  let clock = start;
  let reads: SampledCounters[] = [];
  const daemon = { events: new EventEmitter(), store: { history: () => [] }, enforcerCounters: async () => reads } as unknown as Daemon;
  const activity = new Activity(daemon, [], () => clock);
  const read = (packets: number, at: number): SampledCounters[] => [{ jail: 'sshd', enforcer: 'nftables', packets, bytes: packets * 60, sampledAt: at }];

  reads = read(1000, start + 30_000); // the baseline
  await activity.sampleCounters();
  reads = read(1600, start + 30_000 + 10 * MINUTE); // ten minutes later (a paced read)
  clock = start + 20 * MINUTE;
  await activity.sampleCounters();
  await activity.sampleCounters(); // the same read handed out again: nothing new
  const series = activity.series('1h');
  const perMinute = series.dropped.sshd!;
  const byTime = new Map(series.times.map((t, i) => [t * 1000, perMinute[i]!]));
  // 600 packets over 10 minutes from start+30 s: 30 in the first minute, 60 in each of the next nine, 30 in the last.
  assert.deepEqual(Array.from({ length: 11 }, (_, i) => byTime.get(start + i * MINUTE)), [30, 60, 60, 60, 60, 60, 60, 60, 60, 60, 30]);
  assert.equal(perMinute.reduce((a, b) => a + b, 0), 600);
  activity.stop();
});
