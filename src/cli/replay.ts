import type { Config } from '../config/load.js';
import type { Decision, LogLine } from '../core/types.js';
import { EnvelopeParser } from '../sources/envelope.js';
import { Pipeline } from '../daemon/pipeline.js';
import { readLines } from '../sources/read-lines.js';
import { AllowlistResolver } from '../policy/allowlist.js';

/**
 * `replay`: the whole pipeline over existing logs at full speed, on the lines'
 * own timestamps, with nothing enforced — every decision is printed.
 */

export interface ReplaySummary {
  lines: number;
  matched: number;
  decisions: number;
  bans: number;
  seconds: number;
}

export async function replay(
  config: Config,
  inputs: string[],
  options: {
    onDecision: (d: Decision) => void; onProgress?: (bytes: number) => void; now?: () => number; includeHostAddresses?: boolean;
    /** Told what the admin should know that is not a decision (a netblock not banned because it covers an allowlisted address). */
    onNotice?: (message: string) => void;
  },
): Promise<ReplaySummary> {
  const jails = config.jails.filter((j) => j.enabled);
  // Allowlist names and files are resolved once, as they are now: replay shows what today's allowlist would have let in.
  const allowlistResolver = new AllowlistResolver({ ...(config.dns?.servers.length ? { servers: config.dns.servers, dnsTimeoutMs: config.dns.timeoutMs } : {}) });
  const pipeline = new Pipeline({ jails, globalIgnore: config.ignoreip, mode: 'replay', origin: 'replay', includeHostAddresses: options.includeHostAddresses ?? true,
    ...(options.onNotice ? { onNotice: options.onNotice } : {}),
    allowlist: config.allowlist ?? [], allowlistResolver,
  });
  await allowlistResolver.start();
  allowlistResolver.stop();
  pipeline.addRoute('replay', jails.map((j) => j.name));
  const parser = new EnvelopeParser(options.now ? { now: options.now } : {});
  const started = process.hrtime.bigint();
  let decisions = 0;
  let bans = 0;
  const flush = (): void => {
    for (const d of pipeline.take().decisions) {
      decisions++;
      if (d.action === 'ban') bans++;
      options.onDecision(d);
    }
  };
  for (const input of inputs) {
    const source = input === '-' ? 'stdin' : `file:${input}`;
    let n = 0;
    await readLines(input, config.maxLineLength, (text: string) => {
      const line: LogLine = parser.parse(text, source);
      line.lineNo = ++n;
      pipeline.process(line, 'replay');
      flush();
    }, options.onProgress);
  }
  flush();
  return {
    lines: pipeline.linesProcessed, matched: pipeline.linesMatched, decisions, bans,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}

