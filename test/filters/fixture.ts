import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import type { EventKind, LogLine } from '../../src/core/types.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';
import { FilterDispatch, type Filter, type FilterMatch } from '../../src/filters/filter.js';

/** What a fixture line must give: `[kind, address]`, or absent for lines that must not match. */
export type Expected = Record<number, [EventKind, string | null]>;

const NOW = new Date(2024, 5, 15, 12, 0, 0).getTime();

/** Runs every line of test/fixtures/logs/NAME through the envelope, the dispatch and `filter` (fresh state each time). */
export function runFixture(name: string, filter: Filter): Array<{ lineNo: number; text: string; match: FilterMatch | null }> {
  const envelope = new EnvelopeParser({ now: () => NOW });
  const dispatch = new FilterDispatch([filter]);
  const text = readFileSync(new URL(`../fixtures/logs/${name}`, import.meta.url), 'utf8');
  return text
    .split('\n')
    .map((raw, i) => ({ raw, lineNo: i + 1 }))
    .filter(({ raw }) => raw !== '')
    .map(({ raw, lineNo }) => {
      const line = envelope.parse(raw, `file:${name}`);
      return { lineNo, text: raw, match: dispatch.forLine(line).length > 0 ? filter.match(line) : null };
    });
}

/** Asserts that exactly the expected fixture lines match, with their kind and address. */
export function assertFixture(name: string, filter: Filter, expected: Expected): void {
  for (const { lineNo, text, match } of runFixture(name, filter)) {
    const want = expected[lineNo];
    const got = match === null ? undefined : ([match.kind, match.address] as [EventKind, string | null]);
    assert.deepEqual(got, want, `${name}:${lineNo}: ${text}`);
  }
}

/** A message as the envelope would give it for `program` (for injection tests that need no timestamp). */
export function lineOf(message: string, program: string | null = null, pid: number | null = 1): LogLine {
  return { raw: message, time: NOW, timeFromLine: true, host: 'h', program, pid, message, source: 'test' };
}

/** Hostile bodies (16 KiB unless told): long runs of spaces, repeated `from `, digits and dots. */
export function hostileBodies(extra: readonly string[] = [], length = 16384): string[] {
  const fill = (unit: string) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
  return [' ', 'from ', '1', '1.', '.', '1.2.3.4 ', ' from 1.2.3.4 port 22', ':', '::1:', ...extra].map(fill);
}
