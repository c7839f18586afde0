import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/load.js';
import { replay } from '../cli/replay.js';
import { callDaemon } from '../control/client.js';
import type { SourceStatus } from '../sources/source.js';
import { rng } from './generate.js';
import { cpuSeconds } from './netns-daemon.js';
import { fmt, median, percentile, spread, type BenchSection } from './report.js';

/**
 * Target 5, live flood: a writer thread appends sshd attack lines to a file at
 * a fixed rate (default 200,000 lines/s for 30 s, from 100,000 distinct
 * IPv4/IPv6 addresses) while the real daemon (`portcullis run`, default sshd
 * jail, dry-run enforcer, SQLite state and HTTP server on) follows it.
 *
 * Lag: every 100 ms the daemon is asked where it stands (control command
 * `sources`: the lines whose effects are committed and handed to the
 * enforcers, not merely read); the lag is the age of the oldest line written
 * but not yet committed, from the writer's own record of when it wrote which
 * lines. The answer's arrival time is used, so queueing in
 * the daemon counts as lag too. Loss: lines read must equal lines written.
 * Correctness: the daemon's bans must be exactly those `replay` makes of the
 * same file. Environment: BENCH_FLOOD_RATE, BENCH_FLOOD_SECONDS,
 * BENCH_FLOOD_RUNS (default 3), BENCH_FLOOD_ADDRESSES (default 100,000),
 * BENCH_FLOOD_NODE_FLAGS (for the daemon's node).
 */

const RATE = Number(process.env.BENCH_FLOOD_RATE ?? 200_000);
const SECONDS = Number(process.env.BENCH_FLOOD_SECONDS ?? 30);
const RUNS = Number(process.env.BENCH_FLOOD_RUNS ?? 3);
const ADDRESSES = Number(process.env.BENCH_FLOOD_ADDRESSES ?? 100_000);
/** Extra node flags for the daemon, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it under the flood. */
const DAEMON_NODE_FLAGS = (process.env.BENCH_FLOOD_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const SEED = 5;
const SAMPLE_MS = 100;
/** The writer appends what is due every few ms, as a busy service's many processes would. */
const WRITE_TICK_MS = 5;
/** How long the daemon may take to catch up once the writer stops; lines still unread then count as lost. */
const CATCH_UP_LIMIT_MS = Math.max(60, 10 * SECONDS) * 1000;

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
const cli = fileURLToPath(new URL(fromSource ? '../cli/main.ts' : '../cli/main.js', import.meta.url));
const nodeArgs = fromSource ? ['--import', 'tsx', cli] : [cli];
const root = fileURLToPath(new URL('../..', import.meta.url));

interface WriterOptions {
  path: string;
  rate: number;
  seconds: number;
  /** Wall-clock ms of the first line's timestamp; line i carries baseTime + ⌊i / rate⌋ s. */
  baseTime: number;
}

/** Set (to the options as JSON) when this file runs as the writer process. */
const WRITER_ENV = 'PORTCULLIS_FLOOD_WRITER';

/**
 * Ms on the machine's monotonic clock, comparable between processes. Not `performance.timeOrigin`: each
 * process takes it from the wall clock when it starts, and a step of the VM's clock between the writer's
 * start and ours once put every write "in the future" of the samples: a run with 0 s of lag.
 */
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function syslogStamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** 80 % IPv4 from the benchmarking range 198.18.0.0/15, 20 % IPv6 from the documentation prefix. */
function attackerAddress(i: number): string {
  return i % 5 === 0 ? `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1` : `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;
}

/**
 * The writer process: appends the lines due every few ms until rate × seconds
 * lines are written, and reports each write on stdout as `time lines`
 * (its own clock, so a slow reader of the reports changes nothing).
 */
function runWriter(o: WriterOptions): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const rand = rng(SEED);
  const addresses = Array.from({ length: ADDRESSES }, (_, i) => attackerAddress(i));
  const users = ['root', 'admin', 'test', 'oracle', 'ubuntu', 'git', 'postgres', 'pi'];
  const total = Math.round(o.rate * o.seconds);
  const fd = openSync(o.path, 'a');
  const reports: string[] = [];
  let lines = 0;
  let stampSecond = -1;
  let stamp = '';
  const start = nowMs();
  while (lines < total) {
    const due = Math.min(total, Math.floor((o.rate * (nowMs() - start)) / 1000));
    if (due > lines) {
      const text: string[] = [];
      for (let i = lines; i < due; i++) {
        const second = Math.floor(i / o.rate);
        if (second !== stampSecond) {
          stampSecond = second;
          stamp = syslogStamp(o.baseTime + second * 1000);
        }
        const address = addresses[Math.floor(rand() * addresses.length)]!;
        const user = users[Math.floor(rand() * users.length)]!;
        const pid = 1000 + Math.floor(rand() * 60_000);
        const port = 1024 + Math.floor(rand() * 60_000);
        text.push(rand() < 0.7
          ? `${stamp} bench sshd[${pid}]: Failed password for ${user} from ${address} port ${port} ssh2\n`
          : `${stamp} bench sshd[${pid}]: Invalid user ${user} from ${address} port ${port}\n`);
      }
      const chunk = text.join('');
      writeSync(fd, chunk);
      lines = due;
      reports.push(`${nowMs()} ${lines}\n`);
    }
    if (reports.length >= 20 || lines === total) writeSync(1, reports.splice(0).join(''));
    Atomics.wait(sleeper, 0, 0, WRITE_TICK_MS);
  }
  closeSync(fd);
}

if (process.env[WRITER_ENV] && process.argv[1] === here) runWriter(JSON.parse(process.env[WRITER_ENV]) as WriterOptions);

/** The writer's reports: when it had written how many lines. */
class WriterRecord {
  readonly times: number[] = [];
  readonly lines: number[] = [];

  add(report: string): void {
    const [t, l] = report.split(' ').map(Number) as [number, number];
    this.times.push(t);
    this.lines.push(l);
  }

  get linesWritten(): number {
    return this.lines.at(-1) ?? 0;
  }

  /** Lines per second from the first write to the last. */
  rate(): number {
    const n = this.times.length;
    return n < 2 ? 0 : (this.lines[n - 1]! - this.lines[0]!) / ((this.times[n - 1]! - this.times[0]!) / 1000);
  }

  /** Seconds between `at` and the write of the oldest line after the first `done`; 0 when every line written was done. */
  lagSeconds(done: number, at: number): number {
    let lo = 0;
    let hi = this.lines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.lines[mid]! > done) hi = mid;
      else lo = mid + 1;
    }
    if (lo === this.lines.length || this.times[lo]! > at) return 0;
    return (at - this.times[lo]!) / 1000;
  }
}

interface RunResult {
  writeRate: number;
  linesWritten: number;
  linesRead: number;
  lagSamples: number[];
  /** Seconds after the writer stopped until the daemon had read everything; null when it never did. */
  catchUp: number | null;
  liveBans: number;
  replayBans: number;
  /** Bans made by one side only. */
  banMismatches: number;
  peakRssMb: number;
  /** CPU seconds the daemon's main thread and its other threads (state writer, GC helpers, libuv) used in the whole run. */
  cpuMain: number;
  cpuOthers: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function waitForExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await Promise.race([new Promise((r) => child.once('exit', r)), sleep(ms)]);
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function floodOnce(): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-flood-'));
  let daemon: ChildProcess | null = null;
  let writer: ChildProcess | null = null;
  try {
    const log = join(dir, 'auth.log');
    writeFileSync(log, '');
    const socket = join(dir, 'control.sock');
    const config = join(dir, 'portcullis.yaml');
    writeFileSync(config, [
      `state_dir: ${join(dir, 'state')}`,
      `control: { socket: ${socket} }`,
      `http: { listen: 127.0.0.1:${await freePort()} }`,
      'enforcer: dry-run',
      'jails:',
      '  sshd:',
      `    sources: [{ file: ${log} }]`,
      '',
    ].join('\n'));

    // The daemon's log goes to a file, as to the journal: a pipe the bench read slowly would throttle it.
    const daemonLog = join(dir, 'daemon.log');
    const out = openSync(daemonLog, 'w');
    daemon = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...nodeArgs, 'run', '--config', config], { cwd: root, stdio: ['ignore', out, out] });
    closeSync(out);
    const deadline = Date.now() + 30_000;
    while ((await callDaemon(socket, 'ping', {}, 1000).catch(() => null)) !== 'pong') {
      if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`the daemon did not start:\n${readFileSync(daemonLog, 'utf8')}`);
      await sleep(50);
    }

    const writerOptions: WriterOptions = { path: log, rate: RATE, seconds: SECONDS, baseTime: Math.floor(Date.now() / 1000) * 1000 };
    const writing = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), here], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, [WRITER_ENV]: JSON.stringify(writerOptions) },
    });
    writer = writing;
    const record = new WriterRecord();
    createInterface({ input: writing.stdout! }).on('line', (report) => record.add(report));
    const writerExit = new Promise<number | null>((resolve) => writing.once('exit', (code) => resolve(code)));
    let writerDone = false;
    void writerExit.then(() => (writerDone = true));

    // Progress is sampled now and turned into lags once the writer's record is complete.
    const samples: Array<{ at: number; committed: number }> = [];
    let linesRead = 0;
    let linesCommitted = 0;
    let writerDoneAt: number | null = null;
    let catchUp: number | null = null;
    for (;;) {
      const asked = nowMs();
      const sources = (await callDaemon(socket, 'sources')) as SourceStatus[];
      const answered = nowMs();
      linesRead = sources.reduce((n, s) => n + s.linesRead, 0);
      linesCommitted = sources.reduce((n, s) => n + (s.linesCommitted ?? 0), 0);
      samples.push({ at: answered, committed: linesCommitted });
      if (writerDoneAt === null && writerDone) {
        if ((await writerExit) !== 0) throw new Error('the flood writer failed');
        writerDoneAt = answered;
      }
      if (writerDoneAt !== null) {
        if (linesCommitted >= record.linesWritten) {
          catchUp = (answered - writerDoneAt) / 1000;
          break;
        }
        if (answered - writerDoneAt > CATCH_UP_LIMIT_MS) break;
      }
      if (daemon.exitCode !== null) throw new Error(`the daemon exited during the flood:\n${readFileSync(daemonLog, 'utf8').slice(-4000)}`);
      await sleep(SAMPLE_MS - (nowMs() - asked));
    }
    const firstWrite = record.times[0] ?? Infinity;
    const lagSamples = samples.filter((s) => s.at >= firstWrite).map((s) => record.lagSeconds(s.committed, s.at));
    const rss = peakRssMb(daemon.pid!);
    const cpuAll = cpuSeconds(`/proc/${daemon.pid}/stat`);
    const cpuMain = cpuSeconds(`/proc/${daemon.pid}/task/${daemon.pid}/stat`);
    const live = new Set(((await callDaemon(socket, 'banned', {}, 120_000)) as Array<{ jail: string; target: string }>).map((b) => `${b.jail} ${b.target}`));
    daemon.kill('SIGTERM');
    await waitForExit(daemon, 30_000);

    const replayed = new Set<string>();
    await replay(loadConfig(config), [log], { onDecision: (d) => d.action === 'ban' && replayed.add(`${d.jail} ${d.target}`) });
    let mismatches = 0;
    for (const b of live) if (!replayed.has(b)) mismatches++;
    for (const b of replayed) if (!live.has(b)) mismatches++;
    return {
      writeRate: record.rate(), linesWritten: record.linesWritten, linesRead, lagSamples, catchUp,
      liveBans: live.size, replayBans: replayed.size, banMismatches: mismatches, peakRssMb: rss, cpuMain, cpuOthers: cpuAll - cpuMain,
    };
  } finally {
    for (const child of [writer, daemon]) if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const child of [writer, daemon]) if (child) await waitForExit(child, 5000);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Target 5: the daemon keeps up with a 200,000 lines/s flood (lag never over 1 s) and loses no line. */
export async function flood(): Promise<BenchSection> {
  const runs: RunResult[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await floodOnce());
  const maxLags = runs.map((r) => Math.max(...r.lagSamples));
  const p99Lags = runs.map((r) => percentile(r.lagSamples, 0.99));
  const allRead = runs.every((r) => r.linesRead === r.linesWritten);
  const bansAgree = runs.every((r) => r.banMismatches === 0);
  const catchUps = runs.map((r) => r.catchUp);
  return {
    title: `Live flood: ${fmt(RATE)} sshd attack lines/s for ${SECONDS} s from ${fmt(ADDRESSES)} addresses, portcullis run (dry-run enforcer)`,
    rows: [
      { name: 'write rate achieved', value: spread(runs.map((r) => r.writeRate), 'lines/s'), target: `${fmt(RATE)} lines/s`, met: median(runs.map((r) => r.writeRate)) >= RATE * 0.98 },
      { name: 'max lag', value: `${spread(maxLags, 's', 2)}; worst run ${Math.max(...maxLags).toFixed(2)} s`, target: '≤ 1 s', met: Math.max(...maxLags) <= 1 },
      { name: 'p99 lag', value: spread(p99Lags, 's', 2) },
      {
        name: 'lines read / written',
        value: runs.map((r) => `${fmt(r.linesRead)} / ${fmt(r.linesWritten)}`).join('; ') +
          `; caught up ${catchUps.map((c) => (c === null ? 'never' : `${c.toFixed(1)} s`)).join(', ')} after the writer stopped`,
        target: 'equal', met: allRead,
      },
      { name: 'bans live / replay', value: runs.map((r) => `${fmt(r.liveBans)} / ${fmt(r.replayBans)} (${r.banMismatches} differ)`).join('; '), target: 'same set', met: bansAgree },
      { name: 'daemon peak RSS', value: spread(runs.map((r) => r.peakRssMb), 'MB') },
      { name: 'daemon CPU, main thread', value: spread(runs.map((r) => r.cpuMain * 1000), 'ms') },
      { name: '  other threads (state writer, GC)', value: spread(runs.map((r) => r.cpuOthers * 1000), 'ms') },
    ],
    json: { rate: RATE, seconds: SECONDS, addresses: ADDRESSES, runs: runs.map(({ lagSamples, ...r }) => ({ ...r, maxLag: Math.max(...lagSamples), p99Lag: percentile(lagSamples, 0.99), lagSamples })) },
  };
}
