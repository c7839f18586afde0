import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { PortcullisError } from '../core/errors.js';
import { LineSplitter } from './line-splitter.js';

/**
 * Reads a whole file (or `-` for standard input) line by line at full speed,
 * cutting lines longer than `maxLineLength` bytes. Used by `replay` and
 * `test-filter`, which read existing logs rather than follow them.
 */
export async function readLines(input: string, maxLineLength: number, onLine: (line: string) => void, onProgress?: (bytes: number) => void): Promise<void> {
  const stream: Readable = input === '-' ? process.stdin : createReadStream(input, { highWaterMark: 1 << 20 });
  const splitter = new LineSplitter(maxLineLength);
  let bytes = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      splitter.push(chunk, onLine);
      onProgress?.(bytes);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err instanceof PortcullisError) throw err;
    throw new PortcullisError(`cannot read ${input}: ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied (run as root?)' : err.message}`);
  }
  splitter.flush(onLine);
}
