import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LogLine } from '../../src/core/types.js';
import { FilterDispatch, type Filter } from '../../src/filters/filter.js';
import { EnvelopeParser } from '../../src/sources/envelope.js';

/** Reference time for yearless fixture lines: their dates fall in the first half of 2024. */
export const FIXTURE_NOW = new Date(2024, 5, 15, 12, 0, 0).getTime();

/**
 * Runs `filter` over the lines of test/fixtures/logs/NAME.log (or over `lines`) the way the pipeline
 * does — envelope first, then only if the program dispatches to the filter — and describes each outcome
 * as `ADDRESS KIND PATTERN`, or `-` when the line is not matched.
 */
export function outcomes(filter: Filter, source: string | readonly string[]): string[] {
  const lines = typeof source === 'string' ? fixtureLines(source) : source;
  const parser = new EnvelopeParser({ now: () => FIXTURE_NOW });
  const dispatch = new FilterDispatch([filter]);
  return lines.map((raw) => describe(filter, dispatch, parser.parse(raw, 'test')));
}

export function fixtureLines(name: string): string[] {
  const path = fileURLToPath(new URL(`../fixtures/logs/${name}.log`, import.meta.url));
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
}

/** A line of about 16 KiB: `head`, then `unit` repeated, then `tail`. */
export function hostile(head: string, unit: string, tail = '', length = 16 * 1024): string {
  const size = length - head.length - tail.length;
  return head + unit.repeat(Math.ceil(size / unit.length)).slice(0, size) + tail;
}

function describe(filter: Filter, dispatch: FilterDispatch, line: LogLine): string {
  if (!dispatch.forLine(line).includes(filter)) return '-';
  const m = filter.match(line);
  return m === null ? '-' : `${m.address} ${m.kind} ${m.pattern}`;
}
