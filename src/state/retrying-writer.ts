import type { Logger } from '../core/log.js';
import { isEmptyChanges, type StateChanges } from './store.js';
import type { CommitDone, FailedCommit, StateWriter } from './store-writer.js';

/** The bans and unbans of a batch not on disk yet, which the firewall holds all the same. */
export type UnsavedDecisions = Pick<StateChanges, 'bans' | 'unbans'>;

/**
 * Failure rows kept in memory while the disk stays full, at most: ~25 MB. Beyond it the oldest kept
 * rows are let go (they still count until a restart); bans, unbans and positions are always kept.
 */
const MAX_KEPT_FAILURE_ROWS = 100_000;

interface Kept {
  /** Order in which the batch was first handed in. */
  ordinal: number;
  changes: StateChanges;
}

/** Retry rounds: the first a second after a failure, then twice as far apart each time, up to this. */
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

/**
 * Keeps the batches whose commit failed for a reason the admin can fix while the daemon runs (a full
 * disk, permissions) and commits them again, oldest first. Without it a failed batch's bans lasted
 * until the next drift check (the database did not hold them) and a later commit moved the positions
 * past their lines. While batches are kept, later ones are kept behind them without being tried (their
 * callers hear the failure at once, and enforce), so the database takes them in order; a round tries
 * them all, stopping at the first that fails again, a second after the failure and then less often.
 */
export class RetryingWriter implements StateWriter {
  private ordinal = 0;
  /** Failed batches and those behind them, not handed in again yet, oldest first. */
  private kept: Kept[] = [];
  /** Kept batches handed in again and not done yet: their decisions. */
  private readonly retrying = new Map<number, UnsavedDecisions>();
  /** Per source key: the ordinal of the last batch with a position for it. */
  private readonly positionOrdinal = new Map<string, number>();
  /** The failure that made the first batch of `kept` wait. */
  private lastFailure: FailedCommit | null = null;
  private retryDelay: number;
  private nextRetryAt = 0;
  /** Since the first failure that is still not saved: batches kept, failure rows let go. */
  private episode = { batches: 0, rowsDropped: 0 };
  private readonly maxKeptRows: number;
  private readonly firstRetryMs: number;

  constructor(private readonly inner: StateWriter, private readonly log: Logger, options: { maxKeptRows?: number; firstRetryMs?: number } = {}) {
    this.maxKeptRows = options.maxKeptRows ?? MAX_KEPT_FAILURE_ROWS;
    this.firstRetryMs = options.firstRetryMs ?? FIRST_RETRY_MS;
    this.retryDelay = this.firstRetryMs;
  }

  get mode(): StateWriter['mode'] {
    return this.inner.mode;
  }

  commit(changes: StateChanges, done: CommitDone, busy = false): void {
    const ordinal = ++this.ordinal;
    for (const c of changes.checkpoints ?? []) this.positionOrdinal.set(c.key, ordinal);
    if (this.lastFailure === null) {
      this.handIn(ordinal, changes, done, busy);
      return;
    }
    // Behind batches the database refused: kept behind them, so that it takes them in order.
    if (!isEmptyChanges(changes)) this.keep({ ordinal, changes }, true);
    done({ ...this.lastFailure, changes });
    if (this.retrying.size === 0 && Date.now() >= this.nextRetryAt) this.retry(busy);
  }

  /** Why batches wait for the database, and how many: null while it takes them. */
  failing(): string | null {
    if (this.lastFailure === null) return null;
    return `${this.lastFailure.message} (${this.kept.length + this.retrying.size} batch(es) waiting)`;
  }

  /** Decisions of failed batches not saved yet, oldest first: what the database lacks of what the firewall holds. */
  unsaved(): UnsavedDecisions[] {
    if (this.kept.length === 0 && this.retrying.size === 0) return [];
    const all = [...this.kept.map((k): [number, UnsavedDecisions] => [k.ordinal, k.changes]), ...this.retrying];
    return all.sort((a, b) => a[0] - b[0]).map(([, d]) => d);
  }

  flush(): void {
    this.inner.flush();
  }

  idle(): Promise<void> {
    return this.inner.idle();
  }

  /** One last round for the kept batches, then what is still not saved is said. */
  async close(): Promise<void> {
    this.inner.flush();
    if (this.retrying.size === 0 && this.kept.length > 0) this.retry(false);
    this.inner.flush();
    const lost = this.unsaved();
    if (lost.length > 0) {
      const bans = lost.reduce((n, d) => n + (d.bans?.length ?? 0), 0);
      this.log.error(`stopping with ${lost.length} batch(es) the state database could not take (${bans} ban(s) among them): their lines are read again at the next start`);
    }
    await this.inner.close();
  }

  /** Hands the kept batches in again, in order; on this thread (inline) the round stops at the first that fails. */
  private retry(busy: boolean): void {
    const round = this.kept;
    this.kept = [];
    for (let i = 0; i < round.length; i++) {
      this.handIn(round[i]!.ordinal, round[i]!.changes, null, busy);
      if (this.kept.length > 0) {
        // Failed again at once: the rest waits behind it, untried.
        this.kept.push(...round.slice(i + 1));
        break;
      }
    }
  }

  /** `done` null: a kept batch handed in again. */
  private handIn(ordinal: number, changes: StateChanges, done: CommitDone | null, busy: boolean): void {
    let batch = changes;
    if (done === null) {
      this.retrying.set(ordinal, { bans: changes.bans, unbans: changes.unbans });
      // A position a later batch carries is left to it: should that batch have been saved first (a
      // commit under way when this one failed, committed after the writer thread was lost), writing
      // this one would move the position back.
      batch = { ...changes, checkpoints: changes.checkpoints?.filter((c) => this.positionOrdinal.get(c.key) === ordinal) };
    }
    this.inner.commit(batch, (failure) => {
      if (done === null) this.retrying.delete(ordinal);
      if (failure?.transient && !isEmptyChanges(failure.changes)) {
        if (this.lastFailure === null || done === null) this.scheduleRetry();
        this.lastFailure = failure;
        this.keep({ ordinal, changes: failure.changes }, done !== null);
      } else if (done === null) {
        // Refused for another reason (a damaged file): kept, it would be refused forever.
        if (failure !== null) this.log.error(failure.message);
        this.savedAll();
      }
      done?.(failure);
    }, busy);
  }

  private scheduleRetry(): void {
    this.nextRetryAt = Date.now() + this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, MAX_RETRY_MS);
  }

  private keep(k: Kept, first: boolean): void {
    const at = this.kept.findIndex((other) => other.ordinal > k.ordinal);
    this.kept.splice(at < 0 ? this.kept.length : at, 0, k);
    if (first) this.episode.batches++;
    let rows = this.kept.reduce((n, other) => n + (other.changes.failuresAdded?.length ?? 0), 0);
    for (const other of this.kept) {
      if (rows <= this.maxKeptRows) break;
      const n = other.changes.failuresAdded?.length ?? 0;
      if (n === 0) continue;
      if (this.episode.rowsDropped === 0) {
        this.log.warn(`the state database has not been writable for a while: more than ${this.maxKeptRows.toLocaleString('en')} failure records wait for it, the oldest are let go (they count until a restart; bans, unbans and positions are kept)`);
      }
      other.changes = { ...other.changes, failuresAdded: undefined };
      this.episode.rowsDropped += n;
      rows -= n;
    }
  }

  /** After a round: once nothing is kept, the database takes batches as they come again. */
  private savedAll(): void {
    if (this.kept.length > 0 || this.retrying.size > 0) return;
    const { batches, rowsDropped } = this.episode;
    this.log.info(`state database writable again: the ${batches} batch(es) kept meanwhile are saved${rowsDropped ? `, but for ${rowsDropped.toLocaleString('en')} failure record(s) let go` : ''}`);
    this.episode = { batches: 0, rowsDropped: 0 };
    this.lastFailure = null;
    this.retryDelay = this.firstRetryMs;
    this.nextRetryAt = 0;
  }
}
