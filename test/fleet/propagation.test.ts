import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { callDaemon } from '../../src/control/client.js';
import { waitFor } from '../helpers/daemon.js';
import { createFleet, type FleetNode, type TestFleet } from '../helpers/fleet.js';

/**
 * Measures the fleet (asserting only that nothing is lost): 1,000 bans made on
 * node A, one every few milliseconds, timed from the ban request on A to the
 * moment `nft monitor` in B's and C's namespaces reports the element added to
 * their kernel sets (median and worst); then a burst of 1,000 more bans as fast
 * as A takes them, timed until the last one is in both kernels (throughput).
 * Prints the figures.
 */

let fleet: TestFleet;
let a: FleetNode;
const monitors: ChildProcess[] = [];
/** When each address was first seen added, per node. */
const seen = new Map<string, Map<string, number>>();

before(async () => {
  fleet = await createFleet({ nodes: 3 });
  a = fleet.nodes[0]!;
  for (const n of fleet.nodes) await fleet.start(n);
  for (const n of fleet.nodes.slice(1)) {
    const times = new Map<string, number>();
    seen.set(n.name, times);
    const mon = spawn('ip', ['netns', 'exec', n.ns, 'nft', 'monitor', 'elements'], { stdio: ['ignore', 'pipe', 'ignore'] });
    monitors.push(mon);
    let buf = '';
    mon.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const now = performance.timeOrigin + performance.now();
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('add element')) continue;
        for (const m of line.matchAll(/\b(\d+\.\d+\.\d+\.\d+)\b/g)) if (!times.has(m[1]!)) times.set(m[1]!, now);
      }
    });
  }
  // `nft monitor` needs a moment before it reports.
  await new Promise((r) => setTimeout(r, 300));
});

after(async () => {
  for (const m of monitors) m.kill('SIGKILL');
  await fleet?.destroy();
});

const address = (base: number, i: number) => `${base}.${(i >> 8) & 255}.${i & 255}.${7}`;
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;

test('propagation delay over 1,000 bans, and the throughput of a burst', async () => {
  const N = 1000;
  const requested = new Map<string, number>();
  // Paced: one ban every 5 ms, each timed on its own.
  for (let i = 0; i < N; i++) {
    const target = address(10, i);
    requested.set(target, performance.timeOrigin + performance.now());
    void callDaemon(a.socket, 'ban', { target, jail: 'sshd' });
    await new Promise((r) => setTimeout(r, 5));
  }
  for (const [node, times] of seen) await waitFor(() => [...requested.keys()].every((t) => times.has(t)), 30_000, () => `${node} saw ${times.size}`);
  const delays: number[] = [];
  for (const times of seen.values()) for (const [t, at] of requested) delays.push(times.get(t)! - at);
  delays.sort((x, y) => x - y);

  // Burst: N more bans as fast as the control socket takes them (64 in flight).
  const burst = Array.from({ length: N }, (_, i) => address(11, i));
  const start = performance.timeOrigin + performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < burst.length) await callDaemon(a.socket, 'ban', { target: burst[next++]!, jail: 'sshd' });
  }));
  const accepted = performance.timeOrigin + performance.now();
  for (const [node, times] of seen) await waitFor(() => burst.every((t) => times.has(t)), 60_000, () => `${node} saw ${times.size}`);
  const done = Math.max(...[...seen.values()].flatMap((times) => burst.map((t) => times.get(t)!)));
  const seconds = (done - start) / 1000;

  const status = await fleet.status(fleet.nodes[1]!);
  assert.equal(status.fleet!.applied, 2 * N);

  // The receiving side alone: 10,000 ban messages of a node "node-z" written straight into the stream;
  // time until B and C have applied them all (committed, and handed to nftables in batches).
  const M = 10_000;
  const until = Date.now() + 3_600_000;
  const messages = Array.from({ length: M }, (_, i) => {
    const d = JSON.stringify({ v: 1, node: 'node-z', action: 'ban', target: address(12, i), jail: 'sshd', time: Date.now(), until, reason: 'injected' });
    return ['XADD', 'portcullis:decisions', '*', 'node', 'node-z', 'action', 'ban', 'd', d];
  });
  const before = await Promise.all(fleet.nodes.slice(1).map(async (n) => (await fleet.status(n)).fleet!.applied));
  const injectStart = performance.now();
  await fleet.redisPipe(messages);
  const injected = performance.now();
  await Promise.all(fleet.nodes.slice(1).map((n, k) => waitFor(async () => (await fleet.status(n)).fleet!.applied >= before[k]! + M, 60_000, () => `${n.name} applying`)));
  const appliedAll = performance.now();
  for (const [node, times] of seen) await waitFor(() => times.size >= 2 * N + M, 60_000, () => `${node} kernel has ${times.size}`);
  const inKernels = performance.now();
  process.stdout.write([
    '',
    `fleet propagation, ${N} bans paced 5 ms apart, A → kernel sets of B and C (${delays.length} samples):`,
    `  median ${pct(delays, 0.5).toFixed(1)} ms, p90 ${pct(delays, 0.9).toFixed(1)} ms, p99 ${pct(delays, 0.99).toFixed(1)} ms, worst ${delays[delays.length - 1]!.toFixed(1)} ms`,
    `burst of ${N} bans on A: accepted in ${((accepted - start) / 1000).toFixed(2)} s, all in both other kernels after ${seconds.toFixed(2)} s`,
    `  = ${Math.round(N / seconds)} decisions/s published and applied by each of 2 receiving nodes (${Math.round((2 * N) / seconds)} applications/s fleet-wide)`,
    `${M} messages written straight into the stream (${((injected - injectStart) / 1000).toFixed(2)} s): applied by B and C after ${((appliedAll - injectStart) / 1000).toFixed(2)} s`,
    `  = ${Math.round(M / ((appliedAll - injectStart) / 1000))} messages/s per receiving node; in both kernels after ${((inKernels - injectStart) / 1000).toFixed(2)} s`,
    '',
  ].join('\n'));
});
