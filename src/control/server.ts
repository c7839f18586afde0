import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { PortcullisError } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/**
 * The control socket: a Unix socket (mode 0600, so only root talks to the
 * daemon) carrying one JSON request per line and one JSON response per line.
 */

export interface ControlRequest {
  cmd: string;
  args?: Record<string, unknown>;
}

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string; exitCode: number };

/**
 * A result already serialised as JSON, in pieces made as they are sent: a listing
 * of a million bans goes out page by page instead of as one 160 MB string, and
 * the daemon's other work goes on between pages.
 */
export class JsonPieces {
  constructor(readonly pieces: Iterable<string | Buffer> | AsyncIterable<string | Buffer>) {}
}

export type ControlHandler = (req: ControlRequest) => unknown | Promise<unknown>;

export class ControlServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly path: string, private readonly handler: ControlHandler, private readonly log: Logger) {}

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    // A socket file left by a crashed daemon would make listen() fail with EADDRINUSE.
    if (existsSync(this.path)) {
      if (await isAlive(this.path)) throw new PortcullisError(`another Portcullis is already running on ${this.path}; stop it first or use a different control.socket`);
      unlinkSync(this.path);
    }
    const server = createServer((sock) => this.serve(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 1 << 20) return sock.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.answer(sock, text);
      }
    });
  }

  private async answer(sock: Socket, text: string): Promise<void> {
    let response: ControlResponse;
    try {
      const req = JSON.parse(text) as ControlRequest;
      if (typeof req?.cmd !== 'string') throw new PortcullisError('bad request: expected {"cmd": ...}', 2);
      const result = await this.handler(req);
      if (result instanceof JsonPieces) return await writePieces(sock, result.pieces);
      response = { ok: true, result };
    } catch (e) {
      const err = e as Error;
      if (!(err instanceof PortcullisError)) this.log.error(`control: ${err.stack ?? err.message}`);
      response = { ok: false, error: err.message, exitCode: err instanceof PortcullisError ? err.exitCode : 1 };
    }
    if (!sock.destroyed) sock.write(`${JSON.stringify(response)}\n`);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}

async function writePieces(sock: Socket, pieces: Iterable<string | Buffer> | AsyncIterable<string | Buffer>): Promise<void> {
  sock.write('{"ok":true,"result":');
  try {
    for await (const piece of pieces) {
      if (sock.destroyed) return;
      if (!sock.write(piece)) await drained(sock);
      // Let the pipeline run before the next piece is made.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } catch (err) {
    // Half an answer is out: cut the connection rather than append an error to it.
    sock.destroy();
    throw err;
  }
  if (!sock.destroyed) sock.write('}\n');
}

/** Resolves when the socket can take more, or is closed; leaves no listener behind. */
function drained(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      sock.off('drain', done).off('close', done);
      resolve();
    };
    sock.on('drain', done).on('close', done);
  });
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection(path);
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

