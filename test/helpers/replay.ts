import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './daemon.js';

/**
 * `portcullis replay --json` over a generated log, for tests that assert the
 * decisions exactly. Generators write ISO-8601 lines so times are unambiguous.
 */

export interface JsonDecision { action: string; target: string; jail: string; time: string; until: string | null; reason: string }

export async function replayLines(configYaml: string, lines: readonly string[]): Promise<{ decisions: JsonDecision[]; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pc-replay-'));
  try {
    const config = join(dir, 'portcullis.yaml');
    const log = join(dir, 'generated.log');
    writeFileSync(config, configYaml);
    writeFileSync(log, `${lines.join('\n')}\n`);
    const r = await runCli(['replay', '--json', '--config', config, log]);
    assert.equal(r.code, 0, r.stderr);
    return { decisions: r.stdout.trim() ? r.stdout.trim().split('\n').map((l) => JSON.parse(l) as JsonDecision) : [], stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Milliseconds since the epoch → the ISO text replay prints. */
export const iso = (ms: number): string => new Date(ms).toISOString();

/** An sshd password failure at `ms`. */
export function sshFail(ms: number, address: string, user = 'root'): string {
  return `${iso(ms)} host sshd[1]: Failed password for ${user} from ${address} port 4242 ssh2`;
}

/** An sshd "Invalid user" line at `ms`. */
export function sshInvalid(ms: number, address: string, user: string): string {
  return `${iso(ms)} host sshd[1]: Invalid user ${user} from ${address} port 4242`;
}

/** The fields every exact assertion compares (the reason is matched separately). */
export function brief(d: JsonDecision): string {
  return `${d.action} ${d.target} ${d.jail} ${d.time} ${d.until ?? 'null'}`;
}
