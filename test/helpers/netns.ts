/**
 * Network namespaces for firewall tests: the host's own ruleset is never touched.
 *
 *   attacker (198.51.100.2, 2001:db8:2::2) ──veth── server (192.0.2.1, 2001:db8:1::1) ──veth── friend (203.0.113.2, 2001:db8:3::2)
 *
 * The server owns its service addresses on `lo` and routes each peer's link, so
 * traffic to 192.0.2.1 is local input there (what an INPUT-hook firewall sees).
 * Names are unique per test process (`pc-<pid>-<random>-server`), veth ends are
 * created directly inside the namespaces (nothing appears in the host namespace),
 * and `destroy()` (idempotent) also runs at process exit and on SIGINT/SIGTERM.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const ADDRESSES = {
  server: { v4: '192.0.2.1', v6: '2001:db8:1::1' },
  attacker: { v4: '198.51.100.2', v6: '2001:db8:2::2' },
  friend: { v4: '203.0.113.2', v6: '2001:db8:3::2' },
} as const;

export type Role = keyof typeof ADDRESSES;

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Topology {
  /** Namespace names by role. */
  ns: Record<Role, string>;
  addresses: typeof ADDRESSES;
  /** Runs a program inside a role's namespace; rejects on a nonzero exit unless `allowFailure`. */
  exec(role: Role, command: string, args: readonly string[], options?: { input?: string; allowFailure?: boolean }): Promise<ExecResult>;
  /** Starts a long-running program inside a role's namespace; killed by `destroy()`. */
  spawn(role: Role, command: string, args: readonly string[]): ChildProcess;
  /** A TCP (greeting "hello") or UDP (echo) server on all of the server's addresses. */
  listen(port: number, protocol?: 'tcp' | 'udp'): Promise<void>;
  /** One connection attempt from `role`: what the client saw. */
  probeTcp(role: Role, host: string, port: number, timeoutMs?: number): Promise<'connected' | 'refused' | 'reset' | 'timeout' | 'unreachable'>;
  /** One datagram from `role`: `reply`, an ICMP error (`unreachable`), or `timeout`. */
  probeUdp(role: Role, host: string, port: number, timeoutMs?: number): Promise<'reply' | 'unreachable' | 'timeout'>;
  /** Opens a TCP connection from `role` and keeps it; `closed` resolves with how it ended (`end`, or an error code). */
  openTcp(role: Role, host: string, port: number): Promise<{ closed: Promise<string>; close(): void }>;
  destroy(): Promise<void>;
}

const live = new Set<() => void>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const destroy of [...live]) destroy();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const destroy of [...live]) destroy();
      process.kill(process.pid, signal);
    });
  }
}

function run(command: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(command, [...args], { maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    // A program that exits without reading stdin makes this write fail with EPIPE; its exit code tells the story.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

async function must(command: string, args: readonly string[]): Promise<void> {
  const r = await run(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Builds server, attacker and friend namespaces; pass `after` (from node:test) to tear down with the suite. */
export async function createTopology(options: { after?: (fn: () => Promise<void>) => void } = {}): Promise<Topology> {
  installExitHooks();
  const prefix = `pc-${process.pid}-${randomBytes(3).toString('hex')}`;
  const ns: Record<Role, string> = { server: `${prefix}-server`, attacker: `${prefix}-attacker`, friend: `${prefix}-friend` };
  const children = new Set<ChildProcess>();
  let destroyed = false;

  const destroySync = () => {
    if (destroyed) return;
    destroyed = true;
    live.delete(destroySync);
    for (const child of children) child.kill('SIGKILL');
    for (const name of Object.values(ns)) {
      // Processes started inside (a daemon, sshd's per-connection children) would outlive the name.
      try {
        const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const pid of pids.split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // Exited meanwhile.
          }
        }
      } catch {
        // No such namespace: nothing runs in it.
      }
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // Already gone (or never created): nothing to clean.
      }
    }
  };
  live.add(destroySync);
  const destroy = async () => destroySync();
  options.after?.(destroy);

  try {
    for (const name of Object.values(ns)) await must('ip', ['netns', 'add', name]);
    const links: [Role, string, string, string, string, string][] = [
      ['attacker', 'att0', '198.51.100.1/24', '2001:db8:2::1/64', '198.51.100.2/24', '2001:db8:2::2/64'],
      ['friend', 'frd0', '203.0.113.1/24', '2001:db8:3::1/64', '203.0.113.2/24', '2001:db8:3::2/64'],
    ];
    await must('ip', ['-n', ns.server, 'link', 'set', 'lo', 'up']);
    await must('ip', ['-n', ns.server, 'addr', 'add', `${ADDRESSES.server.v4}/32`, 'dev', 'lo']);
    await must('ip', ['-n', ns.server, '-6', 'addr', 'add', `${ADDRESSES.server.v6}/128`, 'dev', 'lo']);
    for (const [role, serverEnd, gw4, gw6, addr4, addr6] of links) {
      const peer = ns[role];
      await must('ip', ['-n', ns.server, 'link', 'add', serverEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
      await must('ip', ['-n', ns.server, 'addr', 'add', gw4, 'dev', serverEnd]);
      await must('ip', ['-n', ns.server, '-6', 'addr', 'add', gw6, 'dev', serverEnd, 'nodad']);
      await must('ip', ['-n', ns.server, 'link', 'set', serverEnd, 'up']);
      await must('ip', ['-n', peer, 'link', 'set', 'lo', 'up']);
      await must('ip', ['-n', peer, 'addr', 'add', addr4, 'dev', 'eth0']);
      await must('ip', ['-n', peer, '-6', 'addr', 'add', addr6, 'dev', 'eth0', 'nodad']);
      await must('ip', ['-n', peer, 'link', 'set', 'eth0', 'up']);
      await must('ip', ['-n', peer, 'route', 'add', 'default', 'via', gw4.split('/')[0]!]);
      await must('ip', ['-n', peer, '-6', 'route', 'add', 'default', 'via', gw6.split('/')[0]!]);
    }
  } catch (err) {
    destroySync();
    throw err;
  }

  const spawnIn = (role: Role, command: string, args: readonly string[]) => {
    const child = spawn('ip', ['netns', 'exec', ns[role], command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };

  /** Runs a small node script in a namespace and resolves with its first stdout line. */
  const nodeLine = (role: Role, script: string, args: string[]): Promise<string> => {
    const child = spawnIn(role, process.execPath, ['-e', script, ...args]);
    return firstLine(child);
  };

  return {
    ns,
    addresses: ADDRESSES,
    async exec(role, command, args, opts = {}) {
      const r = await run('ip', ['netns', 'exec', ns[role], command, ...args], opts.input);
      if (r.code !== 0 && !opts.allowFailure) throw new Error(`[${role}] ${command} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
      return r;
    },
    spawn: spawnIn,
    async listen(port, protocol = 'tcp') {
      const line = await nodeLine('server', protocol === 'tcp' ? TCP_SERVER : UDP_SERVER, [String(port), ADDRESSES.server.v4, ADDRESSES.server.v6]);
      if (line !== 'ready') throw new Error(`server on port ${port}/${protocol} did not start: ${line}`);
    },
    probeTcp: (role, host, port, timeoutMs = 1500) =>
      nodeLine(role, TCP_PROBE, [host, String(port), String(timeoutMs)]) as Promise<'connected' | 'refused' | 'reset' | 'timeout' | 'unreachable'>,
    probeUdp: (role, host, port, timeoutMs = 1500) =>
      nodeLine(role, UDP_PROBE, [host, String(port), String(timeoutMs)]) as Promise<'reply' | 'unreachable' | 'timeout'>,
    async openTcp(role, host, port) {
      const child = spawnIn(role, process.execPath, ['-e', TCP_HOLD, host, String(port)]);
      const lines = lineReader(child);
      const first = await lines.next();
      if (first !== 'connected') throw new Error(`could not open a connection to ${host}:${port}: ${first}`);
      return { closed: lines.next(), close: () => child.kill('SIGKILL') };
    },
    destroy,
  };
}

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function lineReader(child: ChildProcess): { next(): Promise<string> } {
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let buffer = '';
  let stderr = '';
  const push = (line: string) => {
    const waiter = waiters.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  };
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.on('close', (code) => {
    while (waiters.length > 0) push(`exited ${code}: ${stderr.trim()}`);
  });
  return {
    next: () => new Promise((resolve) => (lines.length > 0 ? resolve(lines.shift()!) : waiters.push(resolve))),
  };
}

function firstLine(child: ChildProcess): Promise<string> {
  return lineReader(child).next();
}

const TCP_SERVER = `
const net = require('node:net');
const server = net.createServer((s) => { s.on('error', () => {}); s.write('hello\\n'); });
server.listen(Number(process.argv[1]), '::', () => console.log('ready'));`;

// Bound to the service addresses, not the wildcard: a wildcard UDP socket would
// answer from the link address, which a connected client socket ignores.
const UDP_SERVER = `
const dgram = require('node:dgram');
const [port, v4, v6] = process.argv.slice(1);
let bound = 0;
for (const [type, address] of [['udp4', v4], ['udp6', v6]]) {
  const socket = dgram.createSocket(type);
  socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
  socket.bind(Number(port), address, () => { if (++bound === 2) console.log('ready'); });
}`;

const TCP_PROBE = `
const net = require('node:net');
const [host, port, timeout] = process.argv.slice(1);
const done = (what) => { console.log(what); process.exit(0); };
const s = net.connect({ host, port: Number(port) });
s.once('data', () => done('connected'));
s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' ? 'reset' : ['EHOSTUNREACH', 'ENETUNREACH', 'EACCES'].includes(e.code) ? 'unreachable' : e.code));
setTimeout(() => done('timeout'), Number(timeout));`;

const UDP_PROBE = `
const dgram = require('node:dgram');
const [host, port, timeout] = process.argv.slice(1);
const done = (what) => { console.log(what); process.exit(0); };
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.on('message', () => done('reply'));
s.on('error', (e) => done(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EACCES'].includes(e.code) ? 'unreachable' : e.code));
s.connect(Number(port), host, () => s.send('ping'));
setTimeout(() => done('timeout'), Number(timeout));`;

const TCP_HOLD = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
s.once('data', () => console.log('connected'));
s.on('error', (e) => { console.log(e.code); process.exit(0); });
s.on('end', () => { console.log('end'); process.exit(0); });
setInterval(() => { if (!s.destroyed) s.write('.'); }, 100);`;
