import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatExplanation, formatStatus } from '../../src/cli/format.js';
import { configFromFiles } from '../../src/config/load.js';
import type { Explanation, StatusReport } from '../../src/daemon/daemon.js';
import { Pipeline } from '../../src/daemon/pipeline.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';
import { sshFail } from '../helpers/replay.js';

const T0 = Date.UTC(2024, 5, 15, 10);

function pipelineWithEverything(): Pipeline {
  const config = configFromFiles([{ file: 't.yaml', text: `
jails:
  sshd:
    maxretry: 2
    bantime: { base: 10m, factor: 2, max: 1d, jitter: 10% }
    escalate: { threshold: 3 }
    siege: { enter: { failures_per_minute: 20, sources: 5 }, leave: { failures_per_minute: 5, for: 5m } }
    slow: { window: 1d, maxretry: 6, spray: { sources: 3, maxretry: 2 } }
  recidive: { enabled: true, maxretry: 3 }
` }]);
  const jails = config.jails.filter((j) => j.enabled);
  const p = new Pipeline({ jails, globalIgnore: [], mode: 'replay', origin: 'test', includeHostAddresses: false, now: () => T0 + 3_600_000 });
  p.addRoute('r', jails.map((j) => j.name));
  const parser = new EnvelopeParser();
  const lines = [
    sshFail(T0, '203.0.113.1'), sshFail(T0 + 1000, '203.0.113.1'),
    sshFail(T0 + 2000, '203.0.113.2'), sshFail(T0 + 3000, '203.0.113.2'),
    sshFail(T0 + 4000, '198.51.100.1', 'admin'), sshFail(T0 + 5000, '198.51.100.2', 'admin'), sshFail(T0 + 6000, '198.51.100.3', 'admin'),
  ];
  for (let i = 0; i < 25; i++) lines.push(sshFail(T0 + 10_000 + i * 1000, `198.18.0.${i + 1}`, 'oracle'));
  for (const l of lines) p.process(parser.parse(l, 't'), 'r');
  p.take();
  return p;
}

test('status has a line for every defence, also the ones that are off', () => {
  const p = pipelineWithEverything();
  const jail = (name: string): StatusReport['jails'][number] => ({
    name, filters: ['sshd'], maxretry: 2, findtime: '10m', bantime: '10m', ports: [22], protocol: 'tcp', failing: 0, failuresTotal: 0, ignoredTotal: 0,
    bannedNow: 0, bannedTotal: 0, sources: [], defences: p.defenceStatus(name),
  });
  const text = formatStatus({ node: 'n', pid: 1, startedAt: '', config: [], stateDb: '', linesRead: 0, linesMatched: 0, jails: [jail('sshd'), jail('recidive')], enforcers: [], health: {}, errors: [] } as unknown as StatusReport, false);
  assert.match(text, /Ban time: 10m × 2 per earlier ban \(counted across jails\), at most 1d ±10%/);
  assert.match(text, /Netblock escalation: 3 bans within 1h in one \/24 or \/64 → ban it for 1d; 1 prefix ban\(s\) now, 1 escalation\(s\), 0 refused/);
  assert.match(text, /Siege: ON since 2024-06-15T10:00:22\.000Z \(maxretry 1, new connections 10\/minute\); last minute: \d+ failure\(s\) from \d+ address\(es\); enters at 20 failures a minute from 5 addresses, leaves below 5 a minute for 5m; entered 1 time\(s\)/);
  assert.match(text, /Slow brute force: 6 failures within 1d; spray: a user name tried from 3 addresses; participants banned at 2 failure\(s\); tracking \d+ address\(es\), \d+ user name\(s\) \(2 sprayed\)/);
  assert.match(text, /Recidive: 3 bans within 1d in other jails; counting \d+ address\(es\)/);
  assert.match(text, /Jail recidive[\s\S]*Netblock escalation: off \(escalate:\)[\s\S]*Siege: off \(siege:\)[\s\S]*Slow brute force: off \(slow:\)/);
});

test('explain shows escalation progress, the repeat-offender count and next bantime, siege state and long-window evidence', () => {
  const p = pipelineWithEverything();
  const e: Explanation = { address: '203.0.113.3', bans: [], history: [], jails: [], banCount: 0, defences: p.explainDefences('203.0.113.3') };
  const text = formatExplanation(e);
  assert.match(text, /sshd: escalation step 1: 2 of 3 bans within 1h in 203\.0\.113\.0\/24 \(203\.0\.113\.1, 203\.0\.113\.2\)/);
  assert.match(text, /sshd: under siege since 2024-06-15T10:00:22\.000Z/);
  const repeat = formatExplanation({ ...e, address: '203.0.113.1', defences: p.explainDefences('203.0.113.1') });
  assert.match(repeat, /sshd: repeat offender: 1 earlier ban\(s\) counted; the next ban would last (1[89]|2[0-2])m(\d+s)?$/m);
  assert.match(repeat, /recidive: 1 ban\(s\) counted towards a recidive ban/);
  const sprayed = formatExplanation({ ...e, address: '198.51.100.1', defences: p.explainDefences('198.51.100.1') });
  assert.match(sprayed, /sshd: long window: 1 of 6 failures within 1d; tried the sprayed user name "admin" \(banned at 2 failure\(s\)\)/);
});
