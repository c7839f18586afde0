import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { callDaemon } from '../../src/control/client.js';

/** Runs the real `portcullis` CLI (through tsx, no build needed) for end-to-end tests. */

export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const IP = ['/usr/sbin/ip', '/usr/bin/ip', '/sbin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

export interface RunningDaemon {
  proc: ChildProcess;
  /** Everything the daemon wrote to stderr so far. */
  output(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

export function cliArgs(args: string[]): string[] {
  return ['--import', 'tsx', CLI, ...args];
}

/**
 * Starts `portcullis run ARGS` and waits until its control socket answers. With `netns`, the daemon runs
 * inside that network namespace (`ip netns exec` execs it, so `proc.pid` is the daemon itself) and every
 * firewall command it runs changes that namespace's ruleset only.
 */
export async function startDaemon(args: string[], socket: string, env: Record<string, string> = {}, options: { netns?: string } = {}): Promise<RunningDaemon> {
  const argv = cliArgs(['run', ...args]);
  const proc = options.netns === undefined
    ? spawn(process.execPath, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    // `ip` is looked up on the test's PATH: `env` may hand the daemon a PATH without it (the missing-nft test).
    : spawn(IP, ['netns', 'exec', options.netns, process.execPath, ...argv], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`daemon exited with ${proc.exitCode}:\n${out}`);
    return (await callDaemon(socket, 'ping').catch(() => null)) === 'pong';
  }, 20_000, () => `daemon did not come up:\n${out}`);
  return {
    proc,
    output: () => out,
    stop: async () => { proc.kill('SIGTERM'); return exited; },
    kill: async () => { proc.kill('SIGKILL'); await exited; },
  };
}

/** Polls `check` until it returns truthy; fails with `describe()` after `timeoutMs`. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10_000, describe: () => string = () => 'condition not met'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs the CLI to completion. */
export function runCli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, cliArgs(args), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(input ?? '');
  });
}
