import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogLine } from '../../src/core/types.js';
import type { BatchHandler, PositionLookup, SourceBatch } from '../../src/sources/source.js';

/** Polls `condition` until it holds; fails with `what` and the last `detail` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, detail: () => unknown = () => '', timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(detail())}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Plays the pipeline's part: keeps the lines and commits checkpoints as a store would. */
export class Collector implements PositionLookup {
  readonly lines: LogLine[] = [];
  readonly batches: SourceBatch[] = [];
  readonly positions: Map<string, string>;

  constructor(positions: Map<string, string> = new Map()) {
    this.positions = positions;
  }

  readonly handler: BatchHandler = (batch) => {
    this.batches.push(batch);
    this.lines.push(...batch.lines);
    for (const checkpoint of batch.checkpoints) this.positions.set(checkpoint.key, checkpoint.value);
  };

  getPosition(key: string): string | undefined {
    return this.positions.get(key);
  }

  raw(): string[] {
    return this.lines.map((l) => l.raw);
  }

  /** Waits until exactly `expected` lines arrived, then checks them. */
  async waitForCount(count: number): Promise<void> {
    await waitFor(() => this.lines.length >= count, `${count} lines`, () => this.raw());
  }
}

/** A fresh directory under the system's temp dir, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `portcullis-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
