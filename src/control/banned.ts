import type { ListingKey, Store } from '../state/store.js';

/** Bans per page: SQLite builds a page in ~25 ms, and the daemon works on between pages. */
const LISTING_PAGE = 20_000;

/**
 * Every active ban, oldest first, as a JSON array of `{target, jail, time, until,
 * reason, origin}`, in pieces: each page serialised by SQLite when the previous
 * one has been sent.
 */
export function* bannedJson(store: Store, pageSize = LISTING_PAGE): Generator<string | Buffer> {
  yield '[';
  let after: ListingKey | null = null;
  for (;;) {
    const page = store.activeListingPage(after, pageSize);
    if (page === null) break;
    if (after !== null) yield ',';
    yield page.json;
    if (page.next === null) break;
    after = page.next;
  }
  yield ']';
}
