import { createConnection } from 'node:net';
import { PortcullisError } from '../core/errors.js';
import type { ControlResponse } from './server.js';

/** Sends one request to the daemon's control socket and returns its result. */
export async function callDaemon(socketPath: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
  return JSON.parse(await callDaemonRaw(socketPath, cmd, args, timeoutMs)) as unknown;
}

const RESULT_PREFIX = '{"ok":true,"result":';

/** Like callDaemon, but returns the result as the JSON text the daemon sent (a million bans need not be parsed to be printed). */
export function callDaemonRaw(socketPath: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PortcullisError(`the daemon did not answer on ${socketPath} within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`${JSON.stringify({ cmd, args })}\n`));
    sock.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // The response is one line: only the newest chunk can end it.
      const nl = chunk.indexOf(10);
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const line = Buffer.concat(chunks).toString('utf8');
      const text = line.slice(0, line.indexOf('\n'));
      if (text.startsWith(RESULT_PREFIX)) return resolve(text.slice(RESULT_PREFIX.length, -1));
      const res = JSON.parse(text) as ControlResponse;
      if (res.ok) resolve(JSON.stringify(res.result));
      else reject(new PortcullisError(res.error, res.exitCode));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? `is the daemon running? (start it with \`portcullis run\`, or pass --config/--socket to find it)`
        : e.code === 'EACCES' ? 'the control socket is root-only: run this as root' : e.message;
      reject(new PortcullisError(`cannot reach the daemon at ${socketPath}: ${hint}`));
    });
  });
}
