import type { Readable } from 'node:stream';
import type { LogLine } from '../core/types.js';
import { EnvelopeParser, type EnvelopeOptions } from './envelope.js';
import { LineSplitter } from './line-splitter.js';
import { DEFAULT_MAX_LINE_LENGTH, type BatchHandler, type Source, type SourceStatus } from './source.js';

export interface StdinSourceOptions {
  /** Identifies the source in status output; default `stdin`. */
  id?: string;
  /** What to read; default process.stdin. */
  stream?: Readable;
  /** Lines longer than this many bytes are cut to it; the rest of the line is discarded. Default 16 KiB. */
  maxLineLength?: number;
  /** The parser for syslog/bare envelopes, or options to make one. */
  envelope?: EnvelopeParser | EnvelopeOptions;
  /** `LogLine.source` of every line; default `stdin`. */
  sourceName?: string;
}

/**
 * Reads a stream line by line (`portcullis replay -`, `run --stdin`): one
 * batch per chunk received, numbered lines, no checkpoints (a pipe cannot be
 * resumed). A final line without newline counts at end of input.
 *
 * `done` resolves at end of input, on a read error, or when stopped; it never
 * rejects, so nobody has to listen to it. Whether input ended cleanly is in
 * `status().error`.
 */
export class StdinSource implements Source {
  readonly id: string;
  readonly done: Promise<void>;
  private readonly stream: Readable;
  private readonly splitter: LineSplitter;
  private readonly envelope: EnvelopeParser;
  private readonly sourceName: string;
  private resolveDone!: () => void;
  private onBatch: BatchHandler | null = null;
  private state: 'new' | 'reading' | 'ended' | 'stopped' = 'new';
  private linesRead = 0;
  private lastLineAt: number | null = null;
  private error: string | null = null;

  constructor(options: StdinSourceOptions = {}) {
    this.id = options.id ?? 'stdin';
    this.stream = options.stream ?? process.stdin;
    this.splitter = new LineSplitter(options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH);
    this.envelope = options.envelope instanceof EnvelopeParser ? options.envelope : new EnvelopeParser(options.envelope);
    this.sourceName = options.sourceName ?? 'stdin';
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  async start(onBatch: BatchHandler): Promise<void> {
    if (this.state !== 'new') throw new Error(`source ${this.id} was already started`);
    this.state = 'reading';
    this.onBatch = onBatch;
    this.stream.on('data', this.onData);
    this.stream.once('end', this.onEnd);
    this.stream.once('error', this.onError);
    this.stream.resume();
  }

  async stop(): Promise<void> {
    if (this.state === 'reading') this.finish('stopped');
  }

  status(): SourceStatus {
    const state = this.state === 'reading' ? 'reading' : this.state === 'new' ? 'not started' : this.error ? 'error' : this.state;
    return {
      id: this.id,
      kind: 'stdin',
      items: [{ name: this.sourceName, state, lastLineAt: this.lastLineAt }],
      linesRead: this.linesRead,
      error: this.error,
    };
  }

  private readonly onData = (chunk: Buffer | string): void => {
    if (this.state !== 'reading') return;
    const lines: LogLine[] = [];
    this.splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk, (raw) => lines.push(this.line(raw)));
    this.emit(lines);
  };

  private readonly onEnd = (): void => {
    if (this.state !== 'reading') return;
    const lines: LogLine[] = [];
    this.splitter.flush((raw) => lines.push(this.line(raw)));
    this.emit(lines);
    if (this.state === 'reading') this.finish('ended');
  };

  private readonly onError = (err: Error): void => {
    if (this.state !== 'reading') return;
    this.error = `${this.sourceName}: read failed: ${err.message}`;
    this.finish('ended');
  };

  private line(raw: string): LogLine {
    const line = this.envelope.parse(raw, this.sourceName);
    line.lineNo = ++this.linesRead;
    return line;
  }

  private emit(lines: LogLine[]): void {
    if (lines.length === 0 || !this.onBatch) return;
    this.lastLineAt = Date.now();
    try {
      this.onBatch({ lines, checkpoints: [] });
    } catch (err) {
      this.error = `${this.id}: stopped because the batch handler failed: ${(err as Error).message}`;
      this.finish('stopped');
    }
  }

  /**
   * Detaches from the stream and resolves `done`. The stream belongs to the
   * caller: it is paused, not destroyed; a pipe or terminal is also unref'd,
   * because a paused process.stdin would otherwise keep the process alive.
   */
  private finish(state: 'ended' | 'stopped'): void {
    this.state = state;
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('error', this.onError);
    // An 'error' after we detached must not become an uncaught exception.
    this.stream.on('error', ignore);
    this.stream.pause();
    (this.stream as Readable & { unref?: () => void }).unref?.();
    this.resolveDone();
  }
}

function ignore(): void {}
