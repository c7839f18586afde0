import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyRegexError, pythonGroups, translatePythonRegex } from '../../src/fail2ban/pyregex.js';

function run(pattern: string, text: string): Record<string, string | undefined> | null {
  const t = translatePythonRegex(pattern);
  const m = new RegExp(t.source, t.flags).exec(text);
  return m ? pythonGroups(t, m) : null;
}

test('named groups, (?P=name) and numbered backreferences', () => {
  assert.deepEqual(run(String.raw`(?P<q>"?)\w+(?P=q) (\d)\2`, '"abc" 11'), { q: '"', '2': '1' });
  assert.equal(run(String.raw`^(?P<q>"?)\w+(?P=q)$`, '"abc\n'), null);
});

test('inline flags: global at the start, scoped anywhere, fail2ban\'s ((?i)…) form', () => {
  assert.ok(run('(?i)failed', 'FAILED'));
  assert.ok(run('SASL ((?i)login|plain) failed', 'SASL LOGIN failed'));
  assert.equal(run('SASL ((?i)login) FAILED', 'SASL LOGIN failed'), null, 'the flag is scoped to its group');
  assert.ok(run('a(?i:B)c', 'abc'));
  assert.equal(run('a(?i:B)c', 'abC'), null);
  assert.ok(run('(?s)a.b', 'a\nb'));
  assert.equal(run('a.b', 'a\nb'), null, '. does not match a newline');
  assert.ok(run('(?x) a  b # comment\n c', 'abc'));
  assert.throws(() => translatePythonRegex('a(?i)b'), (e: PyRegexError) => /global flags not at the start/.test(e.reason));
});

test('Python-only syntax: \\A, \\Z, {,n}, conditionals, atomic groups, possessive quantifiers', () => {
  assert.ok(run(String.raw`\Aab\Z`, 'ab'));
  assert.equal(run(String.raw`ab\Z`, 'ab\n'), null, '\\Z is the very end');
  assert.ok(run('ab$', 'ab\n'), '$ matches before a final newline');
  assert.deepEqual(run('^a{,2}$', 'aa'), {});
  assert.equal(run('^a{,2}$', 'aaa'), null);
  assert.ok(run('^x{}$', 'x{}'), 'a brace that is no quantifier is literal');
  const cond = String.raw`^(?P<q><)?\w+(?(q)>|!)$`;
  assert.ok(run(cond, '<abc>'));
  assert.ok(run(cond, 'abc!'));
  assert.equal(run(cond, '<abc!'), null);
  assert.equal(run(cond, 'abc>'), null);
  assert.equal(run('^(?>a+)a$', 'aaa'), null, 'an atomic group does not give back');
  assert.equal(run('^a++a$', 'aaa'), null);
  assert.ok(run('^(?:a+)a$', 'aaa'));
});

test('Unicode classes as Python has them', () => {
  assert.deepEqual(run(String.raw`user (?P<u>\w+)$`, 'user jürgen'), { u: 'jürgen' });
  assert.deepEqual(run(String.raw`(?P<d>\d+)`, 'x ٣٤'), { d: '٣٤' });
  assert.ok(run(String.raw`^\s$`, '\x1c'), 'Python counts \\x1c as white space');
});

test('errors name the reason and the offset', () => {
  for (const [p, reason] of [['(a', /missing \)/], ['a)', /unbalanced/], ['*a', /nothing to repeat/], ['a**', /multiple repeat/], ['[a', /unterminated character set/], [String.raw`\q`, /bad escape/], ['(?P<x>a)(?P<x>b)', /redefinition/], [String.raw`\2(a)`, /invalid group reference/], ['[z-a]', /bad character range/]] as const) {
    assert.throws(() => translatePythonRegex(p), (e: unknown) => e instanceof PyRegexError && reason.test(e.reason) && e.offset >= 0, p);
  }
});

test('hazards: nested unbounded repetition is reported', () => {
  assert.deepEqual(translatePythonRegex('^(a+)+$').hazards.length, 1);
  assert.deepEqual(translatePythonRegex('^(?:ab+){0,3}$').hazards, []);
});

test('required literals: what every match must contain, for the one-scan prefilter', () => {
  const req = (p: string): string[] | null => translatePythonRegex(p).required;
  assert.deepEqual(req(String.raw`^Failed (?:password|publickey) for (?P<user>\S+) from (?P<host>\S+)`), ['password', 'publickey']);
  assert.deepEqual(req(String.raw`^[iI](?:llegal|nvalid) user (\S+) from`), ['llegal', 'nvalid']);
  assert.deepEqual(req('abc?d'), ['ab']);
  assert.deepEqual(req('^x{3}yy(?=z)'), ['xxxyy']);
  // Case-insensitive letters end a literal; optional parts require nothing.
  assert.deepEqual(req('(?i)user not allowed'), [' ']);
  assert.equal(req('(?:abc)?'), null);
  assert.equal(req(String.raw`\S+`), null);
});
