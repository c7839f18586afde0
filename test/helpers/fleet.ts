/**
 * A fleet for end-to-end tests: a `hub` namespace running redis-server on a
 * bridge, and N node namespaces, each with its own Portcullis daemon and its
 * own nftables, joined to the bridge:
 *
 *   node-a (192.0.2.1) ─┐
 *   node-b (192.0.2.2) ─┼─ br0 in hub (192.0.2.254, redis-server)
 *   node-c (192.0.2.3) ─┘
 *
 * Nothing is created in the host's namespace and the host ruleset is never
 * touched; everything is torn down at the end (and at process exit).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/daemon.js';
import { startDaemon, waitFor, type RunningDaemon } from './daemon.js';

export const REDIS_ADDRESS = '192.0.2.254';
export const REDIS_PORT = 6379;

export interface FleetNode {
  name: string;
  ns: string;
  address: string;
  socket: string;
  config: string;
  /** The log file its sshd jail follows. */
  authLog: string;
  daemon: RunningDaemon | null;
}

export interface TestFleet {
  nodes: FleetNode[];
  dir: string;
  start(node: FleetNode): Promise<void>;
  stop(node: FleetNode): Promise<void>;
  startRedis(): Promise<void>;
  killRedis(): Promise<void>;
  /** Addresses in a node's kernel set for `jail` (IPv4). */
  kernelSet(node: FleetNode, jail?: string): Promise<Set<string>>;
  status(node: FleetNode): Promise<StatusReport>;
  redisCli(args: string[]): Promise<string>;
  /** Sends commands to Redis in one `redis-cli --pipe` run (mass insertion); resolves with its report. */
  redisPipe(commands: string[][]): Promise<string>;
  destroy(): Promise<void>;
}

function run(command: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function must(command: string, args: readonly string[]): Promise<string> {
  const r = await run(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

const live = new Set<() => void>();
let hooked = false;

export interface FleetOptionsForTest {
  nodes?: number;
  /** Extra YAML lines inside `fleet:` (indented by the helper). */
  fleet?: Record<string, string>;
  after?: (fn: () => Promise<void>) => void;
}

export async function createFleet(options: FleetOptionsForTest = {}): Promise<TestFleet> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => { for (const d of [...live]) d(); });
  }
  const count = options.nodes ?? 3;
  const prefix = `pf-${process.pid}-${randomBytes(2).toString('hex')}`;
  const hub = `${prefix}-hub`;
  const dir = mkdtempSync(join(tmpdir(), 'pc-fleet-'));
  const names = Array.from({ length: count }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
  const nodes: FleetNode[] = names.map((name, i) => ({
    name, ns: `${prefix}-${name.slice(5)}`, address: `192.0.2.${i + 1}`,
    socket: join(dir, `${name}.sock`), config: join(dir, `${name}.yaml`), authLog: join(dir, `${name}-auth.log`), daemon: null,
  }));
  let redis: ChildProcess | null = null;
  let destroyed = false;

  const destroySync = (): void => {
    if (destroyed) return;
    destroyed = true;
    live.delete(destroySync);
    for (const ns of [hub, ...nodes.map((n) => n.ns)]) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const pid of pids.split(/\s+/).filter(Boolean)) {
          try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
        }
      } catch { /* no such namespace */ }
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  live.add(destroySync);
  options.after?.(async () => destroySync());

  try {
    await must('ip', ['netns', 'add', hub]);
    await must('ip', ['-n', hub, 'link', 'set', 'lo', 'up']);
    await must('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', ['-n', hub, 'addr', 'add', `${REDIS_ADDRESS}/24`, 'dev', 'br0']);
    await must('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);
    for (const [i, node] of nodes.entries()) {
      await must('ip', ['netns', 'add', node.ns]);
      await must('ip', ['-n', node.ns, 'link', 'set', 'lo', 'up']);
      await must('ip', ['-n', hub, 'link', 'add', `port${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.ns]);
      await must('ip', ['-n', hub, 'link', 'set', `port${i}`, 'master', 'br0']);
      await must('ip', ['-n', hub, 'link', 'set', `port${i}`, 'up']);
      await must('ip', ['-n', node.ns, 'addr', 'add', `${node.address}/24`, 'dev', 'eth0']);
      await must('ip', ['-n', node.ns, 'link', 'set', 'eth0', 'up']);
    }
  } catch (e) {
    destroySync();
    throw e;
  }

  const fleetExtra = Object.entries(options.fleet ?? {}).map(([k, v]) => `  ${k}: ${v}`);
  for (const node of nodes) {
    writeFileSync(node.authLog, '');
    writeFileSync(node.config, [
      `state_dir: ${join(dir, `${node.name}-state`)}`,
      `control: { socket: ${node.socket} }`,
      'enforcer: nftables',
      'http: { enabled: false }',
      'defaults: { maxretry: 3, findtime: 10m, bantime: 1h }',
      'jails:',
      '  sshd:',
      '    enabled: true',
      `    sources: [{ file: ${node.authLog} }]`,
      'fleet:',
      `  redis: redis://${REDIS_ADDRESS}:${REDIS_PORT}`,
      `  node: ${node.name}`,
      '  share: all',
      ...fleetExtra,
      '',
    ].join('\n'));
  }

  const redisDir = join(dir, 'redis');
  mkdirSync(redisDir);
  const startRedis = async (): Promise<void> => {
    const proc = spawn('ip', ['netns', 'exec', hub, 'redis-server', '--bind', REDIS_ADDRESS, '--port', String(REDIS_PORT), '--protected-mode', 'no',
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', redisDir, '--logfile', join(redisDir, 'redis.log')], { stdio: 'ignore' });
    redis = proc;
    await waitFor(async () => (await run('ip', ['netns', 'exec', hub, 'redis-cli', '-h', REDIS_ADDRESS, '-p', String(REDIS_PORT), 'ping'])).stdout.trim() === 'PONG', 10_000, () => 'redis-server did not start');
  };
  await startRedis();

  const fleet: TestFleet = {
    nodes,
    dir,
    async start(node) {
      node.daemon = await startDaemon(['--config', node.config], node.socket, {}, { netns: node.ns });
      // With Redis up, ready means connected (and catching up); with Redis down, the node runs on its own.
      if (redis !== null) await waitFor(async () => (await fleet.status(node)).fleet?.state === 'connected', 15_000, () => node.daemon!.output());
    },
    async stop(node) {
      if (node.daemon && node.daemon.proc.exitCode === null) await node.daemon.stop();
      node.daemon = null;
    },
    startRedis,
    async killRedis() {
      const r = redis;
      redis = null;
      if (!r) return;
      const exited = new Promise((resolve) => r.once('exit', resolve));
      // `ip netns exec` execs redis-server, so this is redis-server itself.
      r.kill('SIGKILL');
      await exited;
    },
    async kernelSet(node, jail = 'sshd') {
      const r = await run('ip', ['netns', 'exec', node.ns, 'nft', '-j', 'list', 'set', 'inet', 'portcullis', `${jail}_v4`]);
      const out = new Set<string>();
      if (r.code !== 0) return out;
      const parsed = JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: Array<string | { elem: { val: string } }> } }> };
      for (const item of parsed.nftables) {
        for (const e of item.set?.elem ?? []) out.add(typeof e === 'string' ? e : e.elem.val);
      }
      return out;
    },
    status: async (node) => (await callDaemon(node.socket, 'status')) as StatusReport,
    redisCli: (args) => must('ip', ['netns', 'exec', hub, 'redis-cli', '-h', REDIS_ADDRESS, '-p', String(REDIS_PORT), ...args]),
    redisPipe: (commands) => new Promise((resolve, reject) => {
      const p = spawn('ip', ['netns', 'exec', hub, 'redis-cli', '-h', REDIS_ADDRESS, '-p', String(REDIS_PORT), '--pipe'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-cli --pipe exited ${code}: ${out}`))));
      const resp = (args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
      p.stdin!.end(commands.map(resp).join(''));
    }),
    async destroy() {
      for (const n of nodes) await fleet.stop(n).catch(() => {});
      destroySync();
    },
  };
  return fleet;
}
