import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { ACTIVE_LISTING_RANGE_SQL, type ListingRange } from '../state/store.js';

/**
 * A worker thread of `banned --json` (see banned.ts): builds pages of the
 * listing with a read-only connection of its own, so that SQLite formats
 * pages on several cores while the calling thread (the daemon's or the CLI's)
 * writes them out in order.
 */

export interface ListingJob extends ListingRange {
  page: number;
}

export interface ListingResult {
  page: number;
  /** The page's JSON objects joined by commas; empty when its bans are gone. */
  json: Uint8Array;
}

const db = new Database((workerData as { path: string }).path, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
const range = db.prepare<[ListingRange], Buffer | null>(ACTIVE_LISTING_RANGE_SQL).pluck();

parentPort!.on('message', (job: ListingJob) => {
  const json = range.get(job) ?? new Uint8Array(0);
  // Hand the page's memory over instead of copying it when the blob owns its whole buffer.
  const whole = json.byteOffset === 0 && json.buffer.byteLength === json.byteLength;
  const result: ListingResult = { page: job.page, json };
  parentPort!.postMessage(result, whole ? [json.buffer as ArrayBuffer] : []);
});
