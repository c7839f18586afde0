import { closeSync, fstatSync, futimesSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseDuration } from '../core/duration.js';

/**
 * Wakes journal followers (our `journalctl --follow`, and any other reader)
 * as soon as journald appends an entry.
 *
 * Why: journald writes an entry into its memory-mapped journal file at once,
 * but tells readers only later: the inotify event readers wait for comes from
 * an `ftruncate` journald runs on a 250 ms timer (the post-change timer of
 * systemd's journal-file.c), so every journal reader sees an entry 250–500 ms
 * late. The waker reads the entry count in each active journal file's header
 * every few milliseconds and, when it grew, sets the file's access and
 * modification times to now: the same kind of inotify event (IN_ATTRIB) that
 * `journalctl --follow` wakes up for, sent at once, without writing a byte of
 * the file. journald's own change 250 ms later sets the same time again.
 *
 * A follower must not be woken while journald is in the middle of appending:
 * journald raises the file's entry count first, then links the entry into
 * the list of each of its field values, which a follower with matches reads
 * (an admin's `journalctl -f -u ssh`; every `--follow` without `--merge` also
 * matches its boot; the journal source gives none, see journal.ts). A
 * follower that reads in between finds nothing new, and then skips
 * the file until its count changes again (sd-journal's next_beyond_location
 * keeps the count it last saw at the end of a file): the entry waits for the
 * next one of any program, for ever on a quiet host. Seen under load as one
 * ban in a few thousand never made until another program logged. So the
 * waker wakes only while journald is asleep (its /proc state): preempted in
 * the middle of an entry it is runnable, and the wake waits for the next
 * poll (~1 ms). Where no journald is visible (another PID namespace) the
 * count must have held still for a poll instead. An unbroken stream of
 * entries is woken at least every 20 ms.
 *
 * Setting a file's times needs root (or the file's owner); without that the
 * waker turns itself off and says why, and entries arrive on journald's timer.
 *
 * Polling costs a timer wake-up each time, not the read (0.5 µs): on our
 * VMs ~2.4 % of a core at 2 ms, ~0.4 % at 50 ms. So the waker polls at the
 * short interval only while entries keep coming (an attack is a stream of
 * lines) and at 50 ms once the journal has been quiet for a second: the first
 * entry after a quiet spell waits at most 50 ms, the ones after it ~1 ms.
 */

/** Poll interval while the journal is busy: an entry reaches journalctl ~interval/2 + 2 ms after journald wrote it (a poll to see it, one to see the count hold still). */
export const DEFAULT_JOURNAL_WAKE_MS = 2;
/** Where journald keeps the system journal: volatile, then persistent (each in a per-machine subdirectory). */
export const SYSTEM_JOURNAL_DIRECTORIES: readonly string[] = ['/run/log/journal', '/var/log/journal'];
export const JOURNAL_WAKE_HELP = 'a poll interval from 1ms to 1s such as 2ms, or off';

/** `journal_wake:` → interval in ms, null for `off`, undefined when invalid. */
export function parseJournalWake(value: string): number | null | undefined {
  if (value === 'off') return null;
  const ms = parseDuration(value);
  return ms !== null && ms >= 1 && ms <= 1000 ? ms : undefined;
}

export interface JournalWakerOptions {
  /** Directories holding journal files, directly or in per-machine subdirectories (`/var/log/journal`). */
  directories: readonly string[];
  /** Poll interval while the journal is busy. */
  intervalMs: number;
  /** Poll interval after `idleAfterMs` without a new entry. Default 50 ms (or intervalMs if longer). */
  idleIntervalMs?: number;
  /** Default 1 s. */
  idleAfterMs?: number;
  /** How often the directories are listed again, to follow rotation. Default 1 s. */
  rescanMs?: number;
  /** Where journald's processes are looked for. Default /proc; null: none is looked for (the count must hold still instead). */
  proc?: string | null;
  /** During an unbroken stream of entries (journald never asleep at a poll), wake at least this often. Default 20 ms. */
  streamWakeMs?: number;
}

export interface JournalWakerStatus {
  /** `waking` | `idle` (not held by any source) | `off: <why>`. */
  state: string;
  /** Active journal files watched. */
  files: number;
  /** Times a file's new entries woke its followers. */
  wakes: number;
}

/** "LPKSHHRH": the first 8 bytes of every journal file. */
const SIGNATURE = Buffer.from('LPKSHHRH', 'latin1');
/** Byte offset of the header's `n_entries` (little-endian 64-bit), the same in every version of the format. */
const N_ENTRIES_OFFSET = 152;
const HEADER_BYTES = N_ENTRIES_OFFSET + 8;

/** An active (being written) journal file: `system.journal`, `user-1000.journal`; archived ones carry an `@`. */
export function isActiveJournalName(name: string): boolean {
  return name.endsWith('.journal') && !name.includes('@');
}

interface Watched {
  path: string;
  fd: number;
  ino: number;
  /** Entry count at the last poll (exact as a double: counts stay far below 2^53). */
  entries: number;
  /** When the count first grew past what followers were last woken for; null when they were woken for all of it. */
  unwokenSince: number | null;
  /** The count grew at the last poll. */
  grew: boolean;
}

export class JournalWaker {
  private readonly directories: readonly string[];
  private readonly intervalMs: number;
  private readonly idleIntervalMs: number;
  private readonly idleAfterMs: number;
  private readonly rescanMs: number;
  private readonly streamWakeMs: number;
  private readonly journald: JournaldProcesses | null;
  /** Set by poll: a file's count grew and its followers wait for journald to finish the entry. */
  private settling = false;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private watched = new Map<string, Watched>();
  private holders = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastChangeAt = 0;
  private lastScanAt = 0;
  private wakes = 0;
  private disabled: string | null = null;

  constructor(options: JournalWakerOptions) {
    this.directories = options.directories;
    this.intervalMs = Math.max(1, options.intervalMs);
    this.idleIntervalMs = Math.max(this.intervalMs, options.idleIntervalMs ?? 50);
    this.idleAfterMs = options.idleAfterMs ?? 1000;
    this.rescanMs = options.rescanMs ?? 1000;
    this.streamWakeMs = options.streamWakeMs ?? 20;
    const proc = options.proc === undefined ? '/proc' : options.proc;
    this.journald = proc === null ? null : new JournaldProcesses(proc);
  }

  /** A source starts using the waker: polling runs while at least one holds it. */
  hold(): void {
    this.holders++;
    if (this.holders === 1 && this.disabled === null) {
      this.rescan();
      this.lastChangeAt = Date.now();
      this.schedule();
    }
  }

  release(): void {
    if (this.holders === 0) return;
    this.holders--;
    if (this.holders === 0) this.halt();
  }

  status(): JournalWakerStatus {
    const state = this.disabled !== null ? `off: ${this.disabled}` : this.holders > 0 ? 'waking' : 'idle';
    return { state, files: this.watched.size, wakes: this.wakes };
  }

  /**
   * Lists the active journal files again: new ones are opened, rotated ones
   * (same name, new inode) reopened, vanished ones closed.
   */
  rescan(): void {
    this.lastScanAt = Date.now();
    const seen = new Set<string>();
    for (const path of this.activeFiles()) {
      seen.add(path);
      const known = this.watched.get(path);
      let ino: number;
      try {
        ino = statSync(path).ino;
      } catch {
        continue;
      }
      if (known !== undefined && known.ino === ino) continue;
      if (known !== undefined) this.forget(known);
      this.open(path);
    }
    for (const w of [...this.watched.values()]) if (!seen.has(w.path)) this.forget(w);
  }

  /**
   * Reads every watched file's entry count once, and wakes the followers of each file whose count grew
   * once journald is done with it (see above); returns how many.
   */
  poll(): number {
    const now = Date.now();
    this.settling = false;
    let waiting = false;
    for (const w of this.watched.values()) {
      let entries: number;
      try {
        if (readSync(w.fd, this.header, 0, 8, N_ENTRIES_OFFSET) !== 8) continue;
        entries = this.header.readUInt32LE(0) + this.header.readUInt32LE(4) * 2 ** 32;
      } catch {
        this.forget(w);
        continue;
      }
      w.grew = entries !== w.entries;
      if (w.grew) {
        w.entries = entries;
        w.unwokenSince ??= now;
      }
      if (w.unwokenSince !== null) waiting = true;
    }
    if (!waiting) return 0;
    const journaldBusy = this.journald?.busy(now) ?? null;
    let woken = 0;
    for (const w of this.watched.values()) {
      if (w.unwokenSince === null) continue;
      const done = journaldBusy === null ? !w.grew : !journaldBusy;
      if (!done && now - w.unwokenSince < this.streamWakeMs) {
        this.settling = true;
        continue;
      }
      if (!this.wake(w)) return woken;
      w.unwokenSince = null;
      woken++;
    }
    this.lastChangeAt = now;
    return woken;
  }

  private wake(w: Watched): boolean {
    const now = Date.now() / 1000;
    try {
      futimesSync(w.fd, now, now);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.disabled = `cannot set the times of ${w.path} (${code}): entries reach journalctl on journald's own 250 ms timer; run portcullis as root to have them at once`;
      this.halt();
      return false;
    }
    this.wakes++;
    return true;
  }

  private schedule(): void {
    const now = Date.now();
    // A count that just grew is looked at again as soon as a timer allows: the wake waits for it to hold still.
    const delay = this.settling ? 1 : now - this.lastChangeAt < this.idleAfterMs ? this.intervalMs : this.idleIntervalMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (Date.now() - this.lastScanAt >= this.rescanMs) this.rescan();
      this.poll();
      if (this.holders > 0 && this.disabled === null) this.schedule();
    }, delay);
    // The waker never keeps the process alive by itself.
    this.timer.unref();
  }

  private halt(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const w of [...this.watched.values()]) this.forget(w);
  }

  private open(path: string): void {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return;
    }
    try {
      const read = readSync(fd, this.header, 0, HEADER_BYTES, 0);
      if (read < HEADER_BYTES || !this.header.subarray(0, 8).equals(SIGNATURE)) {
        closeSync(fd);
        return;
      }
      const entries = this.header.readUInt32LE(N_ENTRIES_OFFSET) + this.header.readUInt32LE(N_ENTRIES_OFFSET + 4) * 2 ** 32;
      this.watched.set(path, { path, fd, ino: fstatSync(fd).ino, entries, unwokenSince: null, grew: false });
    } catch {
      closeSync(fd);
    }
  }

  private forget(w: Watched): void {
    this.watched.delete(w.path);
    try {
      closeSync(w.fd);
    } catch {
      // already closed
    }
  }

  private *activeFiles(): Generator<string> {
    for (const dir of this.directories) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (isActiveJournalName(name)) {
          yield join(dir, name);
          continue;
        }
        // Per-machine subdirectories: /var/log/journal/<machine-id>/system.journal.
        if (!/^[0-9a-f]{32}$/.test(name)) continue;
        let inner: string[];
        try {
          inner = readdirSync(join(dir, name));
        } catch {
          continue;
        }
        for (const file of inner) if (isActiveJournalName(file)) yield join(dir, name, file);
      }
    }
  }
}

/** How often the process list is read again for journald's processes (one may have restarted). */
const JOURNALD_RESCAN_MS = 10_000;

/**
 * journald's processes (`systemd-journal`, its name cut to 15 characters): whether one is running or
 * runnable, which it is in the middle of appending an entry, costs a read of its /proc stat (~6 µs),
 * made only when a count grew.
 */
export class JournaldProcesses {
  private stats: string[] = [];
  private scannedAt = -Infinity;

  constructor(private readonly proc = '/proc') {}

  /** True when a journald is running or runnable (or in uninterruptible sleep), false when all sleep, null when none is visible. */
  busy(now: number): boolean | null {
    if (now - this.scannedAt >= JOURNALD_RESCAN_MS) this.scan(now);
    let busy = false;
    for (const stat of [...this.stats]) {
      let text: string;
      try {
        text = readFileSync(stat, 'latin1');
      } catch {
        // Gone: look for its successor at the next poll.
        this.stats = this.stats.filter((s) => s !== stat);
        this.scannedAt = -Infinity;
        continue;
      }
      // `pid (comm) S ...`: the state follows the last parenthesis.
      const state = text.charCodeAt(text.lastIndexOf(')') + 2);
      if (state === 82 /* R */ || state === 68 /* D */) busy = true;
    }
    return this.stats.length === 0 ? null : busy;
  }

  private scan(now: number): void {
    this.scannedAt = now;
    this.stats = [];
    let names: string[];
    try {
      names = readdirSync(this.proc);
    } catch {
      return;
    }
    for (const name of names) {
      if (!/^[0-9]+$/.test(name)) continue;
      try {
        if (readFileSync(join(this.proc, name, 'comm'), 'latin1') === 'systemd-journal\n') this.stats.push(join(this.proc, name, 'stat'));
      } catch {
        // ended meanwhile
      }
    }
  }
}
