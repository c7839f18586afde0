import type { LogLine } from '../core/types.js';

/**
 * Where a source stands, persisted atomically with the effects of the lines
 * before it (failures counted, bans decided), so that a restart resumes
 * exactly there: no line counted twice, none missed.
 */
export interface Checkpoint {
  /** Stable key, e.g. `file:/var/log/auth.log` or `journal:_SYSTEMD_UNIT=ssh.service`. */
  key: string;
  /** Opaque to everyone but the source (JSON text). */
  value: string;
}

export interface SourceBatch {
  lines: LogLine[];
  /** Position after the last line of `lines`; null when the source keeps none (stdin). */
  checkpoints: Checkpoint[];
  /**
   * More lines are ready to be read at once (a backlog): the handler may commit
   * this batch together with the ones right behind it.
   */
  more?: boolean;
}

/**
 * Called synchronously for each batch, in order. The handler commits the
 * batch's effects together with its checkpoints: before it returns, or — when
 * the batch says `more` — shortly after, in one transaction with the batches
 * behind it. A checkpoint is never committed without the effects of the lines
 * before it, so a restart resumes exactly after the last committed line.
 */
export type BatchHandler = (batch: SourceBatch) => void;

export interface PositionLookup {
  getPosition(key: string): string | undefined;
}

export interface SourceStatus {
  id: string;
  kind: 'file' | 'journal' | 'stdin' | 'syslog';
  /** Human-readable items: followed files, journal matches. */
  items: Array<{ name: string; state: string; offset?: number; size?: number; lagBytes?: number; lastLineAt?: number | null }>;
  linesRead: number;
  /** Of those, the lines whose effects are committed and handed to the enforcers (set by the daemon). */
  linesCommitted?: number;
  error: string | null;
}

export interface Source {
  readonly id: string;
  start(onBatch: BatchHandler, positions: PositionLookup): Promise<void>;
  /** Stops following; resolves once the last batch has been handed over. */
  stop(): Promise<void>;
  status(): SourceStatus;
}

/** Options shared by line-reading sources. */
export interface LineOptions {
  /** Lines longer than this many bytes are cut (not fed whole to regexes). Default 16 KiB. */
  maxLineLength: number;
}

export const DEFAULT_MAX_LINE_LENGTH = 16 * 1024;
