import { bannedJson } from '../control/banned.js';
import { Store } from '../state/store.js';

/**
 * `portcullis banned` from the state database itself, read-only beside the
 * daemon: a million bans are built by SQLite on every core and written
 * straight to stdout, without crossing the daemon's socket or its heap.
 * Null when the database cannot be read here (another user, another
 * version's schema, none yet): the caller asks the daemon instead.
 */
export async function bannedFromDatabase(stateDir: string): Promise<AsyncIterable<string | Buffer> | null> {
  let store: Store;
  try {
    store = Store.openReadOnly(stateDir);
  } catch {
    return null;
  }
  return (async function* () {
    try {
      yield* bannedJson(store);
    } finally {
      store.close();
    }
  })();
}

/** Writes every piece to `out`, waiting when it is full. */
export async function writeAll(pieces: AsyncIterable<string | Buffer>, out: NodeJS.WritableStream): Promise<void> {
  for await (const piece of pieces) {
    if (!out.write(piece)) await new Promise((resolve) => out.once('drain', resolve));
  }
}

export async function collect(pieces: AsyncIterable<string | Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const piece of pieces) parts.push(typeof piece === 'string' ? Buffer.from(piece) : piece);
  return Buffer.concat(parts).toString('utf8');
}
