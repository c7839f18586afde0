// Rendering of `raw` uses local time: pin it before any Date is made.
process.env.TZ = 'UTC';

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { LogLine } from '../../src/core/types.js';
import type { SourceBatch } from '../../src/sources/source.js';
import {
  JournalSource,
  canonicalJournalMatches,
  checkJournalMatches,
  journalEntryMatches,
  type JournalSourceOptions,
} from '../../src/sources/journal.js';

/**
 * These tests follow real journal files: entries are written in the Journal
 * Export Format and turned into a journal file by systemd-journal-remote
 * (Debian package `systemd-journal-remote`), then read by the real journalctl.
 * Running systemd-journal-remote again with the same output file appends to
 * it, and `journalctl --follow` picks the new entries up.
 */

const JOURNAL_REMOTE = ['/lib/systemd/systemd-journal-remote', '/usr/lib/systemd/systemd-journal-remote'].find((p) => existsSync(p));
const BOOT_ID = '0123456789abcdef0123456789abcdef';
const T0 = Date.UTC(2024, 2, 5, 7, 8, 9); // Mar 05 07:08:09

/** Field → value; an array stores the field several times. */
type ExportEntry = Record<string, string | Buffer | Array<string | Buffer>>;

/** Journal Export Format: `FIELD=value` lines, binary values as FIELD, LE64 length, bytes; entries end with an empty line. */
function exportFormat(entries: ExportEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    for (const [field, values] of Object.entries(entry)) {
      for (const value of Array.isArray(values) ? values : [values]) {
      if (typeof value === 'string') {
        parts.push(Buffer.from(`${field}=${value}\n`));
      } else {
        const size = Buffer.alloc(8);
        size.writeBigUInt64LE(BigInt(value.length));
        parts.push(Buffer.from(`${field}\n`), size, value, Buffer.from('\n'));
      }
      }
    }
    parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** Appends entries to the journal file (creating it on first use). */
function writeJournal(file: string, entries: ExportEntry[]): void {
  assert.ok(JOURNAL_REMOTE, 'systemd-journal-remote is missing: apt-get install systemd-journal-remote');
  const result = spawnSync(JOURNAL_REMOTE, ['--output', file, '-'], { input: exportFormat(entries) });
  assert.equal(result.status, 0, `systemd-journal-remote failed: ${result.stderr}`);
}

/** Entry number within the current test's journal: entry n is logged at T0 + n seconds. */
let seq = 0;
/** The fields journald stamps on every entry. */
function stamp(): ExportEntry {
  seq++;
  return {
    __REALTIME_TIMESTAMP: String((T0 + seq * 1000) * 1000 + 123),
    __MONOTONIC_TIMESTAMP: String(seq * 1_000_000),
    _BOOT_ID: BOOT_ID,
  };
}
/** An entry as journald would store it for a syslog-style program. */
function entry(unit: string, program: string, pid: number, message: string | Buffer | string[], extra: ExportEntry = {}): ExportEntry {
  return {
    ...stamp(),
    _HOSTNAME: 'web1',
    _SYSTEMD_UNIT: unit,
    SYSLOG_IDENTIFIER: program,
    _COMM: program,
    _PID: String(pid),
    MESSAGE: message,
    ...extra,
  };
}

const sshFailure = (n: number) =>
  entry('ssh.service', 'sshd', 4000 + n, `Failed password for invalid user admin${n} from 203.0.113.${n} port 5${n}000 ssh2`);
const cronLine = (n: number) => entry('cron.service', 'CRON', 900 + n, `(root) CMD (run-parts /etc/cron.hourly ${n})`);

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A source plus the store it commits to: batches land in `lines`, checkpoints in `positions`. */
class Harness {
  readonly batches: SourceBatch[] = [];
  readonly lines: LogLine[] = [];
  readonly source: JournalSource;
  constructor(
    options: JournalSourceOptions,
    readonly positions = new Map<string, string>(),
    private readonly beforeCommit: (batch: SourceBatch) => void = () => {},
  ) {
    this.source = new JournalSource({ restartDelay: { initialMs: 50, maxMs: 200 }, ...options });
    running.push(this.source);
  }
  async start(): Promise<this> {
    await this.source.start((batch) => {
      this.beforeCommit(batch);
      this.batches.push(batch);
      this.lines.push(...batch.lines);
      for (const c of batch.checkpoints) this.positions.set(c.key, c.value);
    }, { getPosition: (key) => this.positions.get(key) });
    return this;
  }
  messages(): string[] {
    return this.lines.map((l) => l.message);
  }
}

const running: JournalSource[] = [];
let dir = '';
let journal = '';

describe('JournalSource over real journal files', () => {
  before(() => {
    assert.ok(JOURNAL_REMOTE, 'systemd-journal-remote is missing: apt-get install systemd-journal-remote');
  });
  afterEach(async () => {
    for (const source of running.splice(0)) await source.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
    dir = '';
  });
  after(async () => {
    for (const source of running.splice(0)) await source.stop();
  });

  function freshJournal(): string {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-journal-'));
    seq = 0;
    journal = join(dir, 'remote.journal');
    return dir;
  }

  it('follows only the matching unit and fills every LogLine field', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1), cronLine(1), sshFailure(2), cronLine(2), sshFailure(3)]);
    const h = await new Harness({
      matches: { _SYSTEMD_UNIT: 'ssh.service' },
      args: [`--directory=${dir}`],
      startAt: 'beginning',
    }).start();
    await waitFor('3 sshd entries', () => h.lines.length === 3);

    const key = `journal:_SYSTEMD_UNIT=ssh.service --directory=${dir}`;
    assert.equal(h.source.key, key);
    const first = h.lines[0]!;
    assert.deepEqual({ ...first }, {
      raw: 'Mar 05 07:08:10 web1 sshd[4001]: Failed password for invalid user admin1 from 203.0.113.1 port 51000 ssh2',
      time: T0 + 1000,
      timeFromLine: true,
      host: 'web1',
      program: 'sshd',
      pid: 4001,
      message: 'Failed password for invalid user admin1 from 203.0.113.1 port 51000 ssh2',
      source: key,
    });
    assert.deepEqual(h.messages().map((m) => m.split(' from ')[1]), [
      '203.0.113.1 port 51000 ssh2', '203.0.113.2 port 52000 ssh2', '203.0.113.3 port 53000 ssh2',
    ]);

    // New entries appended while following arrive too, and only the matching ones.
    writeJournal(journal, [cronLine(3), sshFailure(4)]);
    await waitFor('the appended sshd entry', () => h.lines.length === 4);
    assert.match(h.lines[3]!.message, /admin4 from 203\.0\.113\.4/);

    const last = h.batches[h.batches.length - 1]!;
    assert.equal(last.checkpoints.length, 1);
    assert.equal(last.checkpoints[0]!.key, key);
    const cursor = JSON.parse(last.checkpoints[0]!.value).cursor as string;
    assert.match(cursor, /^s=[0-9a-f]+;i=[0-9a-f]+;b=/);

    const status = h.source.status();
    assert.equal(status.kind, 'journal');
    assert.equal(status.matches, '_SYSTEMD_UNIT=ssh.service');
    assert.equal(status.state, 'following');
    assert.equal(status.linesRead, 4);
    assert.equal(status.lastEntryTime, h.lines[3]!.time);
    assert.equal(status.cursor, cursor);
    assert.equal(status.error, null);
  });

  it('groups entries that arrive together into one batch with the cursor of the last', async () => {
    freshJournal();
    const backlog = Array.from({ length: 200 }, (_, i) => sshFailure(i % 250));
    writeJournal(journal, backlog);
    const h = await new Harness({ args: [`--file=${journal}`], startAt: 'beginning' }).start();
    await waitFor('the backlog', () => h.lines.length === 200);
    assert.ok(h.batches.length < 200 / 4, `200 entries came in ${h.batches.length} batches`);
    // Each batch's checkpoint is the cursor of its own last entry: resuming from it yields the rest exactly.
    const middle = h.batches[Math.floor(h.batches.length / 2)]!;
    const before = h.batches.slice(0, h.batches.indexOf(middle) + 1).reduce((n, b) => n + b.lines.length, 0);
    const resumed = await new Harness(
      { args: [`--file=${journal}`] },
      new Map([[h.source.key, middle.checkpoints[0]!.value]]),
    ).start();
    await waitFor('the rest after the middle cursor', () => resumed.lines.length === 200 - before);
    assert.deepEqual(resumed.lines.map((l) => l.raw), h.lines.slice(before).map((l) => l.raw));
  });

  it('resumes after exactly the checkpointed entry on restart', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1), cronLine(1), sshFailure(2)]);
    const options: JournalSourceOptions = {
      matches: { _SYSTEMD_UNIT: 'ssh.service' },
      args: [`--directory=${dir}`],
      startAt: 'beginning',
    };
    const first = await new Harness(options).start();
    await waitFor('first run', () => first.lines.length === 2);
    await first.source.stop();
    assert.equal(first.source.status().state, 'stopped');

    // Logged while the daemon was down, then while it follows again.
    writeJournal(journal, [sshFailure(3), cronLine(2), sshFailure(4)]);
    const second = await new Harness(options, first.positions).start();
    await waitFor('entries logged while stopped', () => second.lines.length === 2);
    writeJournal(journal, [sshFailure(5)]);
    await waitFor('entry logged after restart', () => second.lines.length === 3);
    assert.deepEqual(second.messages().map((m) => m.match(/admin(\d+)/)![1]), ['3', '4', '5']);

    // A third start with the latest checkpoint sees nothing old, only what comes next.
    await second.source.stop();
    const third = await new Harness(options, second.positions).start();
    writeJournal(journal, [cronLine(3), sshFailure(6)]);
    await waitFor('entry 6', () => third.lines.length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(third.messages().map((m) => m.match(/admin(\d+)/)![1]), ['6']);
  });

  it('starts at the end of the journal when no cursor was stored (by default)', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1), sshFailure(2)]);
    const h = await new Harness({ matches: { _SYSTEMD_UNIT: 'ssh.service' }, args: [`--directory=${dir}`] }).start();
    // journalctl gives no sign when it has reached the end: log until something arrives.
    let n = 2;
    while (h.lines.length === 0) {
      writeJournal(journal, [sshFailure(++n)]);
      await waitFor('a new entry', () => h.lines.length > 0, 300).catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const seen = h.messages().map((m) => Number(m.match(/admin(\d+)/)![1]));
    assert.ok(seen.every((i) => i > 2), `old entries replayed: ${seen}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
  });

  it('picks up new journal files in a followed directory, whatever boot they belong to', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1)]);
    const h = await new Harness({ matches: { _SYSTEMD_UNIT: 'ssh.service' }, args: ['--directory', dir], startAt: 'beginning' }).start();
    await waitFor('first entry', () => h.lines.length === 1);
    // Another host (its own boot id) collected into a second file: plain `journalctl -f` would hide it.
    writeJournal(join(dir, 'other-host.journal'), [
      sshFailure(2),
    ].map((e) => ({ ...e, _BOOT_ID: 'fedcba9876543210fedcba9876543210', _HOSTNAME: 'web2' })));
    await waitFor('entry from the new file', () => h.lines.length === 2);
    assert.equal(h.lines[1]!.host, 'web2');
    // Spelled `--directory DIR` here, `--directory=DIR` elsewhere: one checkpoint key.
    assert.equal(h.source.key, `journal:_SYSTEMD_UNIT=ssh.service --directory=${dir}`);
  });

  it('supports several values of a field (OR) and disjunction groups', async () => {
    freshJournal();
    writeJournal(journal, [
      sshFailure(1),
      cronLine(1),
      entry('nginx.service', 'nginx', 77, 'started'),
      entry('postfix@-.service', 'postfix/smtpd', 55, 'connect from unknown[198.51.100.7]'),
    ]);
    const values = await new Harness({
      matches: { _SYSTEMD_UNIT: ['ssh.service', 'cron.service'] },
      args: [`--file=${journal}`],
      startAt: 'beginning',
    }).start();
    await waitFor('ssh and cron', () => values.lines.length === 2);
    assert.deepEqual(values.lines.map((l) => l.program), ['sshd', 'CRON']);

    const groups = await new Harness({
      matches: [{ _SYSTEMD_UNIT: 'ssh.service' }, { SYSLOG_IDENTIFIER: 'postfix/smtpd', _PID: '55' }],
      args: [`--file=${journal}`],
      startAt: 'beginning',
    }).start();
    await waitFor('ssh or smtpd', () => groups.lines.length === 2);
    assert.deepEqual(groups.lines.map((l) => l.program), ['sshd', 'postfix/smtpd']);
    assert.equal(groups.lines[1]!.raw.slice(16), 'web1 postfix/smtpd[55]: connect from unknown[198.51.100.7]');
  });

  it('decodes byte-array, multi-valued, long and field-less entries', async () => {
    freshJournal();
    writeJournal(journal, [
      entry('ssh.service', 'sshd', 1, Buffer.from([0x62, 0x61, 0x64, 0x20, 0xff, 0xfe, 0x20, 0x63, 0x61, 0x66, 0xc3, 0xa9])),
      entry('ssh.service', 'sshd', 2, Buffer.from('Invalid user \x1b[31mroot\x1b[0m from 192.0.2.9')),
      entry('ssh.service', 'sshd', 3, 'x'.repeat(5000)),
      entry('ssh.service', 'sshd', 4, `${'é'.repeat(700)}tail`),
      entry('ssh.service', 'sshd', 5, ['first', 'second']),
      {
        ...stamp(),
        _SYSTEMD_UNIT: 'ssh.service',
        _COMM: 'sshd-session',
        _PID: '6',
        SYSLOG_PID: '66',
        MESSAGE: 'via _COMM',
      },
      { ...stamp(), _SYSTEMD_UNIT: 'ssh.service' },
    ]);
    const multi = spawnSync('journalctl', [`--file=${journal}`, '-o', 'json', '_PID=5']).stdout.toString();
    const h = await new Harness({
      matches: { _SYSTEMD_UNIT: 'ssh.service' },
      args: [`--file=${journal}`],
      startAt: 'beginning',
      maxLineLength: 1024,
    }).start();
    await waitFor('all 7 entries', () => h.lines.length === 7);
    const [bin, esc, long, wide, several, comm, bare] = h.lines as [LogLine, LogLine, LogLine, LogLine, LogLine, LogLine, LogLine];
    assert.equal(bin.message, 'bad \ufffd\ufffd café');
    assert.equal(esc.message, 'Invalid user \x1b[31mroot\x1b[0m from 192.0.2.9');
    // 5000 bytes: journalctl would print null without --all; cut to maxLineLength.
    assert.equal(long.message, 'x'.repeat(1024));
    assert.equal(Buffer.byteLength(long.raw), 1024);
    assert.ok(long.raw.startsWith('Mar 05 07:08:'));
    // Cut on a character boundary: 512 two-byte characters.
    assert.equal(wide.message, 'é'.repeat(512));
    // A field stored twice: journalctl prints both, the first is the message.
    assert.match(multi, /"MESSAGE":\["first","second"\]/);
    assert.equal(several.message, 'first');
    assert.equal(comm.program, 'sshd-session');
    assert.equal(comm.pid, 66);
    assert.equal(comm.host, null);
    assert.equal(comm.raw, 'Mar 05 07:08:15 sshd-session[66]: via _COMM');
    assert.deepEqual({ ...bare }, {
      raw: 'Mar 05 07:08:16 ', time: T0 + 7000, timeFromLine: true, host: null, program: null, pid: null, message: '',
      source: h.source.key,
    });
  });

  it('counts and skips output lines that are not journal entries', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1), sshFailure(2)]);
    // The real journalctl, with garbage mixed into its output.
    const wrapper = join(dir, 'journalctl-with-noise');
    writeFileSync(wrapper, '#!/bin/sh\necho "{not json"\necho "[1,2]"\necho "{\\"MESSAGE\\":\\"no cursor\\"}"\nexec journalctl "$@"\n');
    chmodSync(wrapper, 0o755);
    const h = await new Harness({ journalctl: wrapper, args: [`--file=${journal}`], startAt: 'beginning' }).start();
    await waitFor('both entries', () => h.lines.length === 2);
    assert.equal(h.source.status().skipped, 3);
    assert.equal(h.source.status().error, null);
  });

  it('on the system journal keeps this machine\'s entries of this boot that the matches select', async () => {
    freshJournal();
    const machine = readFileSync('/etc/machine-id', 'latin1').trim();
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().replace(/-/g, '');
    const entry = (n: number, fields: Record<string, string>): string => JSON.stringify({
      __CURSOR: `s=1;i=${n}`, __REALTIME_TIMESTAMP: String((T0 + n * 1000) * 1000), _MACHINE_ID: machine, _BOOT_ID: boot,
      SYSLOG_IDENTIFIER: 'sshd', MESSAGE: `entry ${n}`, ...fields,
    });
    const out = [
      entry(1, {}), entry(2, { _BOOT_ID: '0'.repeat(32) }), entry(3, { _MACHINE_ID: 'f'.repeat(32) }), entry(4, { SYSLOG_IDENTIFIER: 'cron' }), entry(5, {}),
    ].join('\n');
    // journalctl as the source runs it on the system journal: with --merge and no match (checked here), then following.
    const fake = join(dir, 'journalctl-system');
    writeFileSync(join(dir, 'system-entries.json'), `${out}\n`);
    writeFileSync(fake, `#!/bin/sh\necho "$@" > ${join(dir, 'system-args')}\ncat ${join(dir, 'system-entries.json')}\nexec sleep 30\n`);
    chmodSync(fake, 0o755);
    const h = await new Harness({ journalctl: fake, matches: { SYSLOG_IDENTIFIER: 'sshd' } }).start();
    await waitFor('the entries', () => h.lines.length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(h.lines.map((l) => l.message), ['entry 1', 'entry 5']);
    assert.equal(h.source.status().notSelected, 3);
    const args = readFileSync(join(dir, 'system-args'), 'utf8').trim().split(' ');
    assert.ok(args.includes('--merge'), '--merge: no implied boot match');
    assert.ok(!args.some((a) => a.includes('=sshd')), 'no match given to journalctl');
    assert.ok(args.some((a) => a.startsWith('--output-fields=') && a.includes('_MACHINE_ID') && a.includes('SYSLOG_IDENTIFIER')));
  });

  it('reports a missing journalctl with the fix, retries with backoff, and stops cleanly', async () => {
    const h = await new Harness({ journalctl: '/nonexistent/bin/journalctl', jail: 'sshd', matches: { _SYSTEMD_UNIT: 'ssh.service' } }).start();
    await waitFor('an error', () => h.source.status().error !== null);
    const status = h.source.status();
    assert.match(status.error!, /journalctl not found \(\/nonexistent\/bin\/journalctl\)/);
    assert.match(status.error!, /install systemd .*or remove the journal source from jail sshd/);
    await waitFor('two restarts', () => h.source.status().restarts >= 2);
    await h.source.stop();
    assert.equal(h.source.status().state, 'stopped');
    const restarts = h.source.status().restarts;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(h.source.status().restarts, restarts, 'no restart after stop');
  });

  it('explains a journal directory journalctl cannot open, and recovers once it exists', async () => {
    freshJournal();
    const missing = join(dir, 'not-yet');
    const h = await new Harness({ args: [`--directory=${missing}`], jail: 'sshd', startAt: 'beginning' }).start();
    await waitFor('an error', () => h.source.status().error !== null);
    assert.match(h.source.status().error!, /exited with code 1: Failed to open .*not-yet.*journal directory\/file given to the journal source in jail sshd/);
    mkdirSync(missing);
    writeJournal(join(missing, 'remote.journal'), [sshFailure(1)]);
    await waitFor('the entry once the directory exists', () => h.lines.length === 1);
    assert.equal(h.source.status().error, null);
    assert.ok(h.source.status().restarts >= 1);
  });

  it('falls back to the start position when journalctl rejects the stored cursor', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1)]);
    const source = { args: [`--file=${journal}`], startAt: 'beginning' as const };
    const key = new JournalSource(source).key;
    const h = await new Harness(source, new Map([[key, JSON.stringify({ cursor: 'not-a-cursor' })]])).start();
    await waitFor('the entry from the beginning', () => h.lines.length === 1);
    assert.ok(h.source.status().restarts >= 1);
  });

  it('hands a batch over again when committing it failed', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1), sshFailure(2)]);
    let failures = 1;
    const h = await new Harness({ args: [`--file=${journal}`], startAt: 'beginning' }, undefined, () => {
      if (failures-- > 0) throw new Error('database is locked');
    }).start();
    await waitFor('both entries after the retry', () => h.lines.length === 2);
    assert.deepEqual(h.messages().map((m) => m.match(/admin(\d+)/)![1]), ['1', '2']);
  });

  it('kills journalctl on stop and hands over nothing afterwards', async () => {
    freshJournal();
    writeJournal(journal, [sshFailure(1)]);
    const h = await new Harness({ args: [`--file=${journal}`], startAt: 'beginning' }).start();
    await waitFor('the entry', () => h.lines.length === 1);
    const pid = h.source.status().pid!;
    assert.ok(pidAlive(pid));
    await h.source.stop();
    assert.equal(h.source.status().pid, null);
    await waitFor('journalctl gone', () => !pidAlive(pid), 2000);
    writeJournal(journal, [sshFailure(2)]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(h.lines.length, 1);
  });
});

describe('journal matches', () => {
  it('have one canonical form whatever the order', () => {
    assert.equal(canonicalJournalMatches(undefined), '*');
    assert.equal(canonicalJournalMatches({}), '*');
    assert.equal(canonicalJournalMatches({ _SYSTEMD_UNIT: 'ssh.service' }), '_SYSTEMD_UNIT=ssh.service');
    assert.equal(
      canonicalJournalMatches({ _SYSTEMD_UNIT: ['sshd.service', 'ssh.service', 'ssh.service'], PRIORITY: '4' }),
      'PRIORITY=4 _SYSTEMD_UNIT=ssh.service _SYSTEMD_UNIT=sshd.service',
    );
    assert.equal(
      canonicalJournalMatches([{ SYSLOG_IDENTIFIER: 'sshd' }, { _SYSTEMD_UNIT: 'ssh.service' }]),
      canonicalJournalMatches([{ _SYSTEMD_UNIT: 'ssh.service' }, { SYSLOG_IDENTIFIER: 'sshd' }]),
    );
  });

  it('select entries as journalctl would: any value of a field, every field of a group, any group, as bytes', () => {
    const entry = { _SYSTEMD_UNIT: 'ssh.service', _COMM: 'sshd', PRIORITY: '4', TAGS: ['a', 'b'], RAW: [0x73, 0x73, 0x68, 0xff] };
    assert.equal(journalEntryMatches(entry, undefined), true);
    assert.equal(journalEntryMatches(entry, {}), true);
    assert.equal(journalEntryMatches(entry, { _SYSTEMD_UNIT: ['sshd.service', 'ssh.service'] }), true);
    assert.equal(journalEntryMatches(entry, { _SYSTEMD_UNIT: 'ssh.service', PRIORITY: '3' }), false, 'every field of a group');
    assert.equal(journalEntryMatches(entry, [{ PRIORITY: '3' }, { _COMM: 'sshd' }]), true, 'any group');
    assert.equal(journalEntryMatches(entry, [{ PRIORITY: '3' }, { _COMM: 'ssh' }]), false);
    assert.equal(journalEntryMatches(entry, { TAGS: 'b' }), true, 'a field stored several times: any of its values');
    assert.equal(journalEntryMatches(entry, { MISSING: 'x' }), false);
    assert.equal(journalEntryMatches(entry, { RAW: 'ssh\uFFFD' }), false, 'bytes that are not UTF-8 never equal a text');
    assert.equal(journalEntryMatches({ RAW: [0x73, 0x73, 0x68] }, { RAW: 'ssh' }), true);
  });

  it('reject names journald would not store and arguments the source controls', () => {
    assert.match(checkJournalMatches({ _systemd_unit: 'x' })!, /not a journal field name/);
    assert.match(checkJournalMatches({ '--output=cat': 'x' })!, /not a journal field name/);
    assert.match(checkJournalMatches({ _SYSTEMD_UNIT: [] })!, /empty list/);
    assert.equal(checkJournalMatches([{ _SYSTEMD_UNIT: 'ssh.service' }, { _PID: '1' }]), null);
    assert.throws(() => new JournalSource({ matches: { 'bad name': 'x' } }), /not a journal field name/);
    assert.throws(() => new JournalSource({ args: ['--output=cat'] }), /not allowed/);
    assert.throws(() => new JournalSource({ args: ['-n', '10'] }), /not allowed/);
    assert.equal(new JournalSource({ matches: { _SYSTEMD_UNIT: 'ssh.service' } }).key, 'journal:_SYSTEMD_UNIT=ssh.service');
    assert.equal(new JournalSource({ args: ['-D/srv/j', '-q'] }).key, 'journal:* --directory=/srv/j');
    assert.equal(new JournalSource({ args: ['-M', 'box'] }).key, 'journal:* --machine=box');
  });
});
