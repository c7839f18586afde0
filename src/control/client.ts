import { createConnection } from 'node:net';
import { PortcullisError } from '../core/errors.js';
import type { ControlResponse } from './server.js';

/** Sends one request to the daemon's control socket and returns its result. */
export function callDaemon(socketPath: string, cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PortcullisError(`the daemon did not answer on ${socketPath} within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ cmd, args })}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const res = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      if (res.ok) resolve(res.result);
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
