import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { isIP, Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { canonicalAddress } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';

/**
 * A small stub resolver for the allowlist: A, AAAA, TXT and MX questions to the
 * configured servers, over UDP (EDNS0, 1232-byte answers) with a TCP retry when
 * the answer is truncated. It exists because node:dns hides the TTLs of TXT and
 * MX answers, and SPF and host entries are refreshed when their TTL ends; it also
 * keeps "no such name" (NXDOMAIN) apart from "no records of that type" (NODATA),
 * both of which are SPF "void lookups".
 */

export type RecordType = 'A' | 'AAAA' | 'TXT' | 'MX';

export interface MxRecord {
  preference: number;
  exchange: string;
}

export interface DnsAnswer<T> {
  /** `nxdomain`: the name does not exist; `nodata`: it exists without records of this type. */
  status: 'ok' | 'nxdomain' | 'nodata';
  records: T[];
  /** Seconds the answer may be cached: the smallest record TTL, or the negative TTL (SOA minimum). */
  ttl: number;
}

export interface DnsLookup {
  query(name: string, type: 'A' | 'AAAA'): Promise<DnsAnswer<string>>;
  query(name: string, type: 'TXT'): Promise<DnsAnswer<string>>;
  query(name: string, type: 'MX'): Promise<DnsAnswer<MxRecord>>;
}

/** A temporary failure (timeout, SERVFAIL, REFUSED, unreachable server): worth retrying later. */
export class DnsError extends PortcullisError {
  override name = 'DnsError';
}

export interface DnsServer {
  host: string;
  port: number;
}

export interface DnsClientOptions {
  /** `127.0.0.1:5353`, `[::1]:53`, `192.0.2.53`; default: the system's resolvers (/etc/resolv.conf). */
  servers?: readonly string[];
  /** Per attempt; default 2 s. */
  timeoutMs?: number;
  /** Attempts per server; default 2. */
  attempts?: number;
}

const TYPE_CODES: Record<RecordType, number> = { A: 1, AAAA: 28, TXT: 16, MX: 15 };
const CNAME = 5;
const SOA = 6;
const CLASS_IN = 1;
/** Negative answers without an SOA (some forwarders strip it) are cached this long. */
const DEFAULT_NEGATIVE_TTL = 300;

/** Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address; null when it is not an IP address with a valid port. */
export function parseDnsServer(text: string): DnsServer | null {
  let host = text;
  let port = 53;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(':');
    if (colon < 0 || text.indexOf(':') !== colon) return null;
    host = text.slice(0, colon);
    if (!/^\d{1,5}$/.test(text.slice(colon + 1))) return null;
    port = Number(text.slice(colon + 1));
  }
  if (isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host, port };
}

export class DnsClient implements DnsLookup {
  readonly servers: readonly DnsServer[];
  private readonly timeoutMs: number;
  private readonly attempts: number;

  constructor(options: DnsClientOptions = {}) {
    const texts = options.servers && options.servers.length > 0 ? options.servers : getServers();
    this.servers = texts.map((t) => {
      const s = parseDnsServer(t);
      if (!s) throw new PortcullisError(`DNS server ${JSON.stringify(t)} is not an IP address with an optional port (e.g. 127.0.0.1:5353 or [::1]:53)`, 2);
      return s;
    });
    if (this.servers.length === 0) throw new PortcullisError('no DNS server: configure `dns: { servers: [...] }` or a nameserver in /etc/resolv.conf', 2);
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.attempts = options.attempts ?? 2;
  }

  query(name: string, type: 'A' | 'AAAA'): Promise<DnsAnswer<string>>;
  query(name: string, type: 'TXT'): Promise<DnsAnswer<string>>;
  query(name: string, type: 'MX'): Promise<DnsAnswer<MxRecord>>;
  async query(name: string, type: RecordType): Promise<DnsAnswer<string | MxRecord>> {
    const qname = name.replace(/\.$/, '').toLowerCase();
    const failures: string[] = [];
    for (const server of this.servers) {
      for (let attempt = 0; attempt < this.attempts; attempt++) {
        try {
          const id = randomInt(0, 65536);
          const question = encodeQuery(id, qname, TYPE_CODES[type]);
          let response = await udpExchange(server, question, this.timeoutMs);
          let parsed = parseResponse(response, id, qname, TYPE_CODES[type]);
          if (parsed.truncated) {
            response = await tcpExchange(server, question, this.timeoutMs);
            parsed = parseResponse(response, id, qname, TYPE_CODES[type]);
          }
          return toAnswer(parsed);
        } catch (err) {
          failures.push(`${server.host}:${server.port}: ${(err as Error).message}`);
          // A server that answered (SERVFAIL, REFUSED) would answer the same again: try the next one.
          if (err instanceof DnsServerAnswer) break;
        }
      }
    }
    throw new DnsError(`DNS ${type} query for ${qname} failed: ${failures.join('; ')}`);
  }
}

/** The server answered, but with an error code. */
class DnsServerAnswer extends Error {}

function encodeQuery(id: number, name: string, qtype: number): Buffer {
  const labels = name.split('.').filter((l) => l.length > 0);
  const nameBytes = Buffer.concat([...labels.map((l) => {
    const bytes = Buffer.from(l, 'utf8');
    if (bytes.length > 63) throw new DnsError(`DNS name ${name} has a label longer than 63 bytes`);
    return Buffer.concat([Buffer.from([bytes.length]), bytes]);
  }), Buffer.from([0])]);
  if (nameBytes.length > 255) throw new DnsError(`DNS name ${name} is longer than 255 bytes`);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // recursion desired
  header.writeUInt16BE(1, 4); // one question
  header.writeUInt16BE(1, 10); // one additional record: EDNS0 OPT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(qtype, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  // OPT: root name, type 41, UDP payload size 1232, no extended flags, no options.
  const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, nameBytes, tail, opt]);
}

interface ParsedResponse {
  truncated: boolean;
  rcode: number;
  answers: Array<{ type: number; ttl: number; data: string | MxRecord }>;
  negativeTtl: number | null;
}

function parseResponse(buf: Buffer, id: number, qname: string, qtype: number): ParsedResponse {
  if (buf.length < 12) throw new Error('answer shorter than a DNS header');
  if (buf.readUInt16BE(0) !== id) throw new Error('answer with another query id');
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) === 0) throw new Error('not a DNS answer');
  const truncated = (flags & 0x0200) !== 0;
  const rcode = flags & 0x000f;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  let offset = 12;
  for (let i = 0; i < qd; i++) {
    const q = readName(buf, offset);
    offset = q.next;
    if (q.name.toLowerCase() !== qname || buf.readUInt16BE(offset) !== qtype) throw new Error('answer to another question');
    offset += 4;
  }
  const answers: ParsedResponse['answers'] = [];
  let negativeTtl: number | null = null;
  for (let i = 0; i < an + ns; i++) {
    const owner = readName(buf, offset);
    offset = owner.next;
    if (offset + 10 > buf.length) throw new Error('answer cut short');
    const type = buf.readUInt16BE(offset);
    const ttl = buf.readUInt32BE(offset + 4);
    const length = buf.readUInt16BE(offset + 8);
    const start = offset + 10;
    const end = start + length;
    if (end > buf.length) throw new Error('record cut short');
    if (i < an) {
      // CNAMEs lead to the records asked for, which follow in the same answer.
      if (type === qtype) answers.push({ type, ttl, data: readRecord(buf, type, start, end) });
      else if (type !== CNAME) throw new Error(`unexpected record type ${type} in answer`);
    } else if (type === SOA) {
      const mname = readName(buf, start);
      const rname = readName(buf, mname.next);
      const minimum = buf.readUInt32BE(rname.next + 16);
      negativeTtl = Math.min(ttl, minimum);
    }
    offset = end;
  }
  return { truncated, rcode, answers, negativeTtl };
}

function readRecord(buf: Buffer, type: number, start: number, end: number): string | MxRecord {
  switch (type) {
    case TYPE_CODES.A:
      if (end - start !== 4) throw new Error('A record of wrong length');
      return [...buf.subarray(start, end)].join('.');
    case TYPE_CODES.AAAA: {
      if (end - start !== 16) throw new Error('AAAA record of wrong length');
      const groups: string[] = [];
      for (let i = start; i < end; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
      return canonicalAddress(groups.join(':'))!;
    }
    case TYPE_CODES.TXT: {
      // RFC 7208 3.3: the character-strings of one TXT record are joined without spaces.
      const parts: Buffer[] = [];
      let p = start;
      while (p < end) {
        const len = buf[p]!;
        parts.push(buf.subarray(p + 1, p + 1 + len));
        p += 1 + len;
      }
      return Buffer.concat(parts).toString('latin1');
    }
    case TYPE_CODES.MX:
      return { preference: buf.readUInt16BE(start), exchange: readName(buf, start + 2).name };
    default:
      throw new Error(`unsupported record type ${type}`);
  }
}

/** Reads a possibly compressed name; pointers may only go backwards, so a loop cannot happen. */
function readName(buf: Buffer, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let offset = start;
  let next = -1;
  for (let hops = 0; ; hops++) {
    if (offset >= buf.length || hops > 128) throw new Error('bad name in answer');
    const len = buf[offset]!;
    if (len === 0) {
      offset += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      const target = ((len & 0x3f) << 8) | buf[offset + 1]!;
      if (target >= offset) throw new Error('forward compression pointer in answer');
      if (next < 0) next = offset + 2;
      offset = target;
      continue;
    }
    labels.push(buf.subarray(offset + 1, offset + 1 + len).toString('latin1'));
    offset += 1 + len;
  }
  return { name: labels.join('.'), next: next < 0 ? offset : next };
}

function toAnswer(parsed: ParsedResponse): DnsAnswer<string | MxRecord> {
  if (parsed.rcode === 3) return { status: 'nxdomain', records: [], ttl: parsed.negativeTtl ?? DEFAULT_NEGATIVE_TTL };
  if (parsed.rcode !== 0) {
    const names: Record<number, string> = { 1: 'FORMERR', 2: 'SERVFAIL', 4: 'NOTIMP', 5: 'REFUSED' };
    throw new DnsServerAnswer(`server answered ${names[parsed.rcode] ?? `rcode ${parsed.rcode}`}`);
  }
  if (parsed.answers.length === 0) return { status: 'nodata', records: [], ttl: parsed.negativeTtl ?? DEFAULT_NEGATIVE_TTL };
  return { status: 'ok', records: parsed.answers.map((a) => a.data), ttl: Math.min(...parsed.answers.map((a) => a.ttl)) };
}

function udpExchange(server: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const done = (err: Error | null, data?: Buffer): void => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(data!);
    };
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => done(err));
    socket.on('message', (data, rinfo) => {
      // Only the server we asked may answer; anything else is ignored (spoofing, stray packets).
      if (rinfo.port === server.port && data.length >= 2 && data.readUInt16BE(0) === message.readUInt16BE(0)) done(null, data);
    });
    socket.connect(server.port, server.host, () => socket.send(message));
  });
}

function tcpExchange(server: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const chunks: Buffer[] = [];
    let received = 0;
    const done = (err: Error | null, data?: Buffer): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(data!);
    };
    const timer = setTimeout(() => done(new Error(`no TCP answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => done(err));
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      received += chunk.length;
      const all = Buffer.concat(chunks, received);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) done(null, all.subarray(2, 2 + all.readUInt16BE(0)));
    });
    socket.on('end', () => done(new Error('connection closed before the whole answer arrived')));
    socket.connect(server.port, server.host, () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
  });
}
