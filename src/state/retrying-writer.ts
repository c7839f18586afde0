import type { Logger } from '../core/log.js';
import type { Checkpoint } from '../sources/source.js';
import { isEmptyChanges, type StateChanges } from './store.js';
import type { CommitDone, StateWriter } from './store-writer.js';

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

/**
 * Keeps the batches whose commit failed for a reason the admin can fix while the daemon runs (a full
 * disk, permissions) and hands them in again, oldest first, ahead of each later commit. Without it a
 * failed batch's bans lasted until the next drift check (the database did not hold them) and a later
 * commit moved the positions past their lines. While batches are kept, later batches go in without
 * their positions (a small batch can fit where a large one did not); the positions follow with the
 * first batch after all kept ones are saved, so a stop meanwhile has their lines read again.
 */
export class RetryingWriter implements StateWriter {
  private ordinal = 0;
  /** Failed batches not handed in again yet, oldest first. */
  private kept: Kept[] = [];
  /** Failed batches handed in again and not done yet: their decisions. */
  private readonly retrying = new Map<number, UnsavedDecisions>();
  /** Per source key: the ordinal of the last batch handed in with a position for it. */
  private readonly positionOrdinal = new Map<string, number>();
  /** Positions of batches handed in while earlier ones were kept, per source key: the newest. */
  private readonly heldPositions = new Map<string, Checkpoint>();
  /** Since the first failure that is still not saved: batches kept, failure rows let go. */
  private episode = { batches: 0, rowsDropped: 0 };

  constructor(private readonly inner: StateWriter, private readonly log: Logger, private readonly maxKeptRows = MAX_KEPT_FAILURE_ROWS) {}

  get mode(): StateWriter['mode'] {
    return this.inner.mode;
  }

  commit(changes: StateChanges, done: CommitDone, busy = false): void {
    const kept = this.kept;
    this.kept = [];
    for (const k of kept) this.handIn(k.ordinal, k.changes, null, busy);
    let batch = changes;
    if (this.retrying.size > 0 || this.kept.length > 0) {
      for (const c of changes.checkpoints ?? []) this.heldPositions.set(c.key, c);
      batch = { ...changes, checkpoints: [] };
    } else if (this.heldPositions.size > 0) {
      for (const c of changes.checkpoints ?? []) this.heldPositions.set(c.key, c);
      batch = { ...changes, checkpoints: [...this.heldPositions.values()] };
      this.heldPositions.clear();
    }
    this.handIn(++this.ordinal, batch, done, busy);
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

  /** One last try for the kept batches and held positions, then what is still not saved is said. */
  async close(): Promise<void> {
    if (this.kept.length > 0 || this.heldPositions.size > 0) this.commit({}, () => {});
    this.inner.flush();
    const lost = this.unsaved();
    if (lost.length > 0) {
      const bans = lost.reduce((n, d) => n + (d.bans?.length ?? 0), 0);
      this.log.error(`stopping with ${lost.length} batch(es) the state database could not take (${bans} ban(s) among them): their lines are read again at the next start`);
    }
    await this.inner.close();
  }

  /** `done` null: a kept batch handed in again. */
  private handIn(ordinal: number, changes: StateChanges, done: CommitDone | null, busy: boolean): void {
    let batch = changes;
    if (done === null) {
      this.retrying.set(ordinal, { bans: changes.bans, unbans: changes.unbans });
      // A position that a later batch carries is left to it: written here it would move back.
      const checkpoints = changes.checkpoints?.filter((c) => this.positionOrdinal.get(c.key) === ordinal);
      batch = { ...changes, checkpoints };
    } else {
      for (const c of changes.checkpoints ?? []) this.positionOrdinal.set(c.key, ordinal);
    }
    this.inner.commit(batch, (failure) => {
      if (done === null) this.retrying.delete(ordinal);
      if (failure?.transient && !isEmptyChanges(failure.changes)) {
        this.keep({ ordinal, changes: failure.changes }, done !== null);
      } else if (failure !== null && done === null) {
        this.log.error(failure.message);
      } else if (failure === null && done === null) {
        this.savedAll();
      }
      done?.(failure);
    }, busy);
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

  private savedAll(): void {
    if (this.kept.length > 0 || this.retrying.size > 0) return;
    const { batches, rowsDropped } = this.episode;
    this.log.info(`state database writable again: the ${batches} batch(es) kept meanwhile are saved${rowsDropped ? `, but for ${rowsDropped.toLocaleString('en')} failure record(s) let go` : ''}`);
    this.episode = { batches: 0, rowsDropped: 0 };
  }
}
