import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MIN_NEEDLE_LENGTH, needleGate } from '../../src/core/regexp.js';

test('needleGate matches any needle literally, syntax characters included', () => {
  const gate = needleGate(['Failed password', 'pam_unix(sshd:auth)', 'a.b*c[d]']);
  assert.ok(gate.test('x Failed password for root'));
  assert.ok(gate.test('pam_unix(sshd:auth): authentication failure'));
  assert.ok(gate.test('--a.b*c[d]--'));
  assert.ok(!gate.test('aXb*c[d] pam_unix sshd:auth'));
});

test('needleGate refuses a needle V8 would search position by position', () => {
  assert.throws(() => needleGate(['Failed password', ' user ']), /needle " user " is shorter than 7 characters/);
  assert.doesNotThrow(() => needleGate(['x'.repeat(MIN_NEEDLE_LENGTH)]));
});
