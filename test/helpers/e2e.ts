/**
 * Shared pieces of the end-to-end tests: a temporary directory per test file,
 * the Portcullis daemon running inside the topology's server namespace, and
 * readers of the kernel state it creates there (nft sets, ipsets, counters).
 * Every read goes through `ip netns exec`; the host's ruleset is never touched.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callDaemon } from '../../src/control/client.js';
import type { Explanation, StatusReport } from '../../src/daemon/daemon.js';
import { startDaemon, waitFor, type RunningDaemon } from './daemon.js';
import type { Topology } from './netns.js';

/**
 * Teardown for setup done inside `before` hooks (an `after` registered inside a hook would run when the
 * hook ends): call this at module level with node:test's `after`; the returned function queues cleanups,
 * which run in reverse order at the end of the file, even when a test failed.
 */
export function teardown(after: (fn: () => Promise<void>) => void): (fn: () => unknown) => void {
  const steps: Array<() => unknown> = [];
  after(async () => {
    for (const step of steps.reverse()) {
      try {
        await step();
      } catch (err) {
        process.stderr.write(`teardown step failed: ${(err as Error).message}\n`);
      }
    }
  });
  return (fn) => steps.push(fn);
}

/** A temporary directory removed by `after` (pass node:test's `after`). */
export function tempDir(prefix: string, after: (fn: () => unknown) => void): string {
  const dir = mkdtempSync(join(tmpdir(), `pc-${prefix}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface DaemonInNamespace {
  daemon: RunningDaemon;
  config: string;
  socket: string;
  status(): Promise<StatusReport>;
  /** Active bans in the daemon's database. */
  banned(): Promise<Array<{ target: string; jail: string; until: string | null }>>;
  explain(address: string): Promise<Explanation>;
  /** Restarts the daemon (after `stop()` or `kill()`), e.g. with another environment. */
  restart(env?: Record<string, string>): Promise<void>;
}

/**
 * Writes `portcullis.yaml` (state and control socket in `dir`, then `body`) and
 * runs the daemon in the server namespace. Stopped by `after` if still running.
 */
export async function startDaemonInServer(
  topology: Topology,
  dir: string,
  body: string,
  after: (fn: () => unknown) => void,
  env: Record<string, string> = {},
): Promise<DaemonInNamespace> {
  const config = join(dir, 'portcullis.yaml');
  const socket = join(dir, 'control.sock');
  writeFileSync(config, `state_dir: ${join(dir, 'state')}\ncontrol: { socket: ${socket} }\n${body}`);
  const start = async (e: Record<string, string>): Promise<RunningDaemon> => {
    const daemon = await startDaemon(['--config', config], socket, e, { netns: topology.ns.server });
    // The control socket answers before the sources are followed (from their end): wait for that too.
    await waitFor(() => / started: /.test(daemon.output()), 20_000, () => `daemon did not finish starting:\n${daemon.output()}`);
    return daemon;
  };
  const handle: DaemonInNamespace = {
    daemon: await start(env),
    config,
    socket,
    status: async () => (await callDaemon(socket, 'status')) as StatusReport,
    explain: async (address) => (await callDaemon(socket, 'explain', { address })) as Explanation,
    banned: async () => (await callDaemon(socket, 'banned')) as Array<{ target: string; jail: string; until: string | null }>,
    restart: async (e = env) => {
      handle.daemon = await start(e);
    },
  };
  after(async () => {
    if (handle.daemon.proc.exitCode === null && handle.daemon.proc.signalCode === null) await handle.daemon.kill();
  });
  return handle;
}

export interface KernelBan {
  /** The set (nft) or ipset holding the element. */
  set: string;
  address: string;
  /** Seconds until the kernel drops the element; null when it has no timeout. */
  expires: number | null;
}

/** Elements of every set of `table inet portcullis` in the server namespace ([] when the table does not exist). */
export async function nftBans(topology: Topology): Promise<KernelBan[]> {
  const r = await topology.exec('server', 'nft', ['-j', 'list', 'table', 'inet', 'portcullis'], { allowFailure: true });
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw new Error(`nft list table failed: ${r.stderr}`);
  }
  const out: KernelBan[] = [];
  for (const item of (JSON.parse(r.stdout) as { nftables: Array<Record<string, any>> }).nftables) {
    const set = item.set as { name: string; elem?: unknown[] } | undefined;
    if (!set) continue;
    for (const raw of set.elem ?? []) {
      const e = raw as any;
      const value = typeof e === 'object' && e !== null && 'elem' in e ? e.elem.val : e;
      const address = typeof value === 'string' ? value : `${value.prefix.addr}/${value.prefix.len}`;
      const expires = typeof e === 'object' && e !== null && 'elem' in e && typeof e.elem.expires === 'number' ? e.elem.expires : null;
      out.push({ set: set.name, address, expires });
    }
  }
  return out;
}

/** Entries of the `portcullis_*` ipsets in the server namespace. */
export async function ipsetBans(topology: Topology): Promise<KernelBan[]> {
  const r = await topology.exec('server', 'ipset', ['save']);
  const out: KernelBan[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^add (portcullis_\S+) (\S+)(?: timeout (\d+))?/.exec(line);
    if (m) out.push({ set: m[1]!, address: m[2]!, expires: m[3] === undefined || m[3] === '0' ? null : Number(m[3]) });
  }
  return out;
}

export type EnforcerKind = 'nftables' | 'iptables';

export function kernelBans(topology: Topology, enforcer: EnforcerKind): Promise<KernelBan[]> {
  return enforcer === 'nftables' ? nftBans(topology) : ipsetBans(topology);
}

/** Packets counted by the named counter of `table inet portcullis` (e.g. `sshd_blocked`). */
export async function nftCounter(topology: Topology, name: string): Promise<number> {
  const r = await topology.exec('server', 'nft', ['-j', 'list', 'counter', 'inet', 'portcullis', name]);
  const item = (JSON.parse(r.stdout) as { nftables: Array<Record<string, any>> }).nftables.find((i) => i.counter);
  return (item!.counter as { packets: number }).packets;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');

/** `Mmm dd hh:mm:ss` in local time, the timestamp rsyslog writes. */
export function syslogTime(d = new Date()): string {
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
}

/** Appends lines to a log file the way a syslog daemon would: `time host program[pid]: message`. */
export function syslogWriter(file: string, host: string, program: string, pid: number): (message: string) => void {
  writeFileSync(file, '', { flag: 'a' });
  return (message) => appendFileSync(file, `${syslogTime()} ${host} ${program}[${pid}]: ${message}\n`);
}
