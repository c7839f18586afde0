import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, realpathSync, statSync, watch } from 'node:fs';
import type { BigIntStats, FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { LogLine } from '../core/types.js';
import { EnvelopeParser, type EnvelopeOptions } from './envelope.js';
import { compilePattern, matchDirectories, type GlobVariant } from './glob.js';
import { LineSplitter } from './line-splitter.js';
import {
  DEFAULT_MAX_LINE_LENGTH,
  type BatchHandler,
  type PositionLookup,
  type Source,
  type SourceStatus,
} from './source.js';

/**
 * Follows log files like `tail -F`, for many files and globs at once.
 *
 * Latency comes from inotify (fs.watch on each file's directory, so creation,
 * rename and deletion are seen as well as writes); a slow safety poll
 * (default 1 s) only catches what inotify cannot see (network file systems,
 * directories that appear later, a watch that failed). All file I/O is
 * synchronous on an fd we hold, in chunks of `readChunkBytes`; each chunk read
 * is one batch (marked `more` when the chunk was full, so the daemon may commit
 * a backlog in fewer transactions), and the pump yields to the event loop
 * between chunks so a large backlog never starves anything else.
 *
 * Which byte a file is read from:
 * - a persisted position for the same file (same device, inode and first
 *   bytes) resumes exactly there;
 * - a file present when the source starts, with no position saved for its
 *   path, starts at its end (`startAtEnd`, the default; the line being written
 *   at that moment is read whole) or at its beginning (`startAtEnd: false`);
 * - every other file is new — it appeared after we started watching (a file
 *   created later, the fresh file after a rotation, a new glob match), or it
 *   replaced the one of the saved position while we were down — and is read
 *   from its beginning, so no line written to it is missed.
 *
 * Rotation:
 * - rename and create (logrotate's default): the old file's fd stays open and
 *   is drained for `rotationGraceMs`, because writers keep writing to it until
 *   they reopen; meanwhile the new file is followed from its beginning. When
 *   the grace period ends, a final line without newline is emitted and the old
 *   file is closed. A deleted file is drained the same way.
 * - copytruncate: the file shrinking below our offset, or its first bytes
 *   changing, restarts it from 0.
 * - rotated while we were down: the old file is looked for beside the path
 *   under a name that extends it (`auth.log.1`, `auth.log-20250101`) with the
 *   saved inode and first bytes; if found, it is finished from the saved offset
 *   before the new file is read from its beginning.
 *
 * Patterns should not also match the rotated names (`/var/log/auth.log*`):
 * each matching path is followed as a file of its own.
 *
 * Checkpoints (key `file:<path>`) hold, for the file at the path and for each
 * rotated file still being drained: device, inode, offset of the first byte
 * not yet consumed (a held-back partial line is not consumed), whether the
 * rest of an over-long line is being skipped, and a hash of the first bytes.
 */

export interface FileSourceOptions {
  /** Identifies the source in status output; default `file:` + the patterns. */
  id?: string;
  /** File paths; globs (`*`, `?`, `[…]`, `{a,b}`) are allowed in any segment. */
  patterns: string[];
  /** Lines longer than this many bytes are cut to it; the rest of the line is discarded. Default 16 KiB. */
  maxLineLength?: number;
  /** Where a file present at start with no saved position begins: its end (default) or its beginning. */
  startAtEnd?: boolean;
  /** The parser for syslog/bare envelopes, or options to make one. */
  envelope?: EnvelopeParser | EnvelopeOptions;
  /** Safety poll interval (ms). Default 1000. Latency never depends on it. */
  pollIntervalMs?: number;
  /** How long a rotated-away or deleted file keeps being read for late writes (ms). Default 30 000. */
  rotationGraceMs?: number;
  /** Bytes per read, and so the largest batch. Default 512 KiB. */
  readChunkBytes?: number;
}

/** How many leading bytes identify a file across restarts (together with device and inode). */
const HEAD_BYTES = 1024;
const CHECKPOINT_VERSION = 1;

interface SavedFile {
  dev: string;
  ino: string;
  offset: number;
  headLen: number;
  headHash: string;
  discard?: true;
}

interface SavedPath {
  v: number;
  /** The file at the path, or null when the path had no file. */
  file: SavedFile | null;
  /** Rotated-away files still being drained. */
  rotated: SavedFile[];
}

interface OpenFile {
  fd: number;
  dev: bigint;
  ino: bigint;
  /** Next byte to read. The consumed offset is this minus the splitter's held-back bytes. */
  readPos: number;
  /** Size at the last look. */
  size: number;
  splitter: LineSplitter;
  headLen: number;
  headHash: string;
  /** Set while draining: when the grace period ends. */
  graceTimer: NodeJS.Timeout | null;
  graceOver: boolean;
}

interface TrackedPath {
  path: string;
  key: string;
  dir: string;
  name: string;
  /** Found through a glob: forgotten once its file is gone and drained. */
  fromGlob: boolean;
  current: OpenFile | null;
  draining: OpenFile[];
  /** Position to resume the file at the path from, if it is still the same file. */
  resume: SavedFile | null;
  /** Where the next file opened at this path starts when it is not resumed. */
  startAt: 'end' | 'beginning';
  error: string | null;
  lastLineAt: number | null;
  /** The checkpoint value last handed over (or found persisted). */
  lastCheckpoint: string | undefined;
}

interface WatchedDir {
  watcher: FSWatcher | null;
  ino: bigint | null;
  error: string | null;
}

export class FileSource implements Source {
  readonly id: string;
  private readonly variants: Array<{ pattern: string; variant: GlobVariant }>;
  private readonly maxLineLength: number;
  private readonly startAtEnd: boolean;
  private readonly envelope: EnvelopeParser;
  private readonly pollIntervalMs: number;
  private readonly rotationGraceMs: number;
  private readonly chunk: Buffer;
  private readonly headBuffer = Buffer.allocUnsafe(HEAD_BYTES);

  private onBatch: BatchHandler | null = null;
  private positions: PositionLookup | null = null;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private haltError: string | null = null;
  private linesRead = 0;

  private readonly tracked = new Map<string, TrackedPath>();
  /** Directory → file name → tracked path. */
  private readonly byDir = new Map<string, Map<string, TrackedPath>>();
  /** Real path of a symlinked file → the tracked paths that lead to it (writes show up in the target's directory). */
  private readonly symlinkTargets = new Map<string, Set<TrackedPath>>();
  /** Directory → glob patterns whose files live there. */
  private readonly dirMatchers = new Map<string, Array<{ pattern: string; matcher: RegExp }>>();
  private readonly watched = new Map<string, WatchedDir>();
  private readonly globErrors: string[] = [];
  /** Glob patterns that currently match no file (shown in status). */
  private readonly unmatched = new Set<string>();

  private readonly dirty = new Set<TrackedPath>();
  private pumpHandle: NodeJS.Immediate | null = null;
  private pollTimer: NodeJS.Timeout | null = null;

  constructor(options: FileSourceOptions) {
    if (options.patterns.length === 0) throw new RangeError('FileSource needs at least one file path or glob');
    this.id = options.id ?? `file:${options.patterns.join(',')}`;
    this.variants = options.patterns.flatMap((pattern) => compilePattern(pattern).map((variant) => ({ pattern, variant })));
    this.maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    new LineSplitter(this.maxLineLength); // validates the length here rather than at the first file
    this.startAtEnd = options.startAtEnd ?? true;
    this.envelope = options.envelope instanceof EnvelopeParser ? options.envelope : new EnvelopeParser(options.envelope);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.rotationGraceMs = options.rotationGraceMs ?? 30_000;
    this.chunk = Buffer.allocUnsafe(options.readChunkBytes ?? 512 * 1024);
  }

  async start(onBatch: BatchHandler, positions: PositionLookup): Promise<void> {
    if (this.state !== 'new') throw new Error(`file source ${this.id} was already started`);
    this.state = 'running';
    this.onBatch = onBatch;
    this.positions = positions;
    // Watch before looking, so that nothing created in between goes unseen.
    this.discover(true);
    // Open (and place) every present file now: a line appended once start() resolves is never skipped.
    for (const t of this.tracked.values()) {
      if (this.state !== 'running') return;
      this.lookAtPath(t);
      this.dirty.add(t);
    }
    this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
    this.schedule();
  }

  async stop(): Promise<void> {
    this.shutDown();
  }

  status(): SourceStatus {
    const items: SourceStatus['items'] = [];
    const errors: string[] = [];
    for (const t of this.tracked.values()) {
      const f = t.current;
      let size = f?.size;
      if (f) {
        try {
          size = fstatSync(f.fd).size;
        } catch {
          // Closed meanwhile; keep the last size seen.
        }
      }
      const offset = f ? consumedOffset(f) : undefined;
      let state: string;
      if (t.error) state = 'error';
      else if (t.draining.length > 0) state = 'rotated-draining';
      else if (f) state = 'following';
      else state = 'waiting for file';
      if (t.error) errors.push(t.error);
      items.push({
        name: t.path,
        state,
        offset,
        size,
        lagBytes: offset !== undefined && size !== undefined ? Math.max(0, size - offset) : undefined,
        lastLineAt: t.lastLineAt,
      });
    }
    for (const pattern of this.unmatched) items.push({ name: pattern, state: 'waiting for file' });
    for (const [dir, w] of this.watched) if (w.error) errors.push(`${dir}: ${w.error}`);
    errors.push(...this.globErrors);
    if (this.haltError) errors.unshift(this.haltError);
    return { id: this.id, kind: 'file', items, linesRead: this.linesRead, error: errors.length > 0 ? errors.join('; ') : null };
  }

  // ---- discovery and watching -------------------------------------------------------------

  /** Expands the patterns: watches their directories and tracks the files they match. */
  private discover(atStart: boolean): void {
    this.globErrors.length = 0;
    this.dirMatchers.clear();
    this.unmatched.clear();
    const matchedPatterns = new Set<string>();
    for (const { pattern, variant } of this.variants) {
      for (const dir of matchDirectories(variant.dir, this.globErrors)) {
        this.watchDirectory(dir);
        if (!variant.nameMatcher) {
          // Named outright: followed even while missing, whatever a glob said about it.
          this.track(join(dir, variant.name), false, atStart).fromGlob = false;
          matchedPatterns.add(pattern);
          continue;
        }
        const matchers = this.dirMatchers.get(dir) ?? [];
        matchers.push({ pattern, matcher: variant.nameMatcher });
        this.dirMatchers.set(dir, matchers);
        let names: string[];
        try {
          names = readdirSync(dir);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT') this.globErrors.push(describeError(dir, err));
          continue;
        }
        for (const name of names) {
          if (!variant.nameMatcher.test(name)) continue;
          const path = join(dir, name);
          if (this.tracked.has(path)) {
            matchedPatterns.add(pattern);
            continue;
          }
          // A glob matches files only; subdirectories and sockets are not log files.
          if (!statOrNull(path)?.isFile()) continue;
          this.track(path, true, atStart);
          matchedPatterns.add(pattern);
        }
      }
    }
    for (const { pattern } of this.variants) if (!matchedPatterns.has(pattern)) this.unmatched.add(pattern);
  }

  private watchDirectory(dir: string): void {
    let w = this.watched.get(dir);
    if (!w) {
      w = { watcher: null, ino: null, error: null };
      this.watched.set(dir, w);
    }
    const st = statOrNull(dir);
    if (w.watcher && st && st.ino === w.ino) return;
    // New, failed, gone or replaced: (re)create the watch.
    w.watcher?.close();
    w.watcher = null;
    w.ino = null;
    if (!st) {
      w.error = null;
      return;
    }
    try {
      const watcher = watch(dir, { persistent: true }, (_event, name) => this.onDirectoryEvent(dir, name));
      watcher.on('error', (err) => {
        watcher.close();
        if (w.watcher === watcher) w.watcher = null;
        w.error = `watch failed (${err.message}); following by polling until it can be renewed`;
      });
      w.watcher = watcher;
      w.ino = st.ino;
      w.error = null;
    } catch (err) {
      w.error = `cannot watch directory (${(err as Error).message}); following by polling every ${this.pollIntervalMs} ms`;
    }
  }

  private onDirectoryEvent(dir: string, name: string | Buffer | null): void {
    if (this.state !== 'running') return;
    const fileName = typeof name === 'string' ? name : name?.toString('utf8') ?? null;
    const inDir = this.byDir.get(dir);
    const t = fileName === null ? undefined : inDir?.get(fileName);
    const viaSymlink = fileName === null ? undefined : this.symlinkTargets.get(join(dir, fileName));
    if (viaSymlink) for (const linked of viaSymlink) this.dirty.add(linked);
    if (t) {
      this.dirty.add(t);
    } else if (!viaSymlink) {
      // A write to a rotated-away file (under its new name), or a new file.
      if (inDir) for (const other of inDir.values()) if (other.draining.length > 0) this.dirty.add(other);
      const matching = this.dirMatchers.get(dir)?.filter((m) => fileName === null || m.matcher.test(fileName));
      if (matching && matching.length > 0) {
        if (fileName === null) this.discover(false);
        else if (statOrNull(join(dir, fileName))?.isFile()) {
          const added = this.track(join(dir, fileName), true, false);
          for (const m of matching) this.unmatched.delete(m.pattern);
          this.dirty.add(added);
        }
      }
    }
    this.schedule();
  }

  /** Starts tracking a path (once); reads its saved position and picks up rotated files it left behind. */
  private track(path: string, fromGlob: boolean, atStart: boolean): TrackedPath {
    const known = this.tracked.get(path);
    if (known) return known;
    const key = `file:${path}`;
    const dir = dirname(path);
    const name = basename(path);
    const t: TrackedPath = {
      path, key, dir, name, fromGlob,
      current: null,
      draining: [],
      resume: null,
      startAt: 'beginning',
      error: null,
      lastLineAt: null,
      lastCheckpoint: undefined,
    };
    this.tracked.set(path, t);
    let inDir = this.byDir.get(dir);
    if (!inDir) this.byDir.set(dir, (inDir = new Map()));
    inDir.set(name, t);

    const persisted = this.positions?.getPosition(key);
    const saved = persisted === undefined ? null : parseSaved(persisted);
    if (!saved) {
      // Never seen: present now at start → the startAtEnd rule; otherwise it appeared after we started watching.
      if (atStart && this.startAtEnd && mayExist(path)) t.startAt = 'end';
      return t;
    }
    t.lastCheckpoint = persisted;
    const atPath = statOrNull(path);
    const leftBehind = [...saved.rotated];
    if (saved.file) {
      if (atPath && sameIdentity(saved.file, atPath)) t.resume = saved.file;
      else leftBehind.unshift(saved.file);
    }
    for (const old of leftBehind) {
      const f = this.findRotated(t, old);
      if (f) this.retire(t, f);
    }
    return t;
  }

  /** Looks beside the path for a rotated file with the saved identity (`auth.log.1`, `auth.log-20250101`). */
  private findRotated(t: TrackedPath, saved: SavedFile): OpenFile | null {
    let names: string[];
    try {
      names = readdirSync(t.dir);
    } catch {
      return null;
    }
    for (const name of names) {
      if (name === t.name || !name.startsWith(t.name)) continue;
      const candidate = join(t.dir, name);
      const st = statOrNull(candidate);
      if (!st || !st.isFile() || !sameIdentity(saved, st)) continue;
      const f = this.openFile(candidate);
      if (typeof f === 'string') return null;
      if (!sameIdentity(saved, f) || !this.headMatches(f, saved)) {
        closeSync(f.fd);
        return null;
      }
      this.place(f, saved);
      return f;
    }
    return null;
  }

  // ---- the pump ---------------------------------------------------------------------------

  private schedule(): void {
    if (this.pumpHandle || this.state !== 'running' || this.dirty.size === 0) return;
    this.pumpHandle = setImmediate(() => this.pump());
  }

  /** One round: at most one chunk per file that has work, then yield. */
  private pump(): void {
    this.pumpHandle = null;
    const work = [...this.dirty];
    this.dirty.clear();
    for (const t of work) {
      if (this.state !== 'running') return;
      if (this.step(t)) this.dirty.add(t);
    }
    this.schedule();
  }

  /** Reads what is new for one path; true when more may be waiting right away. */
  private step(t: TrackedPath): boolean {
    let more = false;
    for (const f of [...t.draining]) {
      if (this.readChunk(t, f)) more = true;
      else if (f.graceOver && this.state === 'running') this.finishDraining(t, f);
    }
    if (t.current && this.readChunk(t, t.current)) return true;
    if (this.state !== 'running') return false;
    // Caught up with the file we hold: is it still the one at the path?
    return this.lookAtPath(t) || more;
  }

  /**
   * Compares the file at the path with the one we hold: rotation, deletion,
   * appearance. True when a file was (re)opened and should be read now.
   */
  private lookAtPath(t: TrackedPath): boolean {
    let st: BigIntStats | undefined;
    try {
      st = statSync(t.path, { bigint: true, throwIfNoEntry: false });
    } catch (err) {
      t.error = describeError(t.path, err);
      return false;
    }
    if (st && t.current && sameIdentity(t.current, st)) return false;
    if (t.current) {
      // Renamed away, replaced or deleted: keep reading the old file for late writes.
      this.retire(t, t.current);
      t.current = null;
    }
    if (!st) {
      t.error = null;
      if (t.fromGlob && t.draining.length === 0) {
        this.forget(t);
        return false;
      }
      this.emit(t, []);
      return false;
    }
    // Renamed back (mv a b; mv b a): take the drained file over again.
    const back = t.draining.find((d) => sameIdentity(d, st));
    if (back) {
      this.endGrace(back);
      t.draining.splice(t.draining.indexOf(back), 1);
      t.current = back;
      this.emit(t, []);
      return true;
    }
    const f = this.openFile(t.path);
    if (typeof f === 'string') {
      t.error = f;
      return false;
    }
    t.error = null;
    const resume = t.resume;
    t.resume = null;
    if (resume && sameIdentity(resume, f) && this.headMatches(f, resume) && f.size >= resume.offset) {
      this.place(f, resume);
    } else if (t.startAt === 'end') {
      this.placeNearEnd(f);
    }
    // Any later file at this path was created after we started watching.
    t.startAt = 'beginning';
    t.current = f;
    this.watchSymlinkTarget(t);
    this.emit(t, []);
    return true;
  }

  /** A symlinked path is written to in its target's directory: watch that one too, or latency falls back to the poll. */
  private watchSymlinkTarget(t: TrackedPath): void {
    let real: string;
    try {
      real = realpathSync(t.path);
    } catch {
      return;
    }
    if (real === t.path) return;
    let linked = this.symlinkTargets.get(real);
    if (!linked) this.symlinkTargets.set(real, (linked = new Set()));
    linked.add(t);
    this.watchDirectory(dirname(real));
  }

  /** Reads one chunk of f and emits its lines as one batch; true when the chunk was full (more may follow). */
  private readChunk(t: TrackedPath, f: OpenFile): boolean {
    let n: number;
    try {
      n = readSync(f.fd, this.chunk, 0, this.chunk.length, f.readPos);
      if (n === 0) {
        f.size = fstatSync(f.fd).size;
        if (f.size >= f.readPos) return false;
        // copytruncate: the file was cut below what we read; it starts over.
        this.restartFile(t, f);
        return true;
      }
    } catch (err) {
      t.error = describeError(t.path, err);
      return false;
    }
    if (f === t.current) t.error = null;
    f.readPos += n;
    if (f.readPos > f.size) f.size = f.readPos;
    const lines: LogLine[] = [];
    f.splitter.push(n === this.chunk.length ? this.chunk : this.chunk.subarray(0, n), (raw) => {
      lines.push(this.envelope.parse(raw, t.key));
    });
    if (f.headLen < HEAD_BYTES) this.updateHead(f);
    const full = n === this.chunk.length;
    this.emit(t, lines, full);
    return full;
  }

  /** The file now holds other content from byte 0 (copytruncate): its held-back line is complete, and reading restarts at 0. */
  private restartFile(t: TrackedPath, f: OpenFile): void {
    const lines: LogLine[] = [];
    f.splitter.flush((raw) => lines.push(this.envelope.parse(raw, t.key)));
    f.splitter.reset();
    f.readPos = 0;
    f.headLen = 0;
    f.headHash = '';
    this.updateHead(f);
    this.emit(t, lines);
  }

  /** Moves a file to the draining list for the grace period. */
  private retire(t: TrackedPath, f: OpenFile): void {
    f.graceOver = false;
    f.graceTimer = setTimeout(() => {
      f.graceTimer = null;
      f.graceOver = true;
      this.dirty.add(t);
      this.schedule();
    }, this.rotationGraceMs);
    t.draining.push(f);
    this.dirty.add(t);
  }

  private endGrace(f: OpenFile): void {
    if (f.graceTimer) clearTimeout(f.graceTimer);
    f.graceTimer = null;
  }

  /** The grace period is over and the file is read to its end: emit its unfinished last line and let it go. */
  private finishDraining(t: TrackedPath, f: OpenFile): void {
    while (this.readChunk(t, f)) if (this.state !== 'running') return;
    const lines: LogLine[] = [];
    f.splitter.flush((raw) => lines.push(this.envelope.parse(raw, t.key)));
    t.draining.splice(t.draining.indexOf(f), 1);
    closeQuietly(f.fd);
    this.emit(t, lines);
    if (t.fromGlob && !t.current && t.draining.length === 0 && !statOrNull(t.path)) this.forget(t);
  }

  /** Stops tracking a glob-matched path whose file is gone (its checkpoint says so, so a recreated file is read whole). */
  private forget(t: TrackedPath): void {
    if (t.lastCheckpoint !== undefined) this.emit(t, []);
    this.tracked.delete(t.path);
    this.byDir.get(t.dir)?.delete(t.name);
    for (const linked of this.symlinkTargets.values()) linked.delete(t);
    this.dirty.delete(t);
  }

  /** Hands over a batch; one with no lines only when the checkpoint changed. `more`: a full chunk was read, more is waiting. */
  private emit(t: TrackedPath, lines: LogLine[], more = false): void {
    if (this.state !== 'running' || !this.onBatch) return;
    const value = checkpointValue(t);
    if (lines.length === 0 && value === t.lastCheckpoint) return;
    t.lastCheckpoint = value;
    if (lines.length > 0) {
      t.lastLineAt = Date.now();
      this.linesRead += lines.length;
    }
    try {
      this.onBatch({ lines, checkpoints: [{ key: t.key, value }], more });
    } catch (err) {
      // The batch was not committed: stop here, so the saved positions still point at its lines.
      this.haltError = `${this.id}: stopped because the batch handler failed: ${(err as Error).message}`;
      this.shutDown();
    }
  }

  // ---- the safety poll --------------------------------------------------------------------

  private poll(): void {
    if (this.state !== 'running') return;
    this.discover(false);
    for (const real of this.symlinkTargets.keys()) this.watchDirectory(dirname(real));
    for (const t of this.tracked.values()) {
      if (this.state !== 'running') return;
      const f = t.current;
      // Truncated and refilled past our offset between two looks: the first bytes tell.
      if (f && f.headLen > 0 && !this.headMatches(f, f)) this.restartFile(t, f);
      this.dirty.add(t);
    }
    this.schedule();
  }

  // ---- files ------------------------------------------------------------------------------

  /** Opens a regular file for reading; a string is the error to show. */
  private openFile(path: string): OpenFile | string {
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO at the path must not hang the daemon in open().
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      return describeError(path, err);
    }
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!st.isFile()) {
        closeSync(fd);
        return st.isDirectory()
          ? `${path}: is a directory; name a file, or a glob such as ${join(path, '*.log')}`
          : `${path}: not a regular file; a file source reads log files (use the stdin or syslog source for pipes and sockets)`;
      }
      const f: OpenFile = {
        fd,
        dev: st.dev,
        ino: st.ino,
        readPos: 0,
        size: Number(st.size),
        splitter: new LineSplitter(this.maxLineLength),
        headLen: 0,
        headHash: '',
        graceTimer: null,
        graceOver: false,
      };
      this.updateHead(f);
      return f;
    } catch (err) {
      closeQuietly(fd);
      return describeError(path, err);
    }
  }

  /** Places f at a saved offset. */
  private place(f: OpenFile, saved: SavedFile): void {
    if (f.size < saved.offset) return; // shrank meanwhile (copytruncate): from the beginning
    f.readPos = saved.offset;
    if (saved.discard) f.splitter.skipToNextLine();
  }

  /** Places f at its end; a line still being written there is read whole once it is finished. */
  private placeNearEnd(f: OpenFile): void {
    const size = f.size;
    if (size === 0) return;
    const window = Math.min(size, this.maxLineLength + 1);
    const tail = Buffer.allocUnsafe(window);
    let n: number;
    try {
      n = readSync(f.fd, tail, 0, window, size - window);
    } catch {
      f.readPos = size;
      return;
    }
    const lastNewline = tail.subarray(0, n).lastIndexOf(0x0a);
    if (lastNewline >= 0) f.readPos = size - window + lastNewline + 1;
    else if (window < size) {
      // The unfinished line is already over-long: skip to its end.
      f.readPos = size;
      f.splitter.skipToNextLine();
    }
  }

  /** Hashes the first bytes again while the file is shorter than HEAD_BYTES. */
  private updateHead(f: OpenFile): void {
    let n: number;
    try {
      n = readSync(f.fd, this.headBuffer, 0, HEAD_BYTES, 0);
    } catch {
      return; // a read error shows up at the next read of the file itself
    }
    if (n > f.headLen || f.headLen === 0) {
      f.headLen = n;
      f.headHash = hashHead(this.headBuffer.subarray(0, n));
    }
  }

  /** True when f's first `of.headLen` bytes hash to `of.headHash`. */
  private headMatches(f: OpenFile, of: { headLen: number; headHash: string }): boolean {
    try {
      const n = readSync(f.fd, this.headBuffer, 0, of.headLen, 0);
      return n === of.headLen && hashHead(this.headBuffer.subarray(0, n)) === of.headHash;
    } catch {
      return false;
    }
  }

  private shutDown(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    if (this.pumpHandle) clearImmediate(this.pumpHandle);
    this.pumpHandle = null;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    for (const w of this.watched.values()) {
      w.watcher?.close();
      w.watcher = null;
    }
    for (const t of this.tracked.values()) {
      for (const f of t.draining) {
        this.endGrace(f);
        closeQuietly(f.fd);
      }
      if (t.current) closeQuietly(t.current.fd);
    }
    this.dirty.clear();
  }
}

/** stat that reports any failure (missing, no permission on the way) as "nothing there". */
function statOrNull(path: string): BigIntStats | null {
  try {
    return statSync(path, { bigint: true, throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

/** False only when the path surely has no file (an unreadable one counts as present: it existed at start). */
function mayExist(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOTDIR';
  }
}

function consumedOffset(f: OpenFile): number {
  return f.readPos - f.splitter.pendingBytes;
}

function savedFile(f: OpenFile): SavedFile {
  const saved: SavedFile = {
    dev: f.dev.toString(),
    ino: f.ino.toString(),
    offset: consumedOffset(f),
    headLen: f.headLen,
    headHash: f.headHash,
  };
  if (f.splitter.discarding) saved.discard = true;
  return saved;
}

function checkpointValue(t: TrackedPath): string {
  const value: SavedPath = {
    v: CHECKPOINT_VERSION,
    file: t.current ? savedFile(t.current) : null,
    rotated: t.draining.map(savedFile),
  };
  return JSON.stringify(value);
}

/** A checkpoint written by this source, or null when it is unreadable (then the path counts as never seen). */
function parseSaved(text: string): SavedPath | null {
  try {
    const value = JSON.parse(text) as SavedPath;
    if (value?.v !== CHECKPOINT_VERSION || !Array.isArray(value.rotated)) return null;
    const valid = (f: SavedFile | null): boolean =>
      f === null ||
      (typeof f.dev === 'string' && typeof f.ino === 'string' && Number.isSafeInteger(f.offset) && f.offset >= 0 &&
        Number.isSafeInteger(f.headLen) && typeof f.headHash === 'string');
    return valid(value.file) && value.rotated.every(valid) ? value : null;
  } catch {
    return null;
  }
}

function sameIdentity(a: { dev: string | bigint; ino: string | bigint }, b: { dev: string | bigint; ino: string | bigint }): boolean {
  return String(a.dev) === String(b.dev) && String(a.ino) === String(b.ino);
}

function hashHead(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('base64url');
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

/** Turns a file system error into what the admin should know and do. */
function describeError(path: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return `${path}: permission denied; the daemon needs read access to the file and search access to its directories (run it as root, or add its user to the log's group, e.g. adm)`;
    case 'EISDIR':
      return `${path}: is a directory; name a file, or a glob such as ${join(path, '*.log')}`;
    case 'ENOTDIR':
      return `${path}: a component of the path is not a directory`;
    case 'ELOOP':
      return `${path}: too many symbolic links (a loop?)`;
    default:
      return `${path}: ${e.message ?? String(err)}`;
  }
}
