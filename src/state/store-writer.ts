import { dirname } from 'node:path';
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import type { Logger } from '../core/log.js';
import { startWorker } from '../core/worker.js';
import { toWire, type WireChanges } from './commit-wire.js';
import { RetryingWriter } from './retrying-writer.js';
import { FailureRows, StateWriteError, isEmptyChanges, type CommitFailure, type StateChanges, type Store } from './store.js';

/** A commit that failed: why, and the batch as handed in (with its failure rows), to commit again if the failure is transient. */
export interface FailedCommit extends CommitFailure {
  changes: StateChanges;
}

/** Called once a commit is on disk (`failure` null) or failed (its message says why and what to do). */
export type CommitDone = (failure: FailedCommit | null) => void;

/**
 * Where the daemon's commits go. Commits are applied in the order handed in, and each `done` runs on
 * the calling thread in that order, after the commit's bans have their stored evidence filled in.
 */
export interface StateWriter {
  readonly mode: 'thread' | 'inline' | 'adaptive';
  /** `busy`: the batch is part of a backlog (more lines are waiting to be read). */
  commit(changes: StateChanges, done: CommitDone, busy?: boolean): void;
  /** Blocks the calling thread until every commit handed in is done (shutdown; reads that must see them). */
  flush(): void;
  /** Resolves once every commit handed in so far is done. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** Commits on the calling thread: an in-memory store (no other thread can open it), and the adaptive writer while it is quiet. */
export class InlineWriter implements StateWriter {
  readonly mode = 'inline';

  constructor(private readonly store: Store) {}

  commit(changes: StateChanges, done: CommitDone): void {
    done(commitOrError(this.store, changes, Date.now()));
  }

  flush(): void {}

  async idle(): Promise<void> {}

  async close(): Promise<void> {}
}

export function commitOrError(store: Store, changes: StateChanges, now: number): FailedCommit | null {
  try {
    store.commit(changes, now);
    return null;
  } catch (e) {
    if (!(e instanceof StateWriteError)) throw e;
    return { ...e.failure(), changes };
  }
}

/** A commit as the writer thread gets it. */
export interface CommitJob {
  seq: number;
  changes: WireChanges;
  now: number;
  /**
   * Transient failures the caller had heard of when it handed the commit in. The thread does not try
   * a commit handed in before the caller heard of the last one it failed: that commit would land
   * ahead of the failed one, and its positions past the failed one's lines.
   */
  failuresHeard: number;
}

/** The writer thread's answer, posted before it counts the commit as done. */
export interface CommitReply {
  seq: number;
  failure: CommitFailure | null;
  /** The filled-in evidence of `changes.evidenceToRead`, in order, once committed. */
  evidence: string[][] | null;
  /** A transient failure's failure rows, given back: this thread let go of them when it posted the batch. */
  failuresAdded?: FailureRows;
}

export interface WriterThreadData {
  dir: string;
  replies: MessagePort;
  /** One Int32: the seq (wrapping) of the last commit done. */
  done: SharedArrayBuffer;
}

/**
 * Commits beyond this many waiting for the writer thread make the caller wait: under a flood the
 * writer keeps up (it has a core of its own), and if it did not, waiting lines stay in the file, not in memory.
 */
const MAX_IN_FLIGHT = 16;
/** How long one wait for the writer lasts before the queue is looked at again. */
const WAIT_SLICE_MS = 1000;
/** A commit the writer thread has not finished after this long (blocked here) means it is gone. */
const SILENCE_LIMIT_MS = 60_000;

/** Wrap-safe `a <= b` for seqs counted in an Int32. */
const notAfter = (a: number, b: number): boolean => ((b - a) | 0) >= 0;

/**
 * Commits on a thread of its own (store-writer-worker.ts) with a connection of its own, so that the
 * SQLite work of a flood (failure rows, ban rows and their evidence: ~25 µs a ban) runs beside the
 * pipeline instead of on its thread. WAL lets the caller's connection read what the writer commits.
 * If the thread dies, the commits it had not finished are made here, and so are all later ones.
 */
export class ThreadWriter implements StateWriter {
  readonly mode = 'thread';
  private worker: Worker | null;
  private readonly replies: MessagePort;
  private readonly doneSeq: Int32Array;
  private readonly pending: Array<{ seq: number; changes: StateChanges; done: CommitDone }> = [];
  private seq = 0;
  private failuresHeard = 0;
  private idleWaiters: Array<() => void> = [];
  private closing = false;

  constructor(private readonly store: Store, private readonly log: Logger) {
    const { port1, port2 } = new MessageChannel();
    this.replies = port1;
    this.doneSeq = new Int32Array(new SharedArrayBuffer(4));
    const data: WriterThreadData = { dir: dirname(store.path), replies: port2, done: this.doneSeq.buffer as SharedArrayBuffer };
    this.worker = startWorker(import.meta.url, 'store-writer-worker', data, [port2]);
    this.worker.unref();
    this.replies.on('message', (r: CommitReply) => this.finish(r));
    this.replies.unref();
    this.worker.on('error', (e) => this.lost(`the state writer thread failed: ${e.message}`));
    this.worker.on('exit', (code) => {
      if (!this.closing) this.lost(`the state writer thread exited (code ${code})`);
    });
  }

  commit(changes: StateChanges, done: CommitDone): void {
    if (this.worker === null) {
      done(commitOrError(this.store, changes, Date.now()));
      return;
    }
    if (this.pending.length === 0) {
      if (isEmptyChanges(changes)) {
        done(null);
        return;
      }
      this.worker.ref();
    }
    const seq = ++this.seq | 0;
    const job: CommitJob = { seq, changes: toWire(changes), now: Date.now(), failuresHeard: this.failuresHeard };
    this.worker.postMessage(job);
    // The failure rows (most of a batch) are the thread's now: held here until the answer, their
    // lines outlived the young generation and cost this thread full collections.
    this.pending.push({ seq, changes: { ...changes, failuresAdded: undefined }, done });
    if (this.pending.length > MAX_IN_FLIGHT) this.waitFor(this.pending[this.pending.length - MAX_IN_FLIGHT - 1]!.seq);
  }

  flush(): void {
    if (this.pending.length > 0) this.waitFor(this.pending[this.pending.length - 1]!.seq);
  }

  /** Commits handed in and not done yet. */
  get waiting(): number {
    return this.pending.length;
  }

  idle(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.flush();
    const worker = this.worker;
    if (worker === null) return;
    this.closing = true;
    this.worker = null;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.ref();
    worker.postMessage(null);
    await exited;
    this.replies.close();
  }

  /** Blocks until the commit `seq` is done, running the `done` of every commit up to it. */
  private waitFor(seq: number): void {
    let since = Date.now();
    while (this.worker !== null && this.pending.length > 0 && notAfter(this.pending[0]!.seq, seq)) {
      const before = this.pending.length;
      this.drainReplies();
      if (this.pending.length === 0 || !notAfter(this.pending[0]!.seq, seq)) return;
      if (this.pending.length < before) since = Date.now();
      // A thread that died cannot say so while this one is blocked (its exit is an event): give up on silence.
      if (Date.now() - since > SILENCE_LIMIT_MS) {
        this.lost(`the state writer thread did not finish a commit in ${SILENCE_LIMIT_MS / 1000} s`);
        return;
      }
      const last = Atomics.load(this.doneSeq, 0);
      if (!notAfter(this.pending[0]!.seq, last)) Atomics.wait(this.doneSeq, 0, last, WAIT_SLICE_MS);
    }
  }

  private drainReplies(): void {
    for (let m = receiveMessageOnPort(this.replies); m !== undefined; m = receiveMessageOnPort(this.replies)) {
      this.finish(m.message as CommitReply);
    }
  }

  private finish(reply: CommitReply): void {
    const head = this.pending[0];
    if (head === undefined || head.seq !== reply.seq) {
      this.lost(`the state writer thread answered commit ${reply.seq}, expected ${head?.seq ?? 'none'}`);
      return;
    }
    this.pending.shift();
    const pendingEvidence = head.changes.evidenceToRead ?? [];
    if (reply.evidence !== null) {
      for (let i = 0; i < pendingEvidence.length; i++) pendingEvidence[i]!.lines.splice(0, Infinity, ...reply.evidence[i]!);
    }
    if (reply.failure === null) {
      head.done(null);
    } else {
      if (reply.failure.transient) this.failuresHeard++;
      const failuresAdded = reply.failuresAdded && Object.setPrototypeOf(reply.failuresAdded, FailureRows.prototype) as FailureRows;
      head.done({ ...reply.failure, changes: { ...head.changes, failuresAdded } });
    }
    if (this.pending.length === 0) this.becameIdle();
  }

  /**
   * The writer thread is gone: what it did not finish is committed here, in order, and so is
   * everything later. The failure rows of the batches it had not finished are lost (they are
   * counted in memory still, but forgotten by a restart); their bans and positions are not.
   */
  private lost(reason: string): void {
    const worker = this.worker;
    if (worker === null) return;
    this.worker = null;
    // Commits it finished before it went are done: their answers are still in the port.
    for (let m = receiveMessageOnPort(this.replies); m !== undefined && this.pending[0]?.seq === (m.message as CommitReply).seq; m = receiveMessageOnPort(this.replies)) {
      this.finish(m.message as CommitReply);
    }
    void worker.terminate();
    this.log.error(`${reason}; committing on the main thread from now on`);
    for (const p of this.pending.splice(0)) p.done(commitOrError(this.store, p.changes, Date.now()));
    this.becameIdle();
  }

  private becameIdle(): void {
    this.worker?.unref();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** How long the writer thread may stay idle after a backlog before it is stopped (its memory given back). */
const THREAD_IDLE_MS = 30_000;

/**
 * Commits on the calling thread while the daemon keeps up, and on a writer thread while a source
 * has a backlog (a flood, catching up after a restart), where the SQLite work competes with
 * reading lines. The thread costs ~60 MB more (its isolate, its connection, lines in flight), so it
 * is started by the first busy commit and stopped after 30 s without work. Commits stay in order:
 * one is made here only when the thread has none waiting.
 */
export class AdaptiveWriter implements StateWriter {
  readonly mode = 'adaptive';
  private readonly inline: InlineWriter;
  private thread: ThreadWriter | null = null;
  private lastBusy = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(private readonly store: Store, private readonly log: Logger, private readonly idleMs = THREAD_IDLE_MS) {
    this.inline = new InlineWriter(store);
  }

  /** True while the writer thread runs. */
  get threaded(): boolean {
    return this.thread !== null;
  }

  commit(changes: StateChanges, done: CommitDone, busy = false): void {
    if (busy) {
      this.lastBusy = Date.now();
      if (this.thread === null) {
        this.thread = new ThreadWriter(this.store, this.log);
        this.idleTimer = setInterval(() => void this.stopIdleThread(), Math.max(10, this.idleMs / 4));
        this.idleTimer.unref();
      }
    }
    if (this.thread !== null && (busy || this.thread.waiting > 0)) this.thread.commit(changes, done);
    else this.inline.commit(changes, done);
  }

  flush(): void {
    this.thread?.flush();
  }

  idle(): Promise<void> {
    return this.thread?.idle() ?? Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    const thread = this.thread;
    this.thread = null;
    await thread?.close();
  }

  private async stopIdleThread(): Promise<void> {
    if (this.thread === null || this.thread.waiting > 0 || Date.now() - this.lastBusy < this.idleMs) return;
    await this.close();
  }
}

/**
 * The writer for `store`: adaptive, unless the store lives in this thread's memory (no other thread can
 * open it); either way batches that fail on a full disk are kept and committed again.
 */
export function createStateWriter(store: Store, log: Logger): RetryingWriter {
  return new RetryingWriter(store.path === ':memory:' ? new InlineWriter(store) : new AdaptiveWriter(store, log), log);
}
