import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, isIPv6, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { canonicalAddress, networkContains, type Network } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';
import type { LogLine } from '../core/types.js';
import { EnvelopeParser, type EnvelopeOptions } from './envelope.js';
import { DEFAULT_MAX_LINE_LENGTH, type BatchHandler, type Source, type SourceStatus } from './source.js';
import { trimOldest } from '../core/recency.js';

/**
 * Receives syslog over the network from devices that cannot run Portcullis
 * themselves (routers, appliances): UDP (RFC 5426), TCP (RFC 6587, octet-counted
 * and newline-framed, recognised per frame) and TLS (RFC 5425, optionally with
 * client certificates); RFC 3164 and RFC 5424 messages (the envelope parser
 * handles both).
 *
 * A syslog port is an injection vector (anyone who can send to it can write
 * "log lines" naming any address), so every sender is checked against an
 * allowlist of addresses/CIDRs before a byte of its message is parsed; what
 * unlisted senders send is dropped and counted. UDP sender addresses can be
 * spoofed by anyone on the path: where that matters, use TCP or, better, TLS
 * with client certificates.
 *
 * Robustness: a frame that is not syslog (no `<PRI>`), too long, or cut short
 * is counted and dropped; it never stops the receiver. Memory per connection is
 * bounded by `maxLineLength` (a longer frame is cut, its rest skipped), and the
 * number of connections by `maxConnections`.
 *
 * Lines carry the peer address in `LogLine.sender` (the `host` field is what the
 * sender claims). Syslog has no positions: what is sent while the daemon is
 * down is lost unless the sender queues it (rsyslog and syslog-ng over TCP do).
 */

export type SyslogProtocol = 'udp' | 'tcp' | 'tls';

export interface SyslogListen {
  protocol: SyslogProtocol;
  host: string;
  port: number;
  /** Canonical spelling, `udp://0.0.0.0:514`, `tcp://[::]:514`. */
  url: string;
}

const DEFAULT_PORTS: Record<SyslogProtocol, number> = { udp: 514, tcp: 514, tls: 6514 };
const LISTEN = /^(udp|tcp|tls):\/\/(\[[0-9A-Fa-f:.]+\]|[0-9.]+)(?::(\d{1,5}))?\/?$/;

/** Parses `udp://ADDR[:PORT]`, `tcp://…`, `tls://…` (IPv6 in brackets); null when it is not one. */
export function parseListen(text: string): SyslogListen | null {
  const m = LISTEN.exec(text.trim());
  if (!m) return null;
  const protocol = m[1] as SyslogProtocol;
  const host = canonicalAddress(m[2]!);
  if (host === null) return null;
  const port = m[3] === undefined ? DEFAULT_PORTS[protocol] : Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { protocol, host, port, url: `${protocol}://${isIPv6(host) ? `[${host}]` : host}:${port}` };
}

export const LISTEN_HELP = 'udp://ADDRESS:PORT, tcp://ADDRESS:PORT or tls://ADDRESS:PORT, e.g. udp://0.0.0.0:514 or tls://[::]:6514';

export interface SyslogTlsOptions {
  /** PEM files of the server's certificate (chain) and key. */
  cert: string;
  key: string;
  /** PEM file of the CA that signs client certificates: when given, senders must present one it signed. */
  ca?: string | null;
}

export interface SyslogSourceOptions {
  /** `udp://0.0.0.0:514`, `tcp://…`, `tls://…` (see parseListen). */
  listen: string;
  /** Senders whose lines are accepted; everything else is dropped and counted. */
  allow: readonly Network[];
  /** Required for `tls://`. */
  tls?: SyslogTlsOptions | null;
  /** Frames longer than this many bytes are cut to it. Default 16 KiB. */
  maxLineLength?: number;
  /** Open TCP/TLS connections at most; more are refused. Default 512. */
  maxConnections?: number;
  /**
   * `LogLine.source` of a sender's lines. Default `syslog:<listen url>` for all; the daemon
   * gives senders different sources when jails sharing this receiver accept different senders.
   */
  sourceOf?: (sender: string) => string;
  envelope?: EnvelopeOptions;
  id?: string;
}

export interface SyslogSenderStatus {
  address: string;
  lines: number;
  /** Lines in about the last minute. */
  perMinute: number;
  lastLineAt: number | null;
}

export interface SyslogSourceStatus extends SourceStatus {
  kind: 'syslog';
  listen: string;
  state: 'stopped' | 'listening' | 'failed';
  connections: number;
  /** Accepted senders, busiest first. */
  senders: SyslogSenderStatus[];
  dropped: {
    /** Frames (UDP) and connections (TCP/TLS) from senders not on the allowlist. */
    notAllowed: number;
    /** Frames that were not syslog (no `<PRI>`) or broke the framing. */
    malformed: number;
    /** Connections refused because maxConnections were open, or failed the TLS handshake. */
    refused: number;
    /** Frames longer than maxLineLength (cut, not dropped). */
    cut: number;
  };
  /** Unlisted senders seen, with how many frames/connections each sent (the most recent 64). */
  notAllowedSenders: Array<{ address: string; count: number }>;
}

const MAX_TRACKED_SENDERS = 1024;
const MAX_TRACKED_REJECTED = 64;
const MAX_PENDING_LINES = 1024;

/**
 * Splits a TCP byte stream into syslog frames (RFC 6587): a frame starting
 * with a digit is octet-counted (`LEN SP MSG`), anything else runs to LF.
 * Never holds more than `maxFrame` bytes of one frame.
 */
export class FrameDecoder {
  private state: 'start' | 'length' | 'octets' | 'line' | 'skip-line' = 'start';
  private length = 0;
  private lengthDigits = 0;
  private remaining = 0;
  private pieces: Buffer[] = [];
  private bytes = 0;
  private cut = false;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Buffer, cut: boolean) => void,
    private readonly onMalformed: (why: string) => void,
  ) {}

  /** Feeds bytes; returns false when the framing is lost beyond repair (the connection should be closed). */
  push(chunk: Buffer): boolean {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'start': {
          const c = chunk[i]!;
          // Stray line ends between frames (CRLF senders, NUL trailers) are not frames.
          if (c === 10 || c === 13 || c === 0) { i++; break; }
          if (c >= 48 && c <= 57) {
            this.state = 'length';
            this.length = 0;
            this.lengthDigits = 0;
          } else {
            this.state = 'line';
          }
          break;
        }
        case 'length': {
          const c = chunk[i]!;
          if (c >= 48 && c <= 57) {
            this.length = this.length * 10 + c - 48;
            // Nine digits and more would be a frame of a gigabyte: the stream is not syslog.
            if (++this.lengthDigits > 8) {
              this.onMalformed('octet count longer than 8 digits');
              return false;
            }
            i++;
          } else if (c === 32 && this.length > 0) {
            this.state = 'octets';
            this.remaining = this.length;
            i++;
          } else {
            this.onMalformed(`octet count followed by byte ${c} instead of a space`);
            this.state = 'skip-line';
          }
          break;
        }
        case 'octets': {
          const take = Math.min(this.remaining, chunk.length - i);
          this.keep(chunk.subarray(i, i + take));
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.emit();
          break;
        }
        case 'line': {
          const nl = chunk.indexOf(10, i);
          const end = nl < 0 ? chunk.length : nl;
          this.keep(chunk.subarray(i, end));
          i = end;
          if (nl >= 0) {
            i++;
            this.emit();
          } else if (this.cut) {
            // The frame is already as long as we keep: hand it over now, skip the rest of it.
            this.emit();
            this.state = 'skip-line';
          }
          break;
        }
        case 'skip-line': {
          const nl = chunk.indexOf(10, i);
          if (nl < 0) return true;
          i = nl + 1;
          this.state = 'start';
          break;
        }
      }
    }
    return true;
  }

  /** End of the stream: a last newline-framed line without its LF still counts; a cut-short counted frame does not. */
  end(): void {
    if (this.state === 'line' && this.bytes > 0) this.emit();
    else if (this.state === 'octets' || this.state === 'length') this.onMalformed('connection closed in the middle of an octet-counted frame');
    this.reset();
  }

  private keep(piece: Buffer): void {
    const room = this.maxFrame - this.bytes;
    if (piece.length > room) {
      this.cut = true;
      piece = piece.subarray(0, room);
    }
    if (piece.length === 0) return;
    // Copy: the chunk's memory is reused by the socket.
    this.pieces.push(Buffer.from(piece));
    this.bytes += piece.length;
  }

  private emit(): void {
    const frame = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.bytes);
    const cut = this.cut;
    this.reset();
    this.onFrame(frame, cut);
  }

  private reset(): void {
    this.state = 'start';
    this.pieces = [];
    this.bytes = 0;
    this.cut = false;
  }
}

interface SenderStats {
  lines: number;
  lastLineAt: number | null;
  minuteStart: number;
  thisMinute: number;
  lastMinute: number;
}

export class SyslogSource implements Source {
  readonly id: string;
  readonly listen: SyslogListen;
  private readonly allow: readonly Network[];
  private readonly tls: SyslogTlsOptions | null;
  private readonly maxLineLength: number;
  private readonly maxConnections: number;
  private readonly sourceOf: (sender: string) => string;
  private readonly envelope: EnvelopeParser;

  private onBatch: BatchHandler | null = null;
  private udp: UdpSocket | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private pending: LogLine[] = [];
  private flushScheduled = false;
  private state: SyslogSourceStatus['state'] = 'stopped';
  private error: string | null = null;
  private linesRead = 0;
  private readonly senders = new Map<string, SenderStats>();
  private readonly rejected = new Map<string, number>();
  private readonly dropped = { notAllowed: 0, malformed: 0, refused: 0, cut: 0 };

  constructor(options: SyslogSourceOptions) {
    const listen = parseListen(options.listen);
    if (listen === null) throw new PortcullisError(`syslog source: "${options.listen}" is not a listen address; use ${LISTEN_HELP}`, 2);
    if (listen.protocol === 'tls' && !options.tls) throw new PortcullisError(`syslog source ${listen.url}: tls:// needs tls: { cert: FILE, key: FILE } (and ca: FILE to require client certificates)`, 2);
    this.listen = listen;
    this.id = options.id ?? `syslog:${listen.url}`;
    this.allow = options.allow;
    this.tls = options.tls ?? null;
    this.maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    this.maxConnections = options.maxConnections ?? 512;
    const source = `syslog:${listen.url}`;
    this.sourceOf = options.sourceOf ?? (() => source);
    this.envelope = new EnvelopeParser(options.envelope);
  }

  async start(onBatch: BatchHandler): Promise<void> {
    if (this.onBatch !== null) throw new Error(`syslog source ${this.id} started twice`);
    this.onBatch = onBatch;
    try {
      if (this.listen.protocol === 'udp') await this.startUdp();
      else await this.startStream();
      this.state = 'listening';
    } catch (e) {
      this.state = 'failed';
      this.onBatch = null;
      const err = e as NodeJS.ErrnoException;
      const how = err.code === 'EADDRINUSE' ? 'the port is already in use (another syslog daemon? `ss -lunpt` shows which)'
        : err.code === 'EACCES' ? 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
        : err.code === 'EADDRNOTAVAIL' ? 'this host has no such address'
        : err.message;
      this.error = `cannot listen on ${this.listen.url}: ${how}`;
      throw new PortcullisError(`syslog source: ${this.error}`);
    }
  }

  private startUdp(): Promise<void> {
    const socket = createSocket({ type: isIPv6(this.listen.host) ? 'udp6' : 'udp4' });
    this.udp = socket;
    socket.on('message', (msg, rinfo) => {
      const sender = canonicalAddress(rinfo.address);
      if (sender === null || !this.allowed(sender)) return this.reject(sender ?? rinfo.address);
      this.receive(msg, sender, msg.length > this.maxLineLength);
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.listen.port, this.listen.host, () => {
        socket.off('error', reject);
        // Runtime errors on a bound UDP socket (ICMP noise) are not fatal; keep them for status.
        socket.on('error', (e) => (this.error = `${this.listen.url}: ${e.message}`));
        try {
          socket.setRecvBufferSize(4 << 20);
        } catch {
          // Capped by net.core.rmem_max: the default buffer still works, it only drops sooner under floods.
        }
        resolve();
      });
    });
  }

  private startStream(): Promise<void> {
    let server: Server;
    if (this.listen.protocol === 'tls') {
      const tls = this.tls!;
      const read = (what: string, file: string): Buffer => {
        try {
          return readFileSync(file);
        } catch (e) {
          throw new PortcullisError(`syslog source ${this.listen.url}: cannot read the TLS ${what} ${file}: ${(e as Error).message}`);
        }
      };
      const ca = tls.ca ? read('CA certificate', tls.ca) : undefined;
      server = createTlsServer({
        cert: read('certificate', tls.cert),
        key: read('key', tls.key),
        ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
        minVersion: 'TLSv1.2',
        handshakeTimeout: 10_000,
      });
      server.on('secureConnection', (s: TLSSocket) => this.serve(s));
      server.on('tlsClientError', (_e: Error, s: TLSSocket) => {
        // Unlisted senders were already counted (and cut off) on connection.
        const sender = canonicalAddress(s.remoteAddress ?? '');
        if (sender !== null && this.allowed(sender)) this.dropped.refused++;
      });
      // Refuse unlisted senders before spending a handshake on them.
      server.on('connection', (s: Socket) => {
        const sender = canonicalAddress(s.remoteAddress ?? '');
        if (sender === null || !this.allowed(sender)) {
          this.reject(sender ?? String(s.remoteAddress));
          s.destroy();
        }
      });
    } else {
      server = createTcpServer((s) => this.serve(s));
    }
    server.maxConnections = this.maxConnections;
    server.on('drop', () => this.dropped.refused++);
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: this.listen.port, host: this.listen.host, ipv6Only: false }, () => {
        server.off('error', reject);
        server.on('error', (e) => (this.error = `${this.listen.url}: ${e.message}`));
        resolve();
      });
    });
  }

  private serve(socket: Socket): void {
    if (socket.destroyed) return;
    const sender = canonicalAddress(socket.remoteAddress ?? '');
    if (sender === null || !this.allowed(sender)) {
      this.reject(sender ?? String(socket.remoteAddress));
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    const decoder = new FrameDecoder(
      this.maxLineLength,
      (frame, cut) => this.receive(frame, sender, cut),
      () => this.dropped.malformed++,
    );
    socket.on('data', (chunk: Buffer) => {
      if (!decoder.push(chunk)) socket.destroy();
    });
    socket.on('end', () => {
      decoder.end();
      socket.end();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.flush();
    });
  }

  private allowed(sender: string): boolean {
    for (const n of this.allow) if (networkContains(n, sender)) return true;
    return false;
  }

  private reject(sender: string): void {
    this.dropped.notAllowed++;
    const n = this.rejected.get(sender);
    if (n === undefined) trimOldest(this.rejected, MAX_TRACKED_REJECTED - 1);
    this.rejected.set(sender, (n ?? 0) + 1);
  }

  /** One syslog message (framing removed) from an allowed sender. */
  private receive(frame: Buffer, sender: string, cut: boolean): void {
    let end = Math.min(frame.length, this.maxLineLength);
    // Trailers some senders add even over UDP: LF, CRLF, NUL.
    while (end > 0 && (frame[end - 1] === 10 || frame[end - 1] === 13 || frame[end - 1] === 0)) end--;
    if (end === 0) return;
    if (!hasPri(frame)) {
      this.dropped.malformed++;
      return;
    }
    if (cut) {
      this.dropped.cut++;
      // Do not split a UTF-8 character at the cut.
      while (end > 0 && (frame[end]! & 0xc0) === 0x80) end--;
    }
    const raw = escapeControls(frame.toString('utf8', 0, end));
    const line = this.envelope.parse(raw, this.sourceOf(sender));
    if (!line.timeFromLine && line.program === null) withoutTimestamp(line);
    line.sender = sender;
    this.count(sender, Date.now());
    this.pending.push(line);
    if (this.pending.length >= MAX_PENDING_LINES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything that arrived in this turn of the event loop travels as one batch.
      setImmediate(() => this.flush());
    }
  }

  private count(sender: string, now: number): void {
    let s = this.senders.get(sender);
    if (s === undefined) {
      trimOldest(this.senders, MAX_TRACKED_SENDERS - 1);
      s = { lines: 0, lastLineAt: null, minuteStart: now, thisMinute: 0, lastMinute: 0 };
      this.senders.set(sender, s);
    }
    rollMinute(s, now);
    s.lines++;
    s.thisMinute++;
    s.lastLineAt = now;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.onBatch === null) return;
    const lines = this.pending;
    this.pending = [];
    try {
      this.onBatch({ lines, checkpoints: [] });
      this.linesRead += lines.length;
    } catch (e) {
      // Nothing to resume from: the lines are lost, say so rather than stop receiving.
      this.error = `handing ${lines.length} syslog line(s) over failed: ${(e as Error).message}`;
    }
  }

  async stop(): Promise<void> {
    const udp = this.udp;
    const server = this.server;
    this.udp = null;
    this.server = null;
    if (udp) await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of this.sockets) s.destroy();
      await closed;
    }
    this.flush();
    this.onBatch = null;
    this.state = 'stopped';
  }

  status(): SyslogSourceStatus {
    const now = Date.now();
    const senders = [...this.senders].map(([address, s]) => {
      rollMinute(s, now);
      return { address, lines: s.lines, perMinute: perMinute(s, now), lastLineAt: s.lastLineAt };
    }).sort((a, b) => b.perMinute - a.perMinute || b.lines - a.lines);
    return {
      id: this.id,
      kind: 'syslog',
      items: [
        { name: this.listen.url, state: this.state === 'listening' ? `listening, ${this.sockets.size} connection(s), dropped: ${this.dropped.notAllowed} not allowed, ${this.dropped.malformed} malformed` : this.state },
        ...senders.map((s) => ({ name: `from ${s.address}`, state: `${s.perMinute} lines/min, ${s.lines} lines`, lastLineAt: s.lastLineAt })),
      ],
      linesRead: this.linesRead,
      error: this.error,
      listen: this.listen.url,
      state: this.state,
      connections: this.sockets.size,
      senders,
      dropped: { ...this.dropped },
      notAllowedSenders: [...this.rejected].map(([address, count]) => ({ address, count })),
    };
  }
}

const BARE_TAG = /^([A-Za-z0-9_./-]{1,64})(?:\[(\d{1,10})\])?: (.*)$/s;

/**
 * `<PRI>TAG[PID]: MSG` without timestamp or host, as some appliances send it
 * (RFC 3164 4.3.3 lets a receiver take it as is): the message is what follows
 * the PRI, and the tag is the program.
 */
function withoutTimestamp(line: LogLine): void {
  const text = line.raw.slice(line.raw.indexOf('>') + 1);
  const m = BARE_TAG.exec(text);
  if (m) {
    line.program = m[1]!;
    line.pid = m[2] === undefined ? null : Number(m[2]);
    line.message = m[3]!;
  } else {
    line.message = text;
  }
}

/** `<PRI>` with PRI 0…191 (facility × 8 + severity): what every syslog message starts with. */
function hasPri(frame: Buffer): boolean {
  if (frame[0] !== 60 /* < */) return false;
  let value = 0;
  let i = 1;
  for (; i < frame.length && i <= 4; i++) {
    const c = frame[i]!;
    if (c === 62 /* > */) break;
    if (c < 48 || c > 57) return false;
    value = value * 10 + c - 48;
  }
  return i > 1 && i < frame.length && frame[i] === 62 && value <= 191;
}

/**
 * Control characters other than TAB as rsyslog writes them (`#012` for LF):
 * one received message stays one line in evidence and logs, and a sender
 * cannot forge a second line with an embedded newline.
 */
function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x08\x0a-\x1f\x7f]/.test(text)
    // eslint-disable-next-line no-control-regex
    ? text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => `#${c.charCodeAt(0).toString(8).padStart(3, '0')}`)
    : text;
}

function rollMinute(s: SenderStats, now: number): void {
  const elapsed = now - s.minuteStart;
  if (elapsed < 60_000) return;
  s.lastMinute = elapsed < 120_000 ? s.thisMinute : 0;
  s.thisMinute = 0;
  s.minuteStart = now - (elapsed % 60_000);
}

/** Lines in the sliding last minute, estimated from this and the previous minute's counts. */
function perMinute(s: SenderStats, now: number): number {
  const fraction = Math.min(1, (now - s.minuteStart) / 60_000);
  return Math.round(s.thisMinute + s.lastMinute * (1 - fraction));
}
