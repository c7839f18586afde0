import type { FailureRows } from './store.js';

/**
 * The lines of the most recent failure rows, by id, within a budget of characters: ids run on from
 * batch to batch, so a batch is its first id and its lines, and a lookup is a binary search over
 * the batches kept. Batches whose ids do not run on (none the pipeline makes) are not kept.
 */
export class RecentLines {
  private readonly firsts: number[] = [];
  private readonly batches: string[][] = [];
  private chars = 0;
  private readonly sizes: number[] = [];

  constructor(private readonly budget: number) {}

  add(rows: FailureRows): void {
    const { ids, lines } = rows;
    const n = ids.length;
    if (n === 0 || ids[n - 1]! - ids[0]! !== n - 1) return;
    let size = 0;
    for (const l of lines) size += l.length;
    this.firsts.push(ids[0]!);
    this.batches.push(lines);
    this.sizes.push(size);
    this.chars += size;
    while (this.chars > this.budget && this.batches.length > 0) {
      this.chars -= this.sizes.shift()!;
      this.firsts.shift();
      this.batches.shift();
    }
  }

  get(id: number): string | undefined {
    let lo = 0;
    let hi = this.firsts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const first = this.firsts[mid]!;
      if (id < first) hi = mid - 1;
      else if (id >= first + this.batches[mid]!.length) lo = mid + 1;
      else return this.batches[mid]![id - first];
    }
    return undefined;
  }

  /** Characters of line text kept. */
  get size(): number {
    return this.chars;
  }
}
