import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFiles, loadConfig, replayDefaults } from '../../src/config/load.js';
import { ConfigErrors } from '../../src/core/errors.js';

function errorsOf(text: string): string[] {
  try {
    configFromFiles([{ file: '/etc/portcullis/portcullis.yaml', text }]);
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, String(e));
    return e.errors.map((x) => x.message);
  }
  assert.fail('expected a configuration error');
}

test('embedded defaults: sshd enabled with auth.log and the journal, others off', () => {
  const c = configFromFiles([]);
  const sshd = c.jails.find((j) => j.name === 'sshd')!;
  assert.equal(sshd.enabled, true);
  assert.deepEqual(sshd.ports, [22]);
  assert.equal(sshd.maxretry, 5);
  assert.equal(sshd.findtime, 600_000);
  assert.equal(sshd.bantime, 3_600_000);
  assert.deepEqual(sshd.sources.map((s) => s.kind), ['file', 'journal']);
  assert.equal(c.jails.filter((j) => j.enabled).length, 1);
  assert.equal(c.stateDir, '/var/lib/portcullis');
  assert.equal(c.controlSocket, '/run/portcullis.sock');
  assert.equal(replayDefaults().jails.every((j) => j.enabled), true);
});

test('a new user enables a jail with two lines', () => {
  const c = configFromFiles([{ file: 'p.yaml', text: 'jails:\n  postfix: { enabled: true }\n' }]);
  const postfix = c.jails.find((j) => j.name === 'postfix')!;
  assert.equal(postfix.enabled, true);
  assert.deepEqual(postfix.ports, [25, 465, 587]);
});

test('the DESIGN.md contract keys are accepted with their meanings', () => {
  const c = configFromFiles([{ file: 'p.yaml', text: `
state_dir: /tmp/pc
control: { socket: /tmp/pc.sock }
enforcer: dry-run
jails:
  sshd:
    enabled: true
    sources:
      - file: /var/log/auth.log
      - journal: { _SYSTEMD_UNIT: ssh.service }
    filters: [sshd]
    maxretry: 3
    findtime: 90s
    bantime: -1
    ignoreip: [192.0.2.0/24, 2001:db8::/32]
    ports: [22, 2222]
    protocol: tcp
` }]);
  const j = c.jails.find((x) => x.name === 'sshd')!;
  assert.equal(c.stateDir, '/tmp/pc');
  assert.equal(c.controlSocket, '/tmp/pc.sock');
  assert.equal(c.enforcer, 'dry-run');
  assert.equal(j.maxretry, 3);
  assert.equal(j.findtime, 90_000);
  assert.equal(j.bantime, null);
  assert.equal(j.ignoreip.length, 2);
  assert.deepEqual(j.ports, [22, 2222]);
  assert.deepEqual(j.sources[1], { kind: 'journal', matches: { _SYSTEMD_UNIT: ['ssh.service'] } });
});

test('journal_wake: how often journal sources look for new entries', () => {
  const wake = (text: string) => configFromFiles([{ file: 'p.yaml', text }]).journalWakeMs;
  assert.equal(wake(''), 2);
  assert.equal(wake('journal_wake: 5ms\n'), 5);
  assert.equal(wake('journal_wake: off\n'), null);
});

test('mistakes are reported as file:line:column with what is allowed', () => {
  const [typo] = errorsOf('jails:\n  sshd:\n    maxretyr: 3\n');
  assert.match(typo!, /^\/etc\/portcullis\/portcullis.yaml:3:5: unknown key "maxretyr" in jails.sshd \(did you mean "maxretry"\?\); allowed keys: enabled, sources/);
  const [dur] = errorsOf('jails:\n  sshd:\n    findtime: 10 minutes\n');
  assert.match(dur!, /:3:15: jails.sshd.findtime: "10 minutes" is not valid; expected a duration such as 90s, 10m/);
  const [ip] = errorsOf('ignoreip: [192.0.2.0/24, 300.1.1.1]\n');
  assert.match(ip!, /:1:26: ignoreip\[1\]: "300.1.1.1" is not valid; expected an IPv4 or IPv6 address or CIDR/);
  const [wake] = errorsOf('journal_wake: 2s\n');
  assert.match(wake!, /:1:15: journal_wake: "2s" is not valid; expected a poll interval from 1ms to 1s such as 2ms, or off/);
  const [en] = errorsOf('enforcer: nftabels\n');
  assert.match(en!, /:1:11: enforcer: "nftabels" is not allowed; use one of auto, nftables, iptables, pf, command, dry-run/);
  const [syntax] = errorsOf('jails:\n  sshd: [\n');
  assert.match(syntax!, /portcullis.yaml:\d+:\d+: YAML syntax/);
  const [unknownFilter] = errorsOf('jails:\n  web:\n    filters: [nginx-htp-auth]\n    sources: [{ file: /var/log/x }]\n');
  assert.match(unknownFilter!, /:3:5: jail "web": unknown filter "nginx-htp-auth"; built-in filters: sshd/);
  const [noFilters] = errorsOf('jails:\n  custom: { sources: [{ file: /x }] }\n');
  assert.match(noFilters!, /:2:3: jail "custom": is not a built-in jail, so it needs "filters:"/);
  const [port] = errorsOf('jails:\n  sshd: { ports: [70000] }\n');
  assert.match(port!, /jails.sshd.ports\[0\]: 70000 is out of range; it must be at most 65535/);
});

test('several mistakes are all reported at once', () => {
  assert.equal(errorsOf('jails:\n  sshd:\n    maxretry: 0\n    bantime: soon\n').length, 2);
});

test('conf.d/*.yaml overrides the main file key by key, in name order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-conf-'));
  try {
    mkdirSync(join(dir, 'conf.d'));
    writeFileSync(join(dir, 'portcullis.yaml'), 'state_dir: /a\njails:\n  sshd: { maxretry: 3, bantime: 2h }\n');
    writeFileSync(join(dir, 'conf.d', '10-mail.yaml'), 'jails:\n  postfix: { enabled: true }\n  sshd: { maxretry: 4 }\n');
    writeFileSync(join(dir, 'conf.d', '20-more.yaml'), 'jails:\n  sshd: { maxretry: 6 }\n');
    writeFileSync(join(dir, 'conf.d', 'README'), 'not yaml');
    const c = loadConfig(join(dir, 'portcullis.yaml'));
    assert.equal(c.files.length, 3);
    const sshd = c.jails.find((j) => j.name === 'sshd')!;
    assert.equal(sshd.maxretry, 6);
    assert.equal(sshd.bantime, 7_200_000);
    assert.equal(c.jails.find((j) => j.name === 'postfix')!.enabled, true);
    writeFileSync(join(dir, 'conf.d', '30-bad.yaml'), 'jails:\n  sshd: { protocol: sctp }\n');
    assert.throws(() => loadConfig(join(dir, 'portcullis.yaml')), /conf.d\/30-bad.yaml:2:21: jails.sshd.protocol: "sctp" is not allowed; use one of tcp, udp, all/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
