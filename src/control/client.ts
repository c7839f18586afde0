import { createConnection } from 'node:net';
import { PortcullisError } from '../core/errors.js';
import type { ControlResponse } from './server.js';

/** Sends one request to the daemon's control socket and returns its result. */
export async function callDaemon(socketPath: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
  return JSON.parse(await callDaemonRaw(socketPath, cmd, args, timeoutMs)) as unknown;
}

const RESULT_PREFIX = '{"ok":true,"result":';

/** Like callDaemon, but returns the result as the JSON text the daemon sent (a million bans need not be parsed to be printed). */
export async function callDaemonRaw(socketPath: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<string> {
  const chunks: Buffer[] = [];
  const collect: ResultSink = { write: (chunk) => chunks.push(Buffer.from(chunk)) > 0, once: () => undefined };
  await streamDaemonResult(socketPath, cmd, collect, args, timeoutMs);
  return Buffer.concat(chunks).toString('utf8');
}

/** Where a streamed result goes: process.stdout, or a collector. */
export interface ResultSink {
  write(chunk: Buffer | string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Sends one request and writes the result's JSON text to `out` as it arrives:
 * a million bans (200 MB) are neither held nor copied by the client.
 */
export function streamDaemonResult(socketPath: string, cmd: string, out: ResultSink, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const head: Buffer[] = [];
    let streaming = false;
    /** The last two bytes received: the response's closing `}` and newline are not part of the result. */
    let tail: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PortcullisError(`the daemon did not answer on ${socketPath} within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      sock.end();
      resolve();
    };
    // The last two bytes are held back until more comes (no copy of the chunks themselves).
    const emit = (data: Buffer): void => {
      if (data.length === 0) return;
      const done = data[data.length - 1] === 10;
      let flowing = true;
      let rest = data;
      // A one-byte chunk joins the held-back tail; a longer one lets the tail go first.
      if (data.length < 2) rest = Buffer.concat([tail, data]);
      else if (tail.length > 0) flowing = out.write(tail);
      const cut = rest.length - 2;
      if (cut > 0) flowing = out.write(rest.subarray(0, cut)) && flowing;
      tail = Buffer.from(rest.subarray(Math.max(0, cut)));
      if (!flowing) {
        sock.pause();
        out.once('drain', () => sock.resume());
      }
      if (done) finish();
    };
    sock.on('connect', () => sock.write(`${JSON.stringify({ cmd, args })}\n`));
    sock.on('data', (chunk: Buffer) => {
      if (streaming) return emit(chunk);
      head.push(chunk);
      const start = Buffer.concat(head);
      if (start.length < RESULT_PREFIX.length && start.indexOf(10) < 0) return;
      if (start.subarray(0, RESULT_PREFIX.length).toString('utf8') === RESULT_PREFIX) {
        streaming = true;
        return emit(start.subarray(RESULT_PREFIX.length));
      }
      // An error (or an unexpected answer): wait for the whole line.
      const nl = start.indexOf(10);
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const res = JSON.parse(start.subarray(0, nl).toString('utf8')) as ControlResponse;
      if (res.ok) {
        out.write(JSON.stringify(res.result));
        resolve();
      } else {
        reject(new PortcullisError(res.error, res.exitCode));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(unreachable(socketPath, e));
    });
    // After a complete answer this changes nothing (the promise is settled).
    sock.on('close', () => {
      clearTimeout(timer);
      reject(new PortcullisError(`the daemon at ${socketPath} closed the connection before the end of its answer (its log says why)`));
    });
  });
}

function unreachable(socketPath: string, e: NodeJS.ErrnoException): PortcullisError {
  const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
    ? `is the daemon running? (start it with \`portcullis run\`, or pass --config/--socket to find it)`
    : e.code === 'EACCES' ? 'the control socket is root-only: run this as root' : e.message;
  return new PortcullisError(`cannot reach the daemon at ${socketPath}: ${hint}`);
}
