import { closeSync, fstatSync, futimesSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
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
 * Setting a file's times needs root (or the file's owner); without that the
 * waker turns itself off and says why, and entries arrive on journald's timer.
 *
 * Polling costs a timer wake-up each time, not the read (0.5 µs): on our
 * VMs ~2.4 % of a core at 2 ms, ~0.4 % at 50 ms. So the waker polls at the
 * short interval only while entries keep coming (an attack is a stream of
 * lines) and at 50 ms once the journal has been quiet for a second: the first
 * entry after a quiet spell waits at most 50 ms, the ones after it ~1 ms.
 */

/** Poll interval while the journal is busy: an entry reaches journalctl ~interval/2 + 1 ms after journald wrote it. */
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
}

export class JournalWaker {
  private readonly directories: readonly string[];
  private readonly intervalMs: number;
  private readonly idleIntervalMs: number;
  private readonly idleAfterMs: number;
  private readonly rescanMs: number;
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

  /** Reads every watched file's entry count once and wakes the followers of those that grew; returns how many. */
  poll(): number {
    let woken = 0;
    for (const w of this.watched.values()) {
      let entries: number;
      try {
        if (readSync(w.fd, this.header, 0, 8, N_ENTRIES_OFFSET) !== 8) continue;
        entries = this.header.readUInt32LE(0) + this.header.readUInt32LE(4) * 2 ** 32;
      } catch {
        this.forget(w);
        continue;
      }
      if (entries === w.entries) continue;
      w.entries = entries;
      if (!this.wake(w)) return woken;
      woken++;
    }
    if (woken > 0) this.lastChangeAt = Date.now();
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
    const delay = now - this.lastChangeAt < this.idleAfterMs ? this.intervalMs : this.idleIntervalMs;
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
      this.watched.set(path, { path, fd, ino: fstatSync(fd).ino, entries });
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
