import { programMatches, type Filter } from '../filters/filter.js';
import { builtinFilters, createFilter } from '../filters/index.js';
import { UsageError } from '../core/errors.js';
import { EnvelopeParser } from '../sources/envelope.js';
import { readLines } from '../sources/read-lines.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createFail2banFilter, FAIL2BAN_PREFIX, isFail2banFilterSpec } from '../fail2ban/fail2ban-filter.js';
import { DEFAULT_FAIL2BAN_DIR } from '../fail2ban/filter-reader.js';

/** `test-filter`: one filter over one file, counted like fail2ban-regex does. */

export interface FilterMatchRecord {
  line: number;
  time: string;
  address: string | null;
  user: string | null;
  filter: string;
  kind: string;
}

export interface FilterReport {
  filter: string;
  lines: number;
  matched: number;
  /** Lines of other programs: never offered to this filter. */
  ignored: number;
  /** Lines offered to the filter that it did not match. */
  missed: number;
  byPattern: Record<string, number>;
  byAddress: Record<string, number>;
  /** Long lines given up after the time budget of the filter's patterns (fail2ban filters; counted in `missed` too). */
  overBudget?: number;
  seconds: number;
}

/** A built-in filter, or a fail2ban filter: `fail2ban:NAME[opts]`, a filter file path, or a name only fail2ban has. */
export function resolveFilter(name: string): Filter {
  const f = createFilter(name);
  if (f) return f;
  if (isFail2banFilterSpec(name)) return createFail2banFilter(name);
  if (existsSync(join(DEFAULT_FAIL2BAN_DIR, 'filter.d', `${name}.conf`))) return createFail2banFilter(`${FAIL2BAN_PREFIX}${name}`);
  throw new UsageError(`unknown filter "${name}"; built-in filters: ${[...builtinFilters.keys()].join(', ')}; or a fail2ban filter as fail2ban:NAME[option=value] or a path to its .conf`);
}

export async function testFilter(
  filter: Filter,
  file: string,
  options: { maxLineLength: number; programs?: string[]; onMatch?: (m: FilterMatchRecord) => void; now?: () => number },
): Promise<FilterReport> {
  const parser = new EnvelopeParser(options.now ? { now: options.now } : {});
  const extra = new Set(options.programs ?? []);
  const offered = (program: string | null): boolean =>
    program === null ? filter.bareLines : extra.has(program) || filter.programs.some((p) => programMatches(p, program));
  const report: FilterReport = { filter: filter.name, lines: 0, matched: 0, ignored: 0, missed: 0, byPattern: Object.fromEntries(filter.patterns.map((p) => [p, 0])), byAddress: {}, seconds: 0 };
  const started = process.hrtime.bigint();
  const source = `file:${file}`;
  await readLines(file, options.maxLineLength, (text) => {
    const n = ++report.lines;
    const line = parser.parse(text, source);
    if (!offered(line.program)) { report.ignored++; return; }
    const m = filter.match(line);
    if (m === null) { report.missed++; return; }
    report.matched++;
    report.byPattern[m.pattern] = (report.byPattern[m.pattern] ?? 0) + 1;
    if (m.address !== null) report.byAddress[m.address] = (report.byAddress[m.address] ?? 0) + 1;
    options.onMatch?.({ line: n, time: new Date(m.time ?? line.time).toISOString(), address: m.address, user: m.user, filter: filter.name, kind: m.kind });
  });
  report.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (filter.linesOverBudget !== undefined) report.overBudget = filter.linesOverBudget;
  return report;
}
