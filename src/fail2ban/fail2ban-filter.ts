import { canonicalAddress } from '../core/address.js';
import { ConfigError } from '../core/errors.js';
import type { LogLine } from '../core/types.js';
import type { Filter, FilterMatch } from '../filters/filter.js';
import { Fail2banConfigError } from './config-stack.js';
import { FailregexEngine, type EngineOptions, type Failure } from './engine.js';
import { DEFAULT_FAIL2BAN_DIR, parseFilterSpec, readFilter, type FilterDefinition } from './filter-reader.js';
import { OptionSyntaxError } from './options.js';
import { DatePatternError } from './strptime.js';

/**
 * A fail2ban filter as a Portcullis filter, named in configs and on the
 * command line as
 *   - `fail2ban:NAME[opt=value, …]` — `/etc/fail2ban/filter.d/NAME.conf` (with
 *     its `.local`, `.d/` and includes), e.g. `fail2ban:sshd[mode=aggressive]`;
 *   - a path to a filter file with the same options, e.g.
 *     `/etc/fail2ban/filter.d/sshd.conf[mode=aggressive]`.
 * Options are fail2ban's filter options (`mode`, `logtype`, `__pam_auth`, …),
 * plus jail options fail2ban applies to the filter (`datepattern`, `maxlines`,
 * `logtimezone`).
 *
 * fail2ban filters expect the whole line (they find and cut the date
 * themselves and match the syslog header with `__prefix_line`), so this filter
 * reads every line of its sources, whatever the program, and runs on the raw
 * text; journal entries are given as `host program[pid]: message` with the
 * journal's time, as fail2ban's systemd backend does. A failure counts when
 * its id is an IP address; host names (fail2ban would resolve them) and other
 * ids are never banned and are only counted.
 */

export const FAIL2BAN_PREFIX = 'fail2ban:';

/** True when a `filters:` entry names a fail2ban filter rather than a built-in one. */
export function isFail2banFilterSpec(text: string): boolean {
  return text.startsWith(FAIL2BAN_PREFIX) || text.includes('/') || text.includes('[') || /\.(conf|local)$/.test(text);
}

export interface Fail2banFilterOptions extends EngineOptions {
  fail2banDir?: string;
}

export function loadFail2banDefinition(spec: string, fail2banDir = DEFAULT_FAIL2BAN_DIR): FilterDefinition {
  const text = spec.startsWith(FAIL2BAN_PREFIX) ? spec.slice(FAIL2BAN_PREFIX.length) : spec;
  return readFilter(parseFilterSpec(text), { fail2banDir });
}

export class Fail2banFilter implements Filter {
  readonly service: string;
  readonly programs = ['*'];
  readonly bareLines = true;
  readonly patterns: readonly string[];
  readonly engine: FailregexEngine;
  /** Failures whose id is a host name or another non-address id: recognised, never banned. */
  unbannable = 0;

  constructor(readonly name: string, readonly definition: FilterDefinition, options: EngineOptions = {}) {
    this.engine = new FailregexEngine(definition, options);
    this.service = definition.name.replace(/^.*\//, '').replace(/\.(conf|local)$/, '');
    this.patterns = this.engine.failregex.map((_, i) => `failregex ${i + 1}`);
  }

  get linesOverBudget(): number {
    return this.engine.stats.overBudgetLines;
  }

  match(line: LogLine): FilterMatch | null {
    let failures: readonly Failure[];
    if (line.source === 'journal' || line.source.startsWith('journal:')) {
      const head = `${line.host ?? ''} ${line.program ?? ''}${line.pid !== null ? `[${line.pid}]` : ''}: `;
      failures = this.engine.processLine(head + line.message, { time: line.time / 1000, timeText: '' });
    } else {
      failures = this.engine.processLine(line.raw);
    }
    for (const f of failures) {
      if (f.data.nofail) continue;
      const address = failureAddress(f);
      if (address === null) {
        this.unbannable++;
        continue;
      }
      const user = typeof f.data.user === 'string' ? f.data.user : null;
      const m: FilterMatch = { kind: 'auth-failure', address, user, pattern: this.patterns[f.regex]! };
      if (f.time !== null) m.time = Math.round(f.time * 1000);
      return m;
    }
    return null;
  }
}

/** The canonical address a failure names, or null (host name, `<F-ID>` text, subnet). */
export function failureAddress(f: Failure): string | null {
  if (f.idKind === 'dns') return null;
  const id = f.idKind === 'fid' ? (typeof f.data.ip === 'string' ? f.data.ip : f.id) : f.id;
  if (id.includes('/')) return null;
  return canonicalAddress(id);
}

/**
 * Loads a fail2ban filter for the pipeline, `test-filter` or `check`; errors
 * (missing file, bad syntax, a regex we cannot translate) become
 * ConfigErrors pointing into the fail2ban files.
 */
export function createFail2banFilter(spec: string, options: Fail2banFilterOptions = {}): Fail2banFilter {
  let definition: FilterDefinition;
  try {
    definition = loadFail2banDefinition(spec, options.fail2banDir);
  } catch (e) {
    throw toConfigError(spec, e);
  }
  let filter: Fail2banFilter;
  try {
    filter = new Fail2banFilter(spec, definition, options);
  } catch (e) {
    throw toConfigError(spec, e, definition.datepattern ?? undefined);
  }
  const first = filter.engine.problems[0];
  if (first) throw new ConfigError(first.file, first.line, 1, `fail2ban filter ${spec}: ${first.message.slice(first.message.indexOf(': ') + 2)}${filter.engine.problems.length > 1 ? ` (and ${filter.engine.problems.length - 1} more)` : ''}`);
  return filter;
}

function toConfigError(spec: string, e: unknown, at?: { file: string; line: number }): Error {
  if (e instanceof Fail2banConfigError) return new ConfigError(e.file, Math.max(e.line, 1), 1, `fail2ban filter ${spec}: ${e.reason}`);
  if (e instanceof OptionSyntaxError) return new ConfigError(spec, 1, 1, `fail2ban filter options: ${e.message}; write NAME[option=value, option2="value, with commas"]`);
  if (e instanceof DatePatternError) return new ConfigError(at?.file ?? spec, Math.max(at?.line ?? 1, 1), 1, `fail2ban filter ${spec}: ${e.message}`);
  return e as Error;
}
