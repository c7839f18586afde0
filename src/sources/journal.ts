import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { PortcullisError } from '../core/errors.js';
import type { LogLine } from '../core/types.js';
import type { JournalWaker, JournalWakerStatus } from './journal-waker.js';
import {
  DEFAULT_MAX_LINE_LENGTH,
  type BatchHandler,
  type Checkpoint,
  type PositionLookup,
  type Source,
  type SourceStatus,
} from './source.js';

/**
 * Follows the systemd journal through `journalctl --follow --output=json`.
 *
 * Why a child process rather than reading journal files ourselves: the file
 * format (compression, rotation, sealing, several files interleaved) is only
 * stable behind libsystemd, and journalctl is its stable command-line face.
 *
 * Position: every batch carries the `__CURSOR` of its last entry; a restart
 * passes it back as `--after-cursor`, so it resumes after exactly that entry.
 * Without a stored cursor the first start begins at the end of the journal
 * (`startAt: 'end'`) or replays everything stored (`startAt: 'beginning'`).
 *
 * Matches are applied here, not given to journalctl. A journalctl with
 * matches walks each matched value's list of entries, which journald extends
 * only after it has raised the file's entry count; one that reads in between
 * finds nothing, and then skips the file until its count changes again
 * (sd-journal's next_beyond_location): the entry waits for the next one of any
 * program, for ever on a quiet host. Without matches it walks the file's own
 * list, complete up to the count. Seen as bans never made in the latency bench.
 *
 * Findings about journalctl (systemd 252) that shaped the arguments:
 * - `--follow` silently implies `--boot=0` (newest boot in the journal), a
 *   match, unless `--merge` is given, so `--merge` is always given. On the
 *   local system journal this source then keeps this machine's entries of
 *   this boot itself (`_MACHINE_ID`, `_BOOT_ID`), as journalctl did: entries a
 *   previous boot logged after the stored cursor are not replayed. For a custom
 *   `--directory`/`--file` (journal-remote collectors, copied journals) every
 *   boot and host is followed.
 * - Fields over 4096 bytes come out as JSON `null` unless `--all` is given.
 * - Values that are not printable UTF-8 come out as arrays of byte values;
 *   a field present several times comes out as an array of its values.
 * - `--follow` on a directory notices both entries appended to an existing
 *   file and new journal files created in it (inotify).
 *
 * `raw` is a syslog-style rendering, `Mmm dd HH:MM:SS host program[pid]: message`
 * (local time, like `journalctl -o short`), so evidence lines read the same
 * as lines from /var/log/auth.log; host and `program[pid]:` are left out when
 * the entry has none. Filters work on `message`/`program`, never on `raw`.
 * Messages keep embedded newlines as the journal stored them.
 */

/** Field → value(s); several values of one field match any of them (journalctl's repeated `FIELD=`), different fields must all match. */
export type JournalMatchGroup = Record<string, string | string[]>;
/** One group, or several groups of which any may match (journalctl's `+`). */
export type JournalMatches = JournalMatchGroup | JournalMatchGroup[];

export interface JournalSourceOptions {
  /** Field filters; empty or absent follows every entry. */
  matches?: JournalMatches;
  /** Path of journalctl. Default: `journalctl` from PATH. */
  journalctl?: string;
  /** Extra arguments, e.g. `--directory=/var/log/journal/remote`, `--file=F`, `--machine=NAME`. */
  args?: string[];
  /** Where the first start (no stored cursor) begins. Default `end`: only entries logged from now on. */
  startAt?: 'end' | 'beginning';
  /** Messages and raw lines longer than this many UTF-8 bytes are cut. Default 16 KiB. */
  maxLineLength?: number;
  /** Jail(s) using this source, named in error messages so the admin knows where to look. */
  jail?: string;
  /** Source id; default the checkpoint key. */
  id?: string;
  /** Delay before restarting a failed journalctl, doubled after each failure up to maxMs. Default 1 s … 60 s. */
  restartDelay?: { initialMs: number; maxMs: number };
  /** Wakes journalctl as soon as journald appends (see journal-waker.ts); shared by the sources reading the same journal. */
  waker?: JournalWaker;
}

export interface JournalSourceStatus extends SourceStatus {
  kind: 'journal';
  /** Canonical matches (`*` for all entries). */
  matches: string;
  /** `starting` | `following` | `waiting to restart` | `stopped`. */
  state: string;
  /** Time (ms) of the newest entry read, from the journal. */
  lastEntryTime: number | null;
  /** Lines of journalctl output that were not a usable JSON entry (skipped). */
  skipped: number;
  /** Entries read that the matches did not select (or of another machine or boot, on the system journal). */
  notSelected: number;
  /** How many times journalctl was restarted after failing. */
  restarts: number;
  /** Cursor of the last entry handed over and committed. */
  cursor: string | null;
  /** Process id of the running journalctl, null when none runs. */
  pid: number | null;
  /** The journal waker, null when the source has none (entries arrive on journald's 250 ms timer). */
  wake: JournalWakerStatus | null;
}

/**
 * Fields a line is made from, and the machine's (the matches' fields are added). journalctl prints these
 * in any case: `__CURSOR`, `__REALTIME_TIMESTAMP`, `__MONOTONIC_TIMESTAMP`, `_BOOT_ID`.
 */
const OUTPUT_FIELDS = ['MESSAGE', '_HOSTNAME', 'SYSLOG_IDENTIFIER', '_COMM', 'SYSLOG_PID', '_PID', '_MACHINE_ID'];
/** Arguments that choose which journal is read: part of the checkpoint key (a cursor belongs to its journal), and imply `--merge`. */
const LOCATION_OPTIONS = new Set(['-D', '--directory', '--file', '--root', '--image', '-M', '--machine']);
const SHORT_TO_LONG: Record<string, string> = { '-D': '--directory', '-M': '--machine' };
/** Arguments that would change the output format or the position, which this source controls. */
const RESERVED_OPTIONS = new Set([
  '-o', '--output', '--output-fields', '-f', '--follow', '-n', '--lines', '--no-tail', '-r', '--reverse',
  '-c', '--cursor', '--after-cursor', '--cursor-file', '--show-cursor', '-e', '--pager-end', '-F', '--field',
]);
const FIELD_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** Never buffer more than this for one JSON line: a longer line is skipped, not parsed. */
const MAX_JSON_LINE_FLOOR = 1024 * 1024;
const STOP_GRACE_MS = 3000;
/** journalctl warnings that it runs but sees only part of the journal. */
const PARTIAL_ACCESS = /insufficient permissions|not seeing messages from other users/i;

/** Why `matches` is unusable, or null when it is fine (for the config loader's own messages). */
export function checkJournalMatches(matches: JournalMatches | undefined): string | null {
  for (const group of matchGroups(matches)) {
    for (const [field, value] of Object.entries(group)) {
      if (!FIELD_NAME.test(field)) {
        return `journal field "${field}" is not a journal field name: use upper-case letters, digits and underscores, e.g. _SYSTEMD_UNIT`;
      }
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0) return `journal field ${field} has an empty list of values: give at least one`;
      for (const v of values) {
        if (typeof v !== 'string') return `journal field ${field}: values must be strings, got ${JSON.stringify(v)}`;
      }
    }
  }
  return null;
}

/** `FIELD=value` words in a stable order, groups joined by `+`: `_SYSTEMD_UNIT=ssh.service`; `*` when there are none. */
export function canonicalJournalMatches(matches: JournalMatches | undefined): string {
  const groups = matchGroups(matches)
    .map((group) => matchWords(group).join(' '))
    .filter((words) => words !== '');
  const unique = [...new Set(groups)].sort();
  return unique.length === 0 ? '*' : unique.join(' + ');
}

/**
 * Whether a journalctl JSON entry satisfies the matches as journalctl would: within a group, any value of
 * a field and every field; any group. Values compare as bytes: a value journalctl prints as an array of
 * bytes (not printable UTF-8) or as an array of values (a field stored several times) is compared as such.
 */
export function journalEntryMatches(entry: Record<string, unknown>, matches: JournalMatches | undefined): boolean {
  const groups = matchGroups(matches).filter((g) => Object.keys(g).length > 0);
  if (groups.length === 0) return true;
  return groups.some((group) => Object.entries(group).every(([field, wanted]) => {
    const values = Array.isArray(wanted) ? wanted : [wanted];
    return values.some((v) => fieldHas(entry[field], v));
  }));
}

/** A field's printed value (string, byte array, or several values) holds `value`. */
function fieldHas(printed: unknown, value: string): boolean {
  if (typeof printed === 'string') return printed === value;
  if (!Array.isArray(printed) || printed.length === 0) return false;
  if (typeof printed[0] === 'number') return Buffer.from(printed as number[]).equals(Buffer.from(value, 'utf8'));
  return printed.some((p) => fieldHas(p, value));
}

function matchGroups(matches: JournalMatches | undefined): JournalMatchGroup[] {
  if (matches === undefined) return [];
  return Array.isArray(matches) ? matches : [matches];
}

function matchWords(group: JournalMatchGroup): string[] {
  const words: string[] = [];
  for (const field of Object.keys(group).sort()) {
    const value = group[field]!;
    const values = [...new Set(Array.isArray(value) ? value : [value])].sort();
    for (const v of values) words.push(`${field}=${v}`);
  }
  return words;
}

function optionName(arg: string): string {
  if (arg.startsWith('--')) {
    const eq = arg.indexOf('=');
    return eq < 0 ? arg : arg.slice(0, eq);
  }
  return arg.startsWith('-') ? arg.slice(0, 2) : arg;
}

/** A journal field's value as text: strings as they are, byte arrays decoded as UTF-8, the first of several values. */
export function journalFieldText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) return null;
  if (value.length === 0) return '';
  if (typeof value[0] === 'number') return Buffer.from(value as number[]).toString('utf8');
  return journalFieldText(value[0]);
}

/** Cuts `text` to at most `maxBytes` UTF-8 bytes without splitting a character. */
function cutUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `Mmm dd HH:MM:SS host program[pid]: message` in local time, as `journalctl -o short` prints it. */
function renderSyslog(time: number, host: string | null, program: string | null, pid: number | null, message: string): string {
  const d = new Date(time);
  let head = `${MONTHS[d.getMonth()]} ${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  if (host !== null) head += ` ${host}`;
  if (program !== null) head += pid === null ? ` ${program}:` : ` ${program}[${pid}]:`;
  return `${head} ${message}`;
}

/**
 * Turns one parsed journalctl JSON entry into a LogLine and its cursor;
 * null when it is not a journal entry (no cursor).
 */
export function journalEntryToLine(
  entry: Record<string, unknown>,
  source: string,
  maxLineLength: number,
  arrivalTime: number,
): { line: LogLine; cursor: string } | null {
  const cursor = entry['__CURSOR'];
  if (typeof cursor !== 'string' || cursor === '') return null;
  const micros = Number(journalFieldText(entry['__REALTIME_TIMESTAMP']));
  const timeFromLine = Number.isFinite(micros) && micros > 0;
  const time = timeFromLine ? Math.floor(micros / 1000) : arrivalTime;
  const host = journalFieldText(entry['_HOSTNAME']) || null;
  const program = journalFieldText(entry['SYSLOG_IDENTIFIER']) || journalFieldText(entry['_COMM']) || null;
  const pidText = journalFieldText(entry['SYSLOG_PID']) ?? journalFieldText(entry['_PID']);
  const pid = pidText !== null && /^\d{1,10}$/.test(pidText) ? Number(pidText) : null;
  const message = cutUtf8(journalFieldText(entry['MESSAGE']) ?? '', maxLineLength);
  const raw = cutUtf8(renderSyslog(time, host, program, pid, message), maxLineLength);
  return { line: { raw, time, timeFromLine, host, program, pid, message, source }, cursor };
}

/** One journalctl process and what it has said so far. */
interface Run {
  child: ChildProcess;
  /** Bytes of an incomplete JSON line carried over to the next chunk. */
  pending: Buffer[];
  pendingBytes: number;
  /** The current line grew too long: drop bytes until its end. */
  discarding: boolean;
  stderr: string;
  /** Set when this run's output must no longer be handed over (handler failure, superseded). */
  abandoned: boolean;
  /** The cursor this run was started after, if any (to recognise a rejected cursor). */
  afterCursor: string | null;
  startedAt: number;
  closed: Promise<void>;
}

export class JournalSource implements Source {
  readonly id: string;
  /** Checkpoint key: `journal:<canonical matches>`, plus the location arguments when the journal is not the system's. */
  readonly key: string;
  private readonly matchesText: string;
  private readonly journalctl: string;
  private readonly baseArgs: string[];
  private readonly startAt: 'end' | 'beginning';
  private readonly maxLineLength: number;
  private readonly maxJsonLine: number;
  private readonly jail: string | undefined;
  private readonly restartDelay: { initialMs: number; maxMs: number };
  private readonly waker: JournalWaker | null;
  private readonly matches: JournalMatches | undefined;
  /** This machine and boot, on the local system journal (null: any, or unknown here). */
  private readonly machineId: string | null;
  private readonly bootId: string | null;

  private onBatch: BatchHandler | null = null;
  private run: Run | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private nextDelayMs: number;
  private stopping = false;
  private state = 'stopped';
  private error: string | null = null;
  private cursor: string | null = null;
  private entriesRead = 0;
  private lastEntryTime: number | null = null;
  private skipped = 0;
  private notSelected = 0;
  private restarts = 0;

  constructor(options: JournalSourceOptions = {}) {
    const problem = checkJournalMatches(options.matches);
    if (problem !== null) throw new PortcullisError(problem, 2);
    const args = options.args ?? [];
    for (const arg of args) {
      if (RESERVED_OPTIONS.has(optionName(arg))) {
        throw new PortcullisError(
          `journal source: argument "${arg}" is not allowed: the source sets journalctl's output format and position itself`,
          2,
        );
      }
    }
    const location = locationArgs(args);
    this.matchesText = canonicalJournalMatches(options.matches);
    this.key = `journal:${this.matchesText}${location.length > 0 ? ` ${location.join(' ')}` : ''}`;
    this.id = options.id ?? this.key;
    this.journalctl = options.journalctl ?? 'journalctl';
    this.startAt = options.startAt ?? 'end';
    this.maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    // A byte of a non-UTF-8 message costs up to 4 characters of JSON ("255,").
    this.maxJsonLine = Math.max(MAX_JSON_LINE_FLOOR, this.maxLineLength * 8);
    this.jail = options.jail;
    this.restartDelay = options.restartDelay ?? { initialMs: 1000, maxMs: 60_000 };
    this.nextDelayMs = this.restartDelay.initialMs;
    this.waker = options.waker ?? null;
    this.matches = options.matches;
    this.machineId = location.length === 0 ? readId('/etc/machine-id') : null;
    this.bootId = location.length === 0 ? readId('/proc/sys/kernel/random/boot_id') : null;
    const matchFields = matchGroups(options.matches).flatMap((g) => Object.keys(g));
    this.baseArgs = [
      '--follow',
      '--output=json',
      `--output-fields=${[...new Set([...OUTPUT_FIELDS, ...matchFields])].join(',')}`,
      '--all',
      '--no-pager',
      ...(!args.some((a) => a === '-m' || a === '--merge') ? ['--merge'] : []),
      ...args,
    ];
  }

  async start(onBatch: BatchHandler, positions: PositionLookup): Promise<void> {
    if (this.onBatch !== null) throw new Error(`journal source ${this.id} started twice`);
    this.onBatch = onBatch;
    this.stopping = false;
    const stored = positions.getPosition(this.key);
    if (stored !== undefined) {
      this.cursor = parseStoredCursor(stored);
      if (this.cursor === null) {
        this.error = `stored position for ${this.key} is not a journal cursor (${JSON.stringify(stored.slice(0, 80))}); starting from the ${this.startAt} of the journal`;
      }
    }
    await this.spawnRun();
    this.waker?.hold();
  }

  async stop(): Promise<void> {
    if (this.onBatch !== null) this.waker?.release();
    this.stopping = true;
    if (this.restartTimer !== null) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    const run = this.run;
    if (run !== null) {
      run.child.kill('SIGTERM');
      const killer = setTimeout(() => run.child.kill('SIGKILL'), STOP_GRACE_MS);
      await run.closed;
      clearTimeout(killer);
    }
    this.state = 'stopped';
    this.onBatch = null;
  }

  status(): JournalSourceStatus {
    const wake = this.waker?.status() ?? null;
    return {
      id: this.id,
      kind: 'journal',
      items: [{ name: this.matchesText, state: wake === null ? this.state : `${this.state}, wake ${wake.state}`, lastLineAt: this.lastEntryTime }],
      linesRead: this.entriesRead,
      error: this.error,
      matches: this.matchesText,
      state: this.state,
      lastEntryTime: this.lastEntryTime,
      skipped: this.skipped,
      notSelected: this.notSelected,
      restarts: this.restarts,
      cursor: this.cursor,
      pid: this.run?.child.pid ?? null,
      wake,
    };
  }

  /** Starts journalctl; resolves once it runs or failed to start (never rejects: failures go to status and a restart). */
  private spawnRun(): Promise<void> {
    this.state = 'starting';
    const position = this.cursor !== null
      ? ['--no-tail', `--after-cursor=${this.cursor}`]
      : this.startAt === 'beginning' ? ['--no-tail'] : ['--lines=0'];
    const child = spawn(this.journalctl, [...position, ...this.baseArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // English messages on stderr: explainFailure recognises them.
      env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', LC_ALL: 'C.UTF-8' },
    });
    let markClosed!: () => void;
    const run: Run = {
      child,
      pending: [],
      pendingBytes: 0,
      discarding: false,
      stderr: '',
      abandoned: false,
      afterCursor: this.cursor,
      startedAt: Date.now(),
      closed: new Promise((resolve) => (markClosed = resolve)),
    };
    this.run = run;
    return new Promise((resolveStarted) => {
      let spawnError: NodeJS.ErrnoException | null = null;
      child.once('spawn', () => {
        if (this.run === run && !this.stopping) this.state = 'following';
        resolveStarted();
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        // Emitted when spawning fails (then 'close' follows) or when killing fails.
        if (child.pid === undefined) spawnError = err;
        resolveStarted();
      });
      child.stdout!.on('data', (chunk: Buffer) => this.onStdout(run, chunk));
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (text: string) => this.onStderr(run, text));
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.run === run) this.run = null;
        if (!this.stopping) this.onRunEnded(run, code, signal, spawnError);
        markClosed();
        resolveStarted();
      });
    });
  }

  private onStdout(run: Run, chunk: Buffer): void {
    if (run.abandoned) return;
    const lines: LogLine[] = [];
    let lastCursor: string | null = null;
    const now = Date.now();
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (run.discarding) {
        run.discarding = false;
        continue;
      }
      let text: string;
      if (run.pendingBytes > 0) {
        run.pending.push(piece);
        text = Buffer.concat(run.pending).toString('utf8');
        run.pending = [];
        run.pendingBytes = 0;
      } else {
        text = piece.toString('utf8');
      }
      const parsed = this.parseLine(text, now);
      if (parsed === null) continue;
      // An entry not wanted moves the position on with the next batch; alone it is not worth a commit.
      lastCursor = parsed.cursor;
      if (parsed.line !== null) lines.push(parsed.line);
    }
    if (start < chunk.length && !run.discarding) {
      const rest = chunk.subarray(start);
      run.pending.push(Buffer.from(rest));
      run.pendingBytes += rest.length;
      if (run.pendingBytes > this.maxJsonLine) {
        run.pending = [];
        run.pendingBytes = 0;
        run.discarding = true;
        this.skipped++;
      }
    }
    if (lastCursor !== null && lines.length > 0) this.handOver(run, lines, lastCursor);
  }

  /** An entry's line and cursor; its line null when the matches (or this machine and boot) do not want it; null for output that is no entry. */
  private parseLine(text: string, arrivalTime: number): { line: LogLine | null; cursor: string } | null {
    if (text.trim() === '') return null;
    let entry: unknown;
    try {
      entry = JSON.parse(text);
    } catch {
      this.skipped++;
      return null;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      this.skipped++;
      return null;
    }
    const fields = entry as Record<string, unknown>;
    const cursor = fields['__CURSOR'];
    if (typeof cursor !== 'string' || cursor === '') {
      this.skipped++;
      return null;
    }
    if (!this.wanted(fields)) {
      this.notSelected++;
      return { line: null, cursor };
    }
    return journalEntryToLine(fields, this.key, this.maxLineLength, arrivalTime);
  }

  private wanted(entry: Record<string, unknown>): boolean {
    if (this.machineId !== null && journalFieldText(entry['_MACHINE_ID']) !== this.machineId) return false;
    if (this.bootId !== null && journalFieldText(entry['_BOOT_ID']) !== this.bootId) return false;
    return journalEntryMatches(entry, this.matches);
  }

  /** One batch per stdout chunk: entries that arrived together travel together, without waiting for more. */
  private handOver(run: Run, lines: LogLine[], cursor: string): void {
    const checkpoint: Checkpoint = { key: this.key, value: JSON.stringify({ cursor }) };
    try {
      this.onBatch!({ lines, checkpoints: [checkpoint] });
    } catch (err) {
      // Nothing of this batch was committed: restart journalctl after the last committed cursor, so it comes again.
      run.abandoned = true;
      this.error = `handing journal entries over failed: ${(err as Error).message}; retrying from the last committed entry`;
      run.child.kill('SIGTERM');
      return;
    }
    this.cursor = cursor;
    this.entriesRead += lines.length;
    if (lines.length > 0) this.lastEntryTime = lines[lines.length - 1]!.time;
    this.nextDelayMs = this.restartDelay.initialMs;
    // Entries flow again: an earlier failure is over, a partial-access warning is not.
    if (this.error !== null && !PARTIAL_ACCESS.test(run.stderr)) this.error = null;
  }

  private onStderr(run: Run, text: string): void {
    run.stderr = (run.stderr + text).slice(-4096);
    // journalctl keeps running when it may read only part of the journal: say so while it follows.
    if (PARTIAL_ACCESS.test(run.stderr)) {
      this.error = `journalctl cannot read the whole journal (${lastLine(run.stderr)}): run portcullis as root or add its user to the systemd-journal group`;
    }
  }

  private onRunEnded(run: Run, code: number | null, signal: NodeJS.Signals | null, spawnError: NodeJS.ErrnoException | null): void {
    if (!run.abandoned) this.error = this.explainFailure(run, code, signal, spawnError);
    if (run.afterCursor !== null && code !== null && code !== 0 && /seek to cursor/i.test(run.stderr)) {
      // The journal no longer knows this cursor (vacuumed, or another journal): start over rather than fail forever.
      this.error = `journalctl rejected the stored cursor (${lastLine(run.stderr)}); continuing from the ${this.startAt} of the journal`;
      this.cursor = null;
    }
    this.state = 'waiting to restart';
    // A journalctl that ran for a good while before failing is a new incident, not a repeated one.
    if (Date.now() - run.startedAt >= this.restartDelay.maxMs) this.nextDelayMs = this.restartDelay.initialMs;
    const delay = this.nextDelayMs;
    this.nextDelayMs = Math.min(this.nextDelayMs * 2, this.restartDelay.maxMs);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.restarts++;
      void this.spawnRun();
    }, delay);
  }

  private explainFailure(run: Run, code: number | null, signal: NodeJS.Signals | null, spawnError: NodeJS.ErrnoException | null): string {
    const where = this.jail !== undefined ? `jail ${this.jail}` : 'the configuration';
    if (spawnError !== null) {
      if (spawnError.code === 'ENOENT') {
        return `journalctl not found (${this.journalctl}): install systemd (journalctl) or remove the journal source from ${where}`;
      }
      if (spawnError.code === 'EACCES') {
        return `journalctl at ${this.journalctl} cannot be executed (permission denied): fix its permissions or the journalctl path of ${where}`;
      }
      return `cannot start journalctl (${this.journalctl}): ${spawnError.message}`;
    }
    const said = lastLine(run.stderr);
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    if (/insufficient permissions|permission denied|access denied/i.test(run.stderr)) {
      return `journalctl ${how}: ${said}: run portcullis as root or add its user to the systemd-journal group`;
    }
    if (/unrecognized option|invalid option|Failed to add match|Please specify/i.test(run.stderr)) {
      return `journalctl ${how}, rejecting its arguments: ${said}: fix the journal source's args or matches in ${where}`;
    }
    if (/No journal files|No such boot ID|Failed to open/i.test(run.stderr)) {
      return `journalctl ${how}: ${said}: check that systemd-journald is running and stores logs, or the journal directory/file given to the journal source in ${where}`;
    }
    return `journalctl ${how}${said !== '' ? `: ${said}` : ''}; restarting it`;
  }
}

/** The location arguments in one spelling (`--directory=DIR`), so equivalent configs share a checkpoint key. */
function locationArgs(args: string[]): string[] {
  const location: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = optionName(arg);
    if (!LOCATION_OPTIONS.has(name)) continue;
    const long = SHORT_TO_LONG[name] ?? name;
    let value: string | undefined;
    if (arg.startsWith('--')) value = arg.length > name.length ? arg.slice(name.length + 1) : args[++i];
    else value = arg.length > 2 ? arg.slice(2) : args[++i];
    location.push(value === undefined ? long : `${long}=${value}`);
  }
  return location;
}

/** A 128-bit id as journald writes it (32 hex digits), from /etc/machine-id or the kernel's boot_id; null when unreadable. */
function readId(path: string): string | null {
  try {
    const id = readFileSync(path, 'latin1').trim().replace(/-/g, '').toLowerCase();
    return /^[0-9a-f]{32}$/.test(id) ? id : null;
  } catch {
    return null;
  }
}

function parseStoredCursor(stored: string): string | null {
  try {
    const value: unknown = JSON.parse(stored);
    if (value !== null && typeof value === 'object' && 'cursor' in value) {
      const cursor = (value as { cursor: unknown }).cursor;
      if (typeof cursor === 'string' && cursor !== '') return cursor;
    }
  } catch {
    // not JSON: treated like any other unusable position
  }
  return null;
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]!.trim();
}
