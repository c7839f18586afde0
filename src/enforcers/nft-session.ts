import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { PortcullisError } from '../core/errors.js';
import { CommandFailedError } from './command-runner.js';

/**
 * A long-lived `nft -i` co-process that applies one batch of statements per
 * input line. Starting `nft -f -` from a large Node process costs a fork of
 * that process plus nft's own start-up (together 10–20 ms on a busy host); a
 * line written to a waiting nft is applied in a fraction of a millisecond.
 *
 * Protocol: `stmt1; stmt2; …` on one line is one kernel transaction (all or
 * nothing). After each batch we send a marker line that nft cannot parse; its
 * syntax error, echoing the marker, comes on stderr after any error of the
 * batch, so everything on stderr between two markers belongs to that batch.
 *
 * nft's line editor keeps every line in its history, which makes each line
 * slower than the last (0.2 ms → 2 ms over 20,000 lines): the co-process is
 * replaced after `recycleAfter` batches. Its history file is never written
 * (HOME points nowhere). When the co-process cannot start, dies or stops
 * answering, `run` rejects with NftSessionLostError: the batch may or may not
 * have been applied, and the caller applies it again with a one-shot `nft -f -`
 * (our batches are idempotent); the next batch starts a fresh co-process.
 */

export class NftSessionLostError extends PortcullisError {
  override name = 'NftSessionLostError';
}

export interface NftSessionOptions {
  /** Run nft inside this network namespace (`ip netns exec NAME nft -i`). */
  netns?: string;
  /** A batch without an answer this long counts as lost (default 60 s). */
  timeoutMs?: number;
  /** Batches before the co-process is replaced (default 1000). */
  recycleAfter?: number;
  /** Program and arguments to run instead of nft (tests). */
  command?: readonly string[];
}

interface CoProcess {
  child: ChildProcessWithoutNullStreams;
  /** Its stderr not yet attributed to a batch. */
  stderr: string;
  batches: number;
  /** The caret line under the last marker's echo may still be on its way. */
  caretPending: boolean;
}

interface InFlight {
  on: CoProcess;
  marker: string;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const MARKER_PREFIX = 'portcullis-batch-end-';

export class NftSession {
  private current: CoProcess | null = null;
  private inFlight: InFlight | null = null;
  private sequence = 0;
  /** Batches wait here: one at a time on the co-process. */
  private queue: Promise<void> = Promise.resolve();
  private readonly command: readonly string[];
  private readonly timeoutMs: number;
  private readonly recycleAfter: number;

  constructor(options: NftSessionOptions = {}) {
    this.command = options.command ?? (options.netns === undefined ? ['nft', '-i'] : ['ip', 'netns', 'exec', options.netns, 'nft', '-i']);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.recycleAfter = options.recycleAfter ?? 1000;
  }

  /** Pid of the current co-process, if one runs (tests). */
  get pid(): number | undefined {
    return this.current?.child.pid;
  }

  /**
   * Applies `statements` as one transaction. Rejects with CommandFailedError
   * (nft's message) when nft refused the batch, NftSessionLostError when the
   * outcome is unknown.
   */
  run(statements: readonly string[]): Promise<void> {
    const line = statements.join('; ');
    if (line.includes('\n')) return Promise.reject(new PortcullisError('nft statement contains a line break; refusing to send it'));
    const result = this.queue.then(() => this.send(line));
    this.queue = result.catch(() => {});
    return result;
  }

  /** Ends the co-process (its stdin closes, nft exits). */
  close(): void {
    const co = this.current;
    this.current = null;
    co?.child.stdin.end();
  }

  private send(line: string): Promise<void> {
    const co = this.current ?? this.start();
    const marker = `${MARKER_PREFIX}${++this.sequence}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.lose(co, `nft -i did not answer within ${this.timeoutMs} ms`), this.timeoutMs);
      this.inFlight = { on: co, marker, resolve, reject, timer };
      co.child.stdin.write(`${line}\n${marker}\n`);
    }).finally(() => {
      if (++co.batches >= this.recycleAfter && this.current === co) this.close();
    });
  }

  private start(): CoProcess {
    const [program, ...args] = this.command;
    // HOME nowhere: nft -i would otherwise write its whole line history to ~/.nft.history at exit.
    const child = spawn(program!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: '/nonexistent' } });
    const co: CoProcess = { child, stderr: '', batches: 0, caretPending: false };
    this.current = co;
    child.stdout.resume();
    child.stderr.setEncoding('utf8').on('data', (text: string) => this.onStderr(co, text));
    child.stdin.on('error', () => this.lose(co, 'cannot write to nft -i'));
    child.on('error', (err) => this.lose(co, `cannot start ${this.command.join(' ')}: ${err.message}`));
    child.on('exit', (code, signal) => this.lose(co, `nft -i exited (${signal ?? `code ${code}`})${co.stderr.trim() ? `: ${co.stderr.trim().slice(0, 500)}` : ''}`));
    // An idle co-process must not keep the daemon (or a test) alive.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    return co;
  }

  private onStderr(co: CoProcess, text: string): void {
    co.stderr += text;
    if (co.caretPending && co.stderr.includes('\n')) {
      co.stderr = co.stderr.replace(/^[ \t]*\^[ \t^~]*\n/, '');
      co.caretPending = false;
    }
    const batch = this.inFlight;
    if (batch?.on !== co) return;
    const end = co.stderr.indexOf(`\n${batch.marker}\n`);
    if (end < 0) return;
    // What precedes the marker's own "Error: syntax error" line is the batch's output.
    const before = co.stderr.slice(0, end);
    const output = before.slice(0, before.lastIndexOf('\n') + 1);
    co.stderr = co.stderr.slice(end + batch.marker.length + 2);
    this.settle(output.trim() ? new CommandFailedError('nft', ['-i'], 1, output) : null);
    // The marker's caret line follows: drop it now, or when it arrives.
    co.caretPending = true;
    this.onStderr(co, '');
  }

  private lose(co: CoProcess, reason: string): void {
    if (this.current === co) {
      this.current = null;
      co.child.kill('SIGKILL');
    }
    if (this.inFlight?.on === co) this.settle(new NftSessionLostError(reason));
  }

  private settle(err: Error | null): void {
    const batch = this.inFlight;
    if (!batch) return;
    this.inFlight = null;
    clearTimeout(batch.timer);
    if (err) batch.reject(err);
    else batch.resolve();
  }
}
