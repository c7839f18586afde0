import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIni } from '../../src/fail2ban/ini.js';
import { ConfigStack } from '../../src/fail2ban/config-stack.js';
import { readFilter } from '../../src/fail2ban/filter-reader.js';
import { extractOptions, splitWithOptions, substituteTags } from '../../src/fail2ban/options.js';

test('ini: multi-line values, comments, inline ; comments, case-insensitive names', () => {
  const ini = parseIni('[Definition]\nFailRegex = ^a <HOST>$\n    # a comment inside\n    ^b <HOST> ; inline comment\n\n    ^c <HOST>\nx: y;z\n', 'f.conf');
  const d = ini.sections.get('Definition')!;
  assert.equal(d.get('failregex')!.value, '^a <HOST>$\n^b <HOST>\n\n^c <HOST>');
  assert.deepEqual(d.get('failregex')!.lines, [2, 4, 5, 6]);
  assert.equal(d.get('x')!.value, 'y;z');
});

test('stack: includes before/after, .local overrides .conf, known/, interpolation forms', () => {
  const dir = mkdtempSync(join(tmpdir(), 'f2b-ini-'));
  try {
    mkdirSync(join(dir, 'filter.d'));
    writeFileSync(join(dir, 'filter.d', 'common.conf'), '[DEFAULT]\n_daemon = \\S*\nprefix = %(_daemon)s\\[\\d+\\]: \n[lt_file]\nhead = F\n');
    writeFileSync(join(dir, 'filter.d', 'x.conf'), '[INCLUDES]\nbefore = common.conf\n[DEFAULT]\n_daemon = xd\n[Definition]\nfailregex = ^%(prefix)s<mode-<mode>> <HOST>$\nmode-normal = bad\nmode-extra = worse\nmode = normal\nname = %(__name__)s %(lt_file/head)s %%\n');
    writeFileSync(join(dir, 'filter.d', 'x.local'), '[Definition]\nfailregex = <known/failregex>\n            ^local <HOST>$\n');
    const stack = new ConfigStack();
    assert.ok(stack.readResource(join(dir, 'filter.d', 'x')));
    assert.deepEqual(stack.files.map((f) => f.slice(dir.length + 10)), ['common.conf', 'x.conf', 'x.local']);
    assert.equal(stack.get('Definition', 'name'), 'Definition F %');
    const def = readFilter({ name: 'x', options: new Map([['mode', 'extra']]) }, { fail2banDir: dir });
    // ConfigParser strips the trailing space of `prefix`.
    assert.deepEqual(def.failregex.map((r) => r.regex), ['^xd\\[\\d+\\]:worse <HOST>$', '^local <HOST>$']);
    assert.equal(def.failregex[1]!.file, join(dir, 'filter.d', 'x.local'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('options: name[opt=val, …], quoted values, several groups, action lists', () => {
  const { name, options } = extractOptions('sshd[mode=aggressive, port="22,2222"][logtype=\'journal\']');
  assert.equal(name, 'sshd');
  assert.deepEqual([...options], [['mode', 'aggressive'], ['port', '22,2222'], ['logtype', 'journal']]);
  assert.throws(() => extractOptions('sshd[mode aggressive]'));
  assert.deepEqual(splitWithOptions('iptables[name=x, port="a b"]\n  sendmail-whois[dest=root]  dummy'), ['iptables[name=x, port="a b"]', 'sendmail-whois[dest=root]', 'dummy']);
  assert.deepEqual([...substituteTags(new Map([['a', '<b>-<c>'], ['b', '1']]), (n) => (n === 'c' ? '<b>2' : undefined))], [['a', '1-12'], ['b', '1']]);
  assert.throws(() => substituteTags(new Map([['a', '<b>'], ['b', '<a>']]), () => undefined));
});
