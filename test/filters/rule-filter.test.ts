import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuleFilter } from '../../src/filters/filter.js';
import { lineOf } from './fixture.js';

const filter = new RuleFilter({
  name: 't',
  service: 't',
  programs: ['t'],
  rules: [
    { id: 'wrong-password', kind: 'auth-failure', needle: ' failed for ', endings: ['Wrong password'], re: /^x '.*?' failed for '(?<addr>[\d.]+)' - Wrong password$/ },
    { id: 'no-peer', kind: 'invalid-user', needle: ' failed for ', endings: ['No peer'], re: /^x '.*?' failed for '(?<addr>[\d.]+)' - No peer$/ },
    { id: 'other', kind: 'probe', needle: 'probe from ', re: /^probe from (?<addr>[\d.]+)$/ },
  ],
  maxMessageLength: 100,
});
const match = (message: string) => {
  const m = filter.match(lineOf(message));
  return m === null ? null : `${m.address} ${m.pattern}`;
};

test('rules sharing a needle each get their turn; endings pick the rule before its pattern runs', () => {
  assert.equal(match("x 'a' failed for '192.0.2.1' - Wrong password"), '192.0.2.1 wrong-password');
  assert.equal(match("x 'a' failed for '192.0.2.2' - No peer"), '192.0.2.2 no-peer');
  assert.equal(match("x 'a' failed for '192.0.2.3' - Wrong password!"), null);
  assert.equal(match('probe from 192.0.2.4'), '192.0.2.4 other');
  assert.deepEqual(filter.patterns, ['wrong-password', 'no-peer', 'other']);
});

test('a message longer than the service can write is skipped', () => {
  assert.equal(filter.maxMessageLength, 100);
  assert.equal(match(`x '${'a'.repeat(50)}' failed for '192.0.2.5' - No peer`), '192.0.2.5 no-peer');
  assert.equal(match(`x '${'a'.repeat(80)}' failed for '192.0.2.6' - No peer`), null);
});
