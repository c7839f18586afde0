import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePattern, expandBraces, segmentMatcher } from '../../src/sources/glob.js';

describe('glob', () => {
  it('expands braces, nested and repeated, and keeps unbalanced ones literal', () => {
    assert.deepEqual(expandBraces('/var/log/{nginx,apache2}/{error,access}.log'), [
      '/var/log/nginx/error.log', '/var/log/nginx/access.log', '/var/log/apache2/error.log', '/var/log/apache2/access.log',
    ]);
    assert.deepEqual(expandBraces('a{b,c{d,e}}f'), ['abf', 'acdf', 'acef']);
    assert.deepEqual(expandBraces('a{b}c{d,e'), ['a{b}c{d,e']);
  });

  it('matches *, ?, classes and escapes within one segment, never a leading dot by a wildcard', () => {
    const m = (pattern: string, name: string) => segmentMatcher(pattern).test(name);
    assert.ok(m('*error.log', 'site-error.log'));
    assert.ok(m('*error.log', 'error.log'));
    assert.ok(!m('*error.log', 'error.log.1'));
    assert.ok(!m('*.log', '.hidden.log'));
    assert.ok(m('.*.log', '.hidden.log'));
    assert.ok(m('auth.log.?', 'auth.log.1'));
    assert.ok(!m('auth.log.?', 'auth.log.10'));
    assert.ok(m('[a-c]*.log', 'b.log'));
    assert.ok(!m('[!a-c]*.log', 'b.log'));
    assert.ok(m('[]]x', ']x'));
    assert.ok(m('a\\*b', 'a*b'));
    assert.ok(!m('a\\*b', 'axb'));
    assert.ok(m('a.b', 'a.b'));
    assert.ok(!m('a.b', 'axb'));
    assert.ok(m('[x', '[x'));
  });

  it('splits a pattern into directory and file name, resolving relative paths', () => {
    const [v] = compilePattern('/var/log/nginx/*error.log');
    assert.equal(v!.dir, '/var/log/nginx');
    assert.equal(v!.name, '*error.log');
    assert.ok(v!.nameMatcher);
    const [literal] = compilePattern('/var/log/auth.log');
    assert.equal(literal!.nameMatcher, null);
    assert.equal(compilePattern('rel.log')[0]!.path, `${process.cwd()}/rel.log`);
  });
});
