import { spawn } from 'node:child_process';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PortcullisError } from '../core/errors.js';

/**
 * The one seam through which every enforcer runs external programs.
 * Commands are argv arrays handed to the kernel's exec: never a shell, so no
 * byte of log content can ever be interpreted as shell syntax. Unit tests
 * substitute a RecordingRunner; `inNetns` prefixes `ip netns exec NAME`.
 */

export interface RunOptions {
  /** Written to the program's stdin, which is then closed. */
  input?: string;
  /** Kill the program after this long (default 60 s). */
  timeoutMs?: number;
  /** Exit codes that count as success (default [0]). */
  okExitCodes?: readonly number[];
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface CommandRunner {
  /** Runs `command` with `args`; rejects with a typed error when it cannot start, times out or fails. */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<CommandResult>;
}

/** What to tell the admin when a program is missing. */
const INSTALL_HINTS: Record<string, string> = {
  nft: 'install the nftables package',
  iptables: 'install the iptables package',
  ip6tables: 'install the iptables package',
  'iptables-restore': 'install the iptables package',
  'ip6tables-restore': 'install the iptables package',
  ipset: 'install the ipset package',
  conntrack: 'install the conntrack package (conntrack-tools)',
  ss: 'install the iproute2 package',
  ip: 'install the iproute2 package',
  pfctl: 'pf exists on OpenBSD/FreeBSD only',
};

export class CommandNotFoundError extends PortcullisError {
  override name = 'CommandNotFoundError';
  constructor(readonly command: string) {
    super(`${command} not found: ${INSTALL_HINTS[command] ?? `install ${command} or fix PATH`}, or set enforcer: dry-run`);
  }
}

export class CommandFailedError extends PortcullisError {
  override name = 'CommandFailedError';
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    /** The program's exit status (not to be confused with `exitCode`, the one Portcullis itself should exit with). */
    readonly status: number,
    readonly stderr: string,
  ) {
    super(`${command} ${abbreviate(args)} failed with exit code ${status}: ${stderr.trim().slice(0, 2000) || '(no message)'}`);
  }
}

export class CommandTimeoutError extends PortcullisError {
  override name = 'CommandTimeoutError';
  constructor(readonly command: string, readonly args: readonly string[], readonly timeoutMs: number) {
    super(`${command} ${abbreviate(args)} did not finish within ${timeoutMs} ms and was killed`);
  }
}

function abbreviate(args: readonly string[]): string {
  const text = args.join(' ');
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** Runs programs for real, with `spawn` (no shell) and unbounded output buffers. */
export class ExecRunner implements CommandRunner {
  run(command: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const okExitCodes = options.okExitCodes ?? [0];
    return new Promise((resolve, reject) => {
      const inputFile = inputAsFile(options.input);
      let child;
      try {
        child = spawn(command, [...args], { shell: false, stdio: [inputFile ?? 'pipe', 'pipe', 'pipe'] });
      } finally {
        // The child holds its own copy of the descriptor.
        if (inputFile !== null) closeSync(inputFile);
      }
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      // Both are pipes (spawned so above).
      child.stdout!.on('data', (b: Buffer) => stdout.push(b));
      child.stderr!.on('data', (b: Buffer) => stderr.push(b));
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(err.code === 'ENOENT' ? new CommandNotFoundError(command) : err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (timedOut) return reject(new CommandTimeoutError(command, args, timeoutMs));
        const result = {
          exitCode: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
        };
        if (okExitCodes.includes(result.exitCode)) resolve(result);
        else reject(new CommandFailedError(command, args, result.exitCode, result.stderr));
      });
      if (child.stdin === null) return;
      // A program that exits without reading its input makes the write fail with EPIPE; its exit code tells the story.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input ?? '');
    });
  }
}

/** Inputs up to this size go through the pipe (a socket pair, whose buffer takes them at once); larger ones through a file. */
const PIPE_CAPACITY = 64 * 1024;
let inputFiles = 0;

/**
 * A large input as an unlinked temporary file open for reading from its start, for the child's stdin;
 * null for a small one, or when the file cannot be written (a full /tmp): then it goes through a pipe.
 * Through a pipe the rest of the input is written only when the event loop turns, which a burst of
 * log lines keeps busy for a chunk at a time: a megabyte for `nft -f -` (34,000 bans) took 0.6–0.9 s
 * to arrive instead of 0.4.
 */
function inputAsFile(input: string | undefined): number | null {
  if (input === undefined || input.length <= PIPE_CAPACITY / 4) return null;
  const bytes = Buffer.from(input);
  if (bytes.length <= PIPE_CAPACITY) return null;
  const path = join(tmpdir(), `portcullis-input-${process.pid}-${++inputFiles}`);
  let fd: number;
  try {
    fd = openSync(path, 'wx+', 0o600);
  } catch {
    return null;
  }
  try {
    unlinkSync(path);
    // At position 0 (pwrite): the descriptor's offset stays at the start, where the child reads from.
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, done);
    return fd;
  } catch {
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
    return null;
  }
}

/**
 * Runs every command inside network namespace `netns` (`ip netns exec NAME cmd…`),
 * for tests and for guarding a container's namespace. Without `netns`, returns `runner`.
 */
export function inNetns(runner: CommandRunner, netns: string | undefined): CommandRunner {
  if (netns === undefined) return runner;
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(netns) || netns.startsWith('-')) {
    throw new PortcullisError(`invalid network namespace name ${JSON.stringify(netns)}: use letters, digits, '.', '_' and '-'`, 2);
  }
  return {
    async run(command, args, options = {}) {
      const ok = options.okExitCodes ?? [0];
      try {
        return await runner.run('ip', ['netns', 'exec', netns, command, ...args], options);
      } catch (err) {
        // `ip netns exec` reports a missing program as exit 255 with this message.
        if (err instanceof CommandFailedError && !ok.includes(err.status) && err.stderr.includes(`exec of "${command}" failed: No such file or directory`)) {
          throw new CommandNotFoundError(command);
        }
        throw err;
      }
    },
  };
}

export interface RecordedCall {
  command: string;
  args: string[];
  input: string | undefined;
}

type CannedResponse = Partial<CommandResult> | ((call: RecordedCall) => Partial<CommandResult>);

/**
 * A runner for unit tests: records argv and stdin of every call and answers
 * with canned outputs (first matching rule wins; default: exit 0, no output).
 */
export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  private readonly rules: { match: (call: RecordedCall) => boolean; response: CannedResponse }[] = [];

  /** Answers calls for which `match` is true (a string matches `command args…` by prefix). */
  respond(match: string | ((call: RecordedCall) => boolean), response: CannedResponse): this {
    const test = typeof match === 'string' ? (c: RecordedCall) => [c.command, ...c.args].join(' ').startsWith(match) : match;
    this.rules.push({ match: test, response });
    return this;
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const call: RecordedCall = { command, args: [...args], input: options.input };
    this.calls.push(call);
    const rule = this.rules.find((r) => r.match(call));
    const partial = rule === undefined ? {} : typeof rule.response === 'function' ? rule.response(call) : rule.response;
    const result: CommandResult = { exitCode: partial.exitCode ?? 0, stdout: partial.stdout ?? '', stderr: partial.stderr ?? '' };
    if (result.exitCode === 127) throw new CommandNotFoundError(command);
    if (!(options.okExitCodes ?? [0]).includes(result.exitCode)) throw new CommandFailedError(command, args, result.exitCode, result.stderr);
    return result;
  }

  /** Every call as text, one per line, stdin indented below its command: the golden-file form. */
  transcript(): string {
    return this.calls
      .map((c) => {
        const line = `$ ${[c.command, ...c.args].map(quoteForDisplay).join(' ')}`;
        return c.input ? `${line}\n${c.input.replace(/\n$/, '').replace(/^/gm, '  | ')}` : line;
      })
      .join('\n') + '\n';
  }
}

/** Display-only quoting so transcripts show argument boundaries unambiguously. */
function quoteForDisplay(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
