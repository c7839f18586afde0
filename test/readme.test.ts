import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { configFromFiles, type Config, type JailConfig } from '../src/config/load.js';
import { ConfigErrors } from '../src/core/errors.js';

/**
 * Every ```yaml block of README.md is a configuration a user can paste, so each
 * one must load through the real loader. A block that is deliberately a fragment
 * or a wrong example is skipped only when the line right before its fence is
 * `<!-- readme-test: skip (reason) -->`.
 *
 * The loader checks at load time that files named by `allowlist: [{ file: … }]`
 * exist and reads `password_file:`s; `host:` and `spf:` entries are resolved
 * only at run time. So the `/etc/portcullis/...` files a block names are created
 * in a temporary directory and the block is loaded with its paths pointing there.
 */

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const SKIP = /^<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->$/;

interface Block { line: number; heading: string; text: string; skip: string | null }

function yamlBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const fence = /^(`{3,})(\S*)\s*$/.exec(l);
    if (!fence) {
      if (/^#{1,6} /.test(l)) heading = l.replace(/^#+ /, '');
      continue;
    }
    let end = i + 1;
    while (end < lines.length && lines[end] !== fence[1]) end++;
    assert.ok(end < lines.length, `README.md:${i + 1}: code block not closed`);
    if (fence[2] === 'yaml') {
      let before = i - 1;
      while (before >= 0 && lines[before]!.trim() === '') before--;
      const marker = before >= 0 ? SKIP.exec(lines[before]!.trim()) : null;
      blocks.push({ line: i + 1, heading, text: lines.slice(i + 1, end).join('\n'), skip: marker ? marker[1]! : null });
    }
    i = end;
  }
  return blocks;
}

function load(block: Block): Config {
  const dir = mkdtempSync(join(tmpdir(), 'pc-readme-'));
  try {
    const etc = join(dir, 'etc');
    const text = block.text.replace(/\/etc\/portcullis\/([A-Za-z0-9._/-]+)/g, (_, name: string) => {
      const file = join(etc, name);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, name.endsWith('.txt') ? '# example\n192.0.2.7\n' : 'example-secret\n');
      return file;
    });
    try {
      return configFromFiles([{ file: join(etc, 'portcullis.yaml'), text }]);
    } catch (e) {
      const detail = e instanceof ConfigErrors ? e.errors.map((x) => x.message).join('\n') : String(e);
      assert.fail(`README.md:${block.line} (under "${block.heading}") does not load:\n${detail}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const blocks = yamlBlocks(README);

test('README.md has YAML examples, and every skip marker stands right before one and gives a reason', () => {
  assert.ok(blocks.length >= 14, `only ${blocks.length} yaml blocks found`);
  const markers = README.split('\n').filter((l) => /readme-test/.test(l));
  for (const m of markers) assert.match(m.trim(), SKIP, `malformed marker: ${m}`);
  assert.equal(markers.length, blocks.filter((b) => b.skip !== null).length, 'a skip marker that is not right before a ```yaml block');
});

for (const block of blocks) {
  test(`README.md:${block.line} (${block.heading}) loads through the config loader`, { skip: block.skip ?? false }, () => {
    load(block);
  });
}

/** The one block under `heading` (its only example), loaded. */
function example(heading: string): Config {
  const under = blocks.filter((b) => b.heading === heading && b.skip === null);
  assert.equal(under.length, 1, `expected one yaml block under "${heading}", found ${under.length}`);
  return load(under[0]!);
}

const jail = (config: Config, name: string): JailConfig => {
  const j = config.jails.find((x) => x.name === name);
  assert.ok(j, `no jail ${name}`);
  return j;
};

const M = 60_000;
const H = 60 * M;
const D = 24 * H;
const W = 7 * D;

test('netblock escalation: 3 addresses of a /24 (/64) within 1h ban it for 1d; then 2 prefixes of a /16 (/48) within 1d for 1w', () => {
  const j = jail(example('Netblock escalation'), 'sendmail');
  assert.equal(j.enabled, true);
  assert.deepEqual(j.escalate, [
    { prefix4: 24, prefix6: 64, threshold: 3, window: H, bantime: D },
    { prefix4: 16, prefix6: 48, threshold: 2, window: D, bantime: W },
  ]);
});

test('repeat offenders: the defaults rule (10m × 2, at most 1w, ±10%, across jails) and sshd\'s own (1h × 3, at most 5w, this jail)', () => {
  const c = example('Repeat offenders');
  const postfix = jail(c, 'postfix');
  assert.equal(postfix.bantime, 10 * M);
  assert.deepEqual(postfix.bantimeGrowth, { factor: 2, max: W, jitter: 0.1, count: 'all' });
  const sshd = jail(c, 'sshd');
  assert.equal(sshd.bantime, H);
  assert.deepEqual(sshd.bantimeGrowth, { factor: 3, max: 5 * W, jitter: 0, count: 'jail' });
  // The recidive jail keeps its own week, not the defaults' rule.
  assert.equal(jail(c, 'recidive').bantime, W);
  assert.equal(jail(c, 'recidive').bantimeGrowth, null);
});

test('the recidive jail: 5 bans within 1d, banned for 1w on every port; no logs of its own', () => {
  const r = jail(example('The recidive jail'), 'recidive');
  assert.deepEqual([r.enabled, r.maxretry, r.findtime, r.bantime, r.ports, r.protocol, r.sources.length, r.filters.length], [true, 5, D, W, null, 'all', 0, 0]);
  // Off unless enabled, and what the README says about its defaults.
  const builtin = jail(configFromFiles([]), 'recidive');
  assert.deepEqual([builtin.enabled, builtin.maxretry, builtin.findtime, builtin.bantime], [false, 5, D, W]);
});

test('siege detection: enters at 30 failures a minute from 10 addresses, leaves below 5 a minute for 15m', () => {
  const c = example('Siege detection');
  const j = jail(c, 'sendmail');
  assert.deepEqual(j.siege, { enterRate: 30, enterSources: 10, leaveRate: 5, leaveFor: 15 * M, maxretry: 1, bantime: D, rateLimit: '10/minute', allowlistOnly: false });
  assert.deepEqual(c.allowlist, [{ kind: 'spf', domain: 'aol.com' }, { kind: 'spf', domain: 'discover.com' }]);
  // The defaults the comments name.
  const d = jail(configFromFiles([{ file: 't.yaml', text: 'jails:\n  sshd: { siege: {} }\n' }]), 'sshd');
  assert.deepEqual(d.siege, { enterRate: 60, enterSources: 20, leaveRate: 10, leaveFor: 10 * M, maxretry: 1, rateLimit: '10/minute', allowlistOnly: false });
});

test('slow and spray: 8 failures within 2d, banned for 1w; a name tried from 10 addresses bans its participants at 2', () => {
  const j = jail(example('Slow and spray attacks'), 'sshd');
  assert.deepEqual(j.slow, { window: 2 * D, maxretry: 8, bantime: W, spray: { sources: 10, maxretry: 2 }, maxTracked: 100_000 });
  const d = jail(configFromFiles([{ file: 't.yaml', text: 'jails:\n  sshd: { slow: { spray: {} } }\n' }]), 'sshd');
  assert.deepEqual(d.slow, { window: D, maxretry: 10, spray: { sources: 10, maxretry: 2 }, maxTracked: 100_000 });
});

test('escalation defaults are the ones the README names', () => {
  const d = jail(configFromFiles([{ file: 't.yaml', text: 'jails:\n  sshd: { escalate: { then: {} } }\n' }]), 'sshd');
  assert.deepEqual(d.escalate, [
    { prefix4: 24, prefix6: 64, threshold: 3, window: H, bantime: D },
    { prefix4: 16, prefix6: 48, threshold: 3, window: H, bantime: D },
  ]);
});
