import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Decision } from '../core/types.js';
import { PortcullisError } from '../core/errors.js';
import type { Checkpoint } from '../sources/source.js';

/**
 * Persistent state in SQLite (WAL): bans (active and history, with reason and
 * evidence; counted per address for repeat offenders), pending failures (so counting survives a
 * restart), source positions. Everything a batch of lines causes is written in
 * one transaction together with the sources' positions: a crash either keeps
 * the lines' effects and their position, or neither.
 */

/** Where a listing of active bans goes on from: the last one listed. */
export interface ListingKey {
  created: number;
  id: number;
}

const LISTING_START: ListingKey = { created: Number.MIN_SAFE_INTEGER, id: 0 };
const LISTING_END: ListingKey = { created: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER };

/** Parameters of ACTIVE_LISTING_RANGE_SQL: the bans after `from` up to and including `to`. */
export interface ListingRange {
  fromCreated: number;
  fromId: number;
  toCreated: number;
  toId: number;
}

/**
 * Active bans in a key range, oldest first, as JSON objects `{target, jail, time, until, reason, origin}`
 * (times in ISO 8601) joined by commas into one UTF-8 blob: SQLite builds the text, so a million bans
 * never become a million JavaScript objects or strings. Shared with the listing's worker threads.
 */
export const ACTIVE_LISTING_RANGE_SQL = `SELECT CAST(group_concat(j, ',') AS BLOB) FROM (
  SELECT json_object('target', target, 'jail', jail, 'time', ${isoTime('created')},
    'until', ${isoTime('until')}, 'reason', reason, 'origin', origin) AS j
  FROM bans WHERE active = 1 AND (created, id) > (@fromCreated, @fromId) AND (created, id) <= (@toCreated, @toId)
  ORDER BY created, id)`;

/** The range `(from, to]` of a listing, from the start or to the end when null. */
export function listingRange(from: ListingKey | null, to: ListingKey | null): ListingRange {
  const a = from ?? LISTING_START;
  const b = to ?? LISTING_END;
  return { fromCreated: a.created, fromId: a.id, toCreated: b.created, toId: b.id };
}

/** Failure rows per INSERT statement when many are written at once. */
const FAILURES_PER_INSERT = 64;

/** Each entry migrates the schema from version i to i+1. */
const MIGRATIONS: string[] = [
  `CREATE TABLE bans (
     id INTEGER PRIMARY KEY,
     target TEXT NOT NULL,
     jail TEXT NOT NULL,
     created INTEGER NOT NULL,
     until INTEGER,
     reason TEXT NOT NULL,
     origin TEXT NOT NULL,
     evidence TEXT NOT NULL DEFAULT '[]',
     active INTEGER NOT NULL DEFAULT 1,
     lifted_at INTEGER,
     lift_reason TEXT
   );
   CREATE UNIQUE INDEX bans_active ON bans(jail, target) WHERE active = 1;
   CREATE INDEX bans_target ON bans(target);
   CREATE TABLE ban_counts (
     address TEXT NOT NULL,
     jail TEXT NOT NULL,
     count INTEGER NOT NULL,
     last INTEGER NOT NULL,
     PRIMARY KEY (address, jail)
   ) WITHOUT ROWID;
   CREATE TABLE failures (
     jail TEXT NOT NULL,
     address TEXT NOT NULL,
     time INTEGER NOT NULL,
     line TEXT NOT NULL
   );
   CREATE INDEX failures_key ON failures(jail, address);
   CREATE INDEX failures_time ON failures(time);
   CREATE TABLE positions (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL,
     updated INTEGER NOT NULL
   ) WITHOUT ROWID;`,
  // Fleet: decisions waiting to be published to Redis (kept while Redis is unreachable, in order).
  `CREATE TABLE fleet_outbox (
     id INTEGER PRIMARY KEY,
     message TEXT NOT NULL,
     created INTEGER NOT NULL
   );`,
  // Failures are found by id (the counters hold them), not by address: an index on the address takes
  // one random page write per failure and slows a botnet's million addresses down 4×. What a long-window
  // ban clears by address is remembered as a tombstone instead.
  `DROP INDEX failures_key;
   CREATE TABLE failures_cleared (
     jail TEXT NOT NULL,
     address TEXT NOT NULL,
     before INTEGER NOT NULL,
     PRIMARY KEY (jail, address)
   ) WITHOUT ROWID;`,
  // `banned` lists a million bans in creation order without sorting them.
  `CREATE INDEX bans_listing ON bans(created, id) WHERE active = 1;`,
  // Ban counts are counted from the bans themselves (never deleted), through an index on the target:
  // two upserts per ban in a table of their own cost a flood of bans an eighth of its commit time.
  `DROP TABLE ban_counts;
   DROP INDEX bans_target;
   CREATE INDEX bans_target ON bans(target, jail);`,
];

/** Which active bans in force a listing wants (`''` = any); `reason` and `text` are lower case. */
export interface BanFilter {
  now: number;
  jail: string;
  /** The target starts with this text. */
  targetPrefix: string;
  /** The reason contains this (lower case). */
  reason: string;
  /** The target, or the jail, reason or origin in lower case, contains this. */
  text: string;
}

const BAN_FILTER_SQL = `active = 1 AND (until IS NULL OR until > @now) AND (@jail = '' OR jail = @jail)
  AND (@targetPrefix = '' OR substr(target, 1, length(@targetPrefix)) = @targetPrefix)
  AND (@reason = '' OR instr(lower(reason), @reason) > 0)
  AND (@text = '' OR instr(target, @text) > 0 OR instr(lower(jail), @text) > 0 OR instr(lower(reason), @text) > 0 OR instr(lower(origin), @text) > 0)`;

export interface BanRecord {
  id: number;
  target: string;
  jail: string;
  time: number;
  until: number | null;
  reason: string;
  origin: string;
  evidence: string[];
  active: boolean;
  liftedAt: number | null;
  liftReason: string | null;
}

export interface FailureRow {
  /** Unique and increasing, handed out by the pipeline from nextFailureId(). */
  id: number;
  jail: string;
  address: string;
  time: number;
  line: string;
}

/**
 * Failures waiting for their commit, as columns. Under a backlog a batch holds tens of thousands
 * for up to a quarter of a second: as one object each they outlived the young generation and
 * filled the old one with garbage (~100 MB between major collections at a million attackers).
 */
export class FailureRows {
  readonly ids: number[] = [];
  readonly jails: string[] = [];
  readonly addresses: string[] = [];
  readonly times: number[] = [];
  readonly lines: string[] = [];

  static of(rows: readonly FailureRow[]): FailureRows {
    const out = new FailureRows();
    for (const r of rows) out.push(r.id, r.jail, r.address, r.time, r.line);
    return out;
  }

  get length(): number {
    return this.ids.length;
  }

  /**
   * The rows not consumed by a ban of the same commit: written, they would only be deleted again (in a
   * flood nearly all of them are). Sent to the writer thread, their lines would travel twice.
   */
  without(consumed: readonly number[]): FailureRows {
    // A ban may consume only rows of earlier commits: nothing here to filter then.
    if (consumed.length === 0 || this.ids.length === 0) return this;
    const gone = this.marks(consumed);
    const kept = new FailureRows();
    for (let r = 0; r < this.ids.length; r++) {
      const id = this.ids[r]!;
      if (!gone(id)) kept.push(id, this.jails[r]!, this.addresses[r]!, this.times[r]!, this.lines[r]!);
    }
    return kept;
  }

  /**
   * Whether an id is among `ids`. A batch's rows hold ids handed out in a row, so a byte per id of
   * their range does: a Set of a burst's 12,000 consumed ids cost 2.6 % of the pipeline's thread.
   */
  private marks(ids: readonly number[]): (id: number) => boolean {
    let low = Infinity;
    let high = -Infinity;
    for (const id of this.ids) {
      if (id < low) low = id;
      if (id > high) high = id;
    }
    const span = high - low + 1;
    if (!(span <= 4 * this.ids.length + 4096)) {
      const set = new Set(ids);
      return (id) => set.has(id);
    }
    const marked = new Uint8Array(span);
    for (const id of ids) if (id >= low && id <= high) marked[id - low] = 1;
    return (id) => marked[id - low] === 1;
  }

  push(id: number, jail: string, address: string, time: number, line: string): void {
    this.ids.push(id);
    this.jails.push(jail);
    this.addresses.push(address);
    this.times.push(time);
    this.lines.push(line);
  }
}

const EMPTY_ROWS = new FailureRows();

/**
 * Per ban evidence array with placeholders (StoredEvidence.lines): its filled-in lines. The caller's
 * arrays get them only once the commit is done, so a batch that failed can be committed again as it was.
 */
type FilledEvidence = Map<string[], string[]>;
const NO_EVIDENCE: FilledEvidence = new Map();

function fillIn(filled: FilledEvidence): void {
  for (const [lines, full] of filled) lines.splice(0, lines.length, ...full);
}

/** Why a commit failed, as it crosses threads. */
export interface CommitFailure {
  message: string;
  /** The disk or its permissions, which the admin can fix while the daemon runs: the batch is worth committing again. */
  transient: boolean;
}

/** SQLite's result codes for a disk that is full, failing, read-only or busy: not the batch's fault. */
const TRANSIENT_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|PROTOCOL|NOLFS)/;

/** A batch could not be committed; nothing of it was written. */
export class StateWriteError extends PortcullisError {
  override name = 'StateWriteError';
  readonly transient: boolean;

  constructor(path: string, cause: unknown) {
    const code = (cause as { code?: unknown }).code;
    const transient = typeof code === 'string' && TRANSIENT_CODES.test(code);
    const fix = transient ? 'free disk space or fix permissions: Portcullis keeps the batch and those after it in memory and commits them again, in order, once it can'
      : typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code) ? 'the file is damaged: stop Portcullis and move it aside (a new one is made at start, without the old bans and history); the batch is dropped'
        : 'the batch is dropped (please report this message)';
    super(`cannot write to the state database ${path}: ${(cause as Error).message}; nothing from this batch was saved — ${fix}`);
    this.transient = transient;
  }

  failure(): CommitFailure {
    return { message: this.message, transient: this.transient };
  }
}

/**
 * A ban's evidence lines that are in the failure log: `lines` (the ban's evidence array) starts with
 * one placeholder per id; the commit replaces them with the stored lines, before the ban row is
 * written, and leaves out lines pruned meanwhile.
 */
export interface StoredEvidence {
  lines: string[];
  ids: number[];
}

/** Everything one batch of lines (or one control command) changes, committed atomically. */
export interface StateChanges {
  checkpoints?: Checkpoint[];
  failuresAdded?: FailureRows;
  /**
   * Failures consumed by a ban: those added in the same commit are not written. Older ones stay
   * until pruned, covered by the ban's `failuresCleared` tombstone: deleting them one by one
   * rewrote pages already committed and cost a flood half its commit time.
   */
  failuresConsumed?: number[];
  /** Every failure of an address in a jail up to `before` (ms) stops counting: not restored after a restart. */
  failuresCleared?: Array<{ jail: string; address: string; before: number }>;
  bans?: Decision[];
  /** Placeholders in the evidence of `bans` to fill from the failure log, all read in one query. */
  evidenceToRead?: StoredEvidence[];
  unbans?: Array<{ jail: string; target: string; time: number; reason: string }>;
  /** Failures (and tombstones) older than this (ms) are deleted: the hourly prune. */
  pruneBefore?: number;
}


/** A batch that changes nothing: not worth a transaction, nor keeping. */
export function isEmptyChanges(c: StateChanges): boolean {
  return !c.checkpoints?.length && !c.failuresAdded?.length && !c.failuresConsumed?.length && !c.failuresCleared?.length
    && !c.bans?.length && !c.unbans?.length && c.pruneBefore === undefined;
}

interface BanRow {
  id: number; target: string; jail: string; created: number; until: number | null; reason: string;
  origin: string; evidence: string; active: number; lifted_at: number | null; lift_reason: string | null;
}

export class Store {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;
  /** One batch's effects, in a transaction (a savepoint inside another: commitGroup). Made once, run per batch. */
  private readonly applyInTransaction: (changes: StateChanges, now: number) => FilledEvidence;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
    this.stmts = {
      getPosition: db.prepare<[string], { value: string }>('SELECT value FROM positions WHERE key = ?'),
      setPosition: db.prepare('INSERT INTO positions(key, value, updated) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated = excluded.updated'),
      addFailure: db.prepare('INSERT INTO failures(rowid, jail, address, time, line) VALUES (?, ?, ?, ?, ?)'),
      addFailures: db.prepare(`INSERT INTO failures(rowid, jail, address, time, line) VALUES ${Array(FAILURES_PER_INSERT).fill('(?, ?, ?, ?, ?)').join(', ')}`),
      clearFailures: db.prepare('INSERT INTO failures_cleared(jail, address, before) VALUES (?, ?, ?) ON CONFLICT(jail, address) DO UPDATE SET before = max(before, excluded.before)'),
      // A new ban replaces an active one for the same jail and target (e.g. a manual ban extending it).
      closeBan: db.prepare('UPDATE bans SET active = 0, lifted_at = ?, lift_reason = ? WHERE jail = ? AND target = ? AND active = 1'),
      addBan: db.prepare('INSERT INTO bans(target, jail, created, until, reason, origin, evidence) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      activeBans: db.prepare<[], BanRow>('SELECT * FROM bans WHERE active = 1 ORDER BY created, id'),
      bansInForce: db.prepare<[number], { target: string; jail: string; until: number | null }>('SELECT target, jail, until FROM bans WHERE active = 1 AND (until IS NULL OR until > ?)'),
      bansExpired: db.prepare<[number], { target: string; jail: string }>('SELECT target, jail FROM bans WHERE active = 1 AND until IS NOT NULL AND until <= ?'),
      activeListingRange: db.prepare<[ListingRange], Buffer | null>(ACTIVE_LISTING_RANGE_SQL).pluck(),
      activeListingEnd: db.prepare<[{ created: number; id: number; limit: number }], ListingKey>(`SELECT created, id FROM bans
        WHERE active = 1 AND (created, id) > (@created, @id) ORDER BY created, id LIMIT 1 OFFSET @limit - 1`),
      activeByJail: db.prepare<[], { jail: string; n: number }>('SELECT jail, count(*) AS n FROM bans WHERE active = 1 GROUP BY jail'),
      // Canonical targets: an IPv6 address or prefix has a colon, an IPv4 one never.
      activeByFamily: db.prepare<[], { jail: string; family: '4' | '6'; n: number }>("SELECT jail, CASE WHEN instr(target, ':') > 0 THEN '6' ELSE '4' END AS family, count(*) AS n FROM bans WHERE active = 1 GROUP BY jail, family"),
      activeByOrigin: db.prepare<[], { origin: string; n: number }>('SELECT origin, count(*) AS n FROM bans WHERE active = 1 GROUP BY origin'),
      activePrefixBans: db.prepare<[], BanRow>("SELECT * FROM bans WHERE active = 1 AND instr(target, '/') > 0 ORDER BY created, id"),
      activeEnds: db.prepare<[], { target: string; jail: string; until: number | null }>('SELECT target, jail, until FROM bans WHERE active = 1'),
      filteredCount: db.prepare<[BanFilter], number>(`SELECT count(*) FROM bans WHERE ${BAN_FILTER_SQL}`).pluck(),
      filteredPage: db.prepare<[BanFilter & { limit: number; offset: number }], BanRow>(`SELECT * FROM bans WHERE ${BAN_FILTER_SQL} ORDER BY created DESC, id DESC LIMIT @limit OFFSET @offset`),
      filteredTargets: db.prepare<[BanFilter], { id: number; target: string }>(`SELECT id, target FROM bans WHERE ${BAN_FILTER_SQL} ORDER BY created DESC, id DESC`),
      bansById: db.prepare<[string], BanRow>('SELECT * FROM bans WHERE id IN (SELECT value FROM json_each(?)) ORDER BY created DESC, id DESC'),
      activeTargets: db.prepare<[], string>('SELECT target FROM bans WHERE active = 1 GROUP BY target ORDER BY min(created), min(id)').pluck(),
      history: db.prepare<[{ target: string; jail: string; limit: number }], BanRow>("SELECT * FROM bans WHERE (@target = '' OR target = @target) AND (@jail = '' OR jail = @jail) ORDER BY created DESC, id DESC LIMIT @limit"),
      failuresSince: db.prepare<[number], FailureRow>(`SELECT rowid AS id, jail, address, time, line FROM failures f WHERE time >= ?
        AND NOT EXISTS (SELECT 1 FROM failures_cleared c WHERE c.jail = f.jail AND c.address = f.address AND c.before >= f.time) ORDER BY time, rowid`),
      pruneFailures: db.prepare('DELETE FROM failures WHERE time < ?'),
      pruneCleared: db.prepare('DELETE FROM failures_cleared WHERE before < ?'),
      failureLinesOf: db.prepare<[string], { id: number; line: string }>('SELECT rowid AS id, line FROM failures WHERE rowid IN (SELECT value FROM json_each(?))'),
      lastFailureId: db.prepare<[], number | null>('SELECT max(rowid) FROM failures').pluck(),
      banCount: db.prepare<[{ target: string; jail: string }], number>("SELECT count(*) FROM bans WHERE target = @target AND (@jail = '*' OR jail = @jail)").pluck(),
      totalBans: db.prepare<[], { jail: string; n: number }>('SELECT jail, count(*) AS n FROM bans GROUP BY jail'),
      bansSince: db.prepare<[number], { target: string; jail: string; time: number }>('SELECT target, jail, created AS time FROM bans WHERE created >= ? ORDER BY created, id'),
      outboxAdd: db.prepare('INSERT INTO fleet_outbox(message, created) VALUES (?, ?)'),
      outboxList: db.prepare<[number], { id: number; message: string }>('SELECT id, message FROM fleet_outbox ORDER BY id LIMIT ?'),
      outboxRemove: db.prepare('DELETE FROM fleet_outbox WHERE id <= ?'),
      outboxSize: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM fleet_outbox'),
    };
    this.applyInTransaction = db.transaction((changes: StateChanges, now: number): FilledEvidence => this.apply(changes, now));
  }

  /** Opens (creating if needed) `state.db` under `dir` and migrates it to the current schema. */
  static open(dir: string): Store {
    let db: Database.Database;
    const path = dir === ':memory:' ? ':memory:' : join(dir, 'state.db');
    try {
      if (dir !== ':memory:') mkdirSync(dir, { recursive: true, mode: 0o700 });
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      // A flood writes bans at random places in several indexes: keep them in memory (up to 16 MiB,
      // taken as needed; failures are appended in id order) and checkpoint the WAL every ~40 MB rather than every 4 MB.
      db.pragma('cache_size = -16384');
      db.pragma('wal_autocheckpoint = 10000');
    } catch (e) {
      throw new PortcullisError(`cannot open the state database ${path}: ${(e as Error).message}; check that state_dir exists and is writable by root, and that the disk is not full`);
    }
    migrate(db, path);
    return new Store(path, db);
  }

  /**
   * Opens an existing `state.db` under `dir` for reading only, beside a running daemon (WAL lets readers
   * and the writer work at once): for CLI commands that read state. Throws PortcullisError when there is
   * none, it cannot be read, or its schema is not this version's (the daemon migrates; a reader never does).
   */
  static openReadOnly(dir: string): Store {
    const path = join(dir, 'state.db');
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
    } catch (e) {
      throw new PortcullisError(`cannot read the state database ${path}: ${(e as Error).message}`);
    }
    let version = 0;
    try {
      version = Number(db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get()?.value ?? 0);
    } catch {
      // no meta table: not a database this version wrote
    }
    if (version !== SCHEMA_VERSION) {
      db.close();
      throw new PortcullisError(`the state database ${path} has schema version ${version}, this Portcullis reads ${SCHEMA_VERSION}; the daemon migrates it when it starts`);
    }
    return new Store(path, db);
  }

  getPosition(key: string): string | undefined {
    return this.stmts.getPosition.get(key)?.value;
  }

  /** Commits a batch's effects in one transaction. Throws StateWriteError (e.g. disk full) with nothing half-written. */
  commit(changes: StateChanges, now: number = Date.now()): void {
    let filled: FilledEvidence;
    try {
      filled = this.applyInTransaction(changes, now);
    } catch (e) {
      throw new StateWriteError(this.path, e);
    }
    fillIn(filled);
  }

  /**
   * Commits several batches, in order, in one transaction, each in a savepoint of its own: a batch
   * that fails is left out with its error, and if the transaction fails (disk full) every batch gets
   * the error. A batch that fails for a transient reason (disk full) takes the batches after it with it,
   * so that they are kept and committed again in order. A writer that has fallen behind catches up this
   * way: the index pages a flood's bans dirty are written once per group, not once per batch.
   */
  commitGroup(batches: ReadonlyArray<{ changes: StateChanges; now: number }>): Array<CommitFailure | null> {
    const errors: Array<CommitFailure | null> = batches.map(() => null);
    const filled: FilledEvidence[] = [];
    try {
      this.db.transaction(() => {
        let transient: CommitFailure | null = null;
        batches.forEach((b, i) => {
          if (transient !== null) {
            errors[i] = transient;
            return;
          }
          try {
            filled.push(this.applyInTransaction(b.changes, b.now));
          } catch (e) {
            errors[i] = new StateWriteError(this.path, e).failure();
            if (errors[i]!.transient) transient = errors[i]!;
          }
        });
      })();
    } catch (e) {
      const failure = new StateWriteError(this.path, e).failure();
      return batches.map(() => failure);
    }
    for (const f of filled) fillIn(f);
    return errors;
  }

  private apply(changes: StateChanges, now: number): FilledEvidence {
    const s = this.stmts;
    this.addFailures((changes.failuresAdded ?? EMPTY_ROWS).without(changes.failuresConsumed ?? []));
    for (const c of changes.failuresCleared ?? []) s.clearFailures.run(c.jail, c.address, c.before);
    for (const u of changes.unbans ?? []) s.closeBan.run(u.time, u.reason, u.jail, u.target);
    const filled = changes.evidenceToRead?.length ? this.readEvidence(changes.evidenceToRead) : NO_EVIDENCE;
    for (const b of changes.bans ?? []) {
      const evidence = (b.evidence && filled.get(b.evidence)) ?? b.evidence ?? [];
      const row = [b.target, b.jail, b.time, b.until, b.reason, b.origin, JSON.stringify(evidence)];
      try {
        s.addBan.run(row);
      } catch (e) {
        // The target is still banned in the jail (bans_active is unique): the new ban replaces that one.
        // Closing first for every ban was a third of a burst's SQLite time, for addresses never banned.
        if ((e as { code?: string }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw e;
        s.closeBan.run(b.time, 'replaced by a new ban', b.jail, b.target);
        s.addBan.run(row);
      }
    }
    for (const c of changes.checkpoints ?? []) s.setPosition.run(c.key, c.value, now);
    if (changes.pruneBefore !== undefined) this.pruneFailures(changes.pruneBefore);
    return filled;
  }

  /** Inserts failure rows, many per statement: at flood rates the per-statement cost dominates. */
  private addFailures(added: FailureRows): void {
    const { ids, jails, addresses, times, lines } = added;
    const params: Array<string | number> = [];
    for (let r = 0; r < ids.length; r++) {
      params.push(ids[r]!, jails[r]!, addresses[r]!, times[r]!, lines[r]!);
      if (params.length === 5 * FAILURES_PER_INSERT) {
        this.stmts.addFailures.run(params);
        params.length = 0;
      }
    }
    for (let p = 0; p < params.length; p += 5) this.stmts.addFailure.run(params.slice(p, p + 5));
  }

  /** Each ban's evidence with its placeholders replaced by the stored lines; lines pruned meanwhile are left out. */
  private readEvidence(pending: readonly StoredEvidence[]): FilledEvidence {
    const found = this.failureLines(pending.flatMap((p) => p.ids));
    const filled: FilledEvidence = new Map();
    for (const { lines, ids } of pending) {
      // The batch's own lines follow the stored ones.
      filled.set(lines, [...ids.flatMap((id) => found.get(id) ?? []), ...lines.slice(ids.length)]);
    }
    return filled;
  }

  /** Every active ban with its evidence, oldest first: for tests and small stores (the daemon asks narrower questions). */
  activeBans(): BanRecord[] {
    return this.stmts.activeBans.all().map(toRecord);
  }

  /** Active bans not yet expired at `now`, only what a firewall needs: the periodic reconcile reads them all, so no evidence. */
  bansInForce(now: number): Array<{ target: string; jail: string; until: number | null }> {
    return this.stmts.bansInForce.all(now);
  }

  /** Active bans whose time is up at `now` (to lift them at start). */
  bansExpired(now: number): Array<{ target: string; jail: string }> {
    return this.stmts.bansExpired.all(now);
  }

  /**
   * Where a page of `limit` active bans after `after` ends (the key of its last ban), oldest first; null
   * when fewer than `limit` are left, so the page runs to the end. Listing pages by these keys lists
   * a million bans in pieces between which the daemon goes on working; bans made or lifted meanwhile
   * may or may not be listed, none twice.
   */
  activeListingEnd(after: ListingKey | null, limit: number): ListingKey | null {
    return this.stmts.activeListingEnd.get({ ...(after ?? LISTING_START), limit }) ?? null;
  }

  /** The active bans in `(from, to]` as JSON (see ACTIVE_LISTING_RANGE_SQL); null when there are none. */
  activeListingRange(from: ListingKey | null, to: ListingKey | null): Buffer | null {
    return this.stmts.activeListingRange.get(listingRange(from, to)) ?? null;
  }

  /** Active bans per jail. */
  activeBansByJail(): Map<string, number> {
    return new Map(this.stmts.activeByJail.all().map((r) => [r.jail, r.n]));
  }

  /** Active bans per jail and address family (IPv4 `4`, IPv6 `6`). */
  activeBansByFamily(): Array<{ jail: string; family: '4' | '6'; n: number }> {
    return this.stmts.activeByFamily.all();
  }

  /** Active bans per origin (this node, another node of the fleet, `cli`…). */
  activeBansByOrigin(): Map<string, number> {
    return new Map(this.stmts.activeByOrigin.all().map((r) => [r.origin, r.n]));
  }

  /** Active bans of a prefix (CIDR) rather than one address: netblock escalation, manual CIDR bans. */
  activePrefixBans(): BanRecord[] {
    return this.stmts.activePrefixBans.all().map(toRecord);
  }

  /** Every active ban's end, expired or not, without reason or evidence. */
  activeBanEnds(): Array<{ target: string; jail: string; until: number | null }> {
    return this.stmts.activeEnds.all();
  }

  /**
   * A page of the active bans in force that `filter` wants, newest first, and how many it wants in all.
   * SQLite filters, counts and pages: a million bans never become records here.
   */
  activeBansPage(filter: BanFilter, offset: number, limit: number): BanRecord[] {
    return this.stmts.filteredPage.all({ ...filter, offset, limit }).map(toRecord);
  }

  /** How many bans in force `filter` wants: a count over every one of them (0.3 s at a million). */
  activeBansCount(filter: BanFilter): number {
    return this.stmts.filteredCount.get(filter) ?? 0;
  }

  /** The ids and targets of the active bans in force that `filter` wants, newest first (to filter further by network). */
  activeBanTargets(filter: BanFilter): Array<{ id: number; target: string }> {
    return this.stmts.filteredTargets.all(filter);
  }

  /** These bans, newest first. */
  bansById(ids: readonly number[]): BanRecord[] {
    return ids.length === 0 ? [] : this.stmts.bansById.all(JSON.stringify(ids)).map(toRecord);
  }

  /** The targets with an active ban in some jail. */
  activeTargets(): string[] {
    return this.stmts.activeTargets.all();
  }

  history(options: { target?: string; jail?: string; limit?: number } = {}): BanRecord[] {
    return this.stmts.history.all({ target: options.target ?? '', jail: options.jail ?? '', limit: options.limit ?? 100 }).map(toRecord);
  }

  /** The id to give the next failure: ids increase for the life of the database. */
  nextFailureId(): number {
    return (this.stmts.lastFailureId.get() ?? 0) + 1;
  }

  /** Pending failures newer than `since` that still count, oldest first (to rebuild counters after a restart). */
  failuresSince(since: number): FailureRow[] {
    return this.stmts.failuresSince.all(since);
  }

  /** The lines of the failures with these ids, by id; ids no longer stored are absent. One query for any number. */
  failureLines(ids: readonly number[]): Map<number, string> {
    const lines = new Map<number, string>();
    if (ids.length === 0) return lines;
    for (const r of this.stmts.failureLinesOf.iterate(JSON.stringify(ids))) lines.set(r.id, r.line);
    return lines;
  }

  pruneFailures(before: number): void {
    this.stmts.pruneFailures.run(before);
    this.stmts.pruneCleared.run(before);
  }

  /** How many times `address` was banned in `jail` (`*` = across all jails). */
  banCount(address: string, jail = '*'): number {
    return this.stmts.banCount.get({ target: address, jail }) ?? 0;
  }

  /** Bans made since `time` (active or not), oldest first: to rebuild escalation and recidive windows after a restart. */
  bansSince(time: number): Array<{ target: string; jail: string; time: number }> {
    return this.stmts.bansSince.all(time);
  }

  totalBansByJail(): Map<string, number> {
    return new Map(this.stmts.totalBans.all().map((r) => [r.jail, r.n]));
  }

  /** Queues a fleet message for publishing; returns its id (increasing). */
  outboxAdd(message: string, now: number = Date.now()): number {
    return Number(this.stmts.outboxAdd.run(message, now).lastInsertRowid);
  }

  /** The oldest queued fleet messages. */
  outboxList(limit: number): Array<{ id: number; message: string }> {
    return this.stmts.outboxList.all(limit);
  }

  /** Forgets queued fleet messages up to and including `id` (they were published). */
  outboxRemoveThrough(id: number): void {
    this.stmts.outboxRemove.run(id);
  }

  outboxSize(): number {
    return this.stmts.outboxSize.get()?.n ?? 0;
  }

  close(): void {
    this.db.close();
  }
}

/**
 * SQL for a column of epoch milliseconds as ISO 8601 text with milliseconds, as Date.toISOString() writes it;
 * NULL stays NULL. datetime() with 'subsec' costs 0.45 µs where datetime() plus the milliseconds cut from
 * the integer cost 0.63 and strftime('%f') 1.1 (a million times each, one core). The column must hold integers.
 */
function isoTime(column: string): string {
  return `replace(datetime(${column} / 1000.0, 'unixepoch', 'subsec'), ' ', 'T') || 'Z'`;
}

function toRecord(r: BanRow): BanRecord {
  return {
    id: r.id, target: r.target, jail: r.jail, time: r.created, until: r.until, reason: r.reason, origin: r.origin,
    evidence: JSON.parse(r.evidence) as string[], active: r.active === 1, liftedAt: r.lifted_at, liftReason: r.lift_reason,
  };
}

function migrate(db: Database.Database, path: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
  const row = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
  const version = row ? Number(row.value) : 0;
  if (version > MIGRATIONS.length) {
    throw new PortcullisError(`the state database ${path} has schema version ${version}, newer than this Portcullis understands (${MIGRATIONS.length}); upgrade Portcullis or move the database aside`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(v + 1));
    })();
  }
}

export const SCHEMA_VERSION = MIGRATIONS.length;
