import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The real daemon inside a throwaway network namespace, for the kernel benches
 * (run as root): only the namespace's ruleset changes, never the host's. Every
 * namespace, process and temporary directory is removed by `destroy()`, which
 * also runs at exit (an interrupted bench leaves nothing behind).
 */

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
const cli = fileURLToPath(new URL(fromSource ? '../cli/main.ts' : '../cli/main.js', import.meta.url));
/** `node …` arguments that run the CLI, from source (tsx) or from the build. */
export const CLI_ARGS = fromSource ? ['--import', 'tsx', cli] : [cli];
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Connects from argv[1] to 127.0.0.1:argv[2] until a SYN goes unanswered for 50 ms
 * (then prints `blocked <epoch ms>` of that attempt) or argv[3] ms have passed.
 * The unanswered check runs after a setImmediate, so a refusal already delivered
 * to a starved process is seen first.
 */
const BLOCK_PROBE = `
const net = require('node:net');
const [address, port, timeout] = process.argv.slice(1);
const deadline = Date.now() + Number(timeout);
let ready = false;
(function attempt() {
  const started = Number(process.hrtime.bigint()) / 1e6;
  let answered = false;
  const socket = net.connect({ host: '127.0.0.1', port: Number(port), localAddress: address });
  socket.on('connect', () => { console.log('something listens on port ' + port); process.exit(2); });
  socket.on('error', () => {
    answered = true;
    if (!ready) { ready = true; console.log('ready'); }
    if (Date.now() > deadline) process.exit(1);
    setTimeout(attempt, 2);
  });
  setTimeout(() => setImmediate(() => {
    if (answered) return;
    socket.destroy();
    if (!ready) { console.log('blocked before the start'); process.exit(3); }
    console.log('blocked ' + started);
    process.exit(0);
  }), 50);
})();
`;

const live = new Set<BenchNamespace>();
process.on('exit', () => {
  for (const ns of live) ns.destroy();
});

export class BenchNamespace {
  readonly name: string;
  readonly dir: string;
  private readonly children: ChildProcess[] = [];

  constructor(label: string) {
    if (process.getuid?.() !== 0) throw new Error('run the kernel benches as root: they create network namespaces');
    this.name = `pc-bench-${label}-${process.pid}`;
    this.dir = mkdtempSync(join(tmpdir(), `portcullis-bench-${label}-`));
    live.add(this);
    execFileSync('ip', ['netns', 'add', this.name]);
    execFileSync('ip', ['-n', this.name, 'link', 'set', 'lo', 'up']);
  }

  /** Runs a program inside the namespace and returns its output. */
  exec(command: string, args: readonly string[], input?: string): string {
    return execFileSync('ip', ['netns', 'exec', this.name, command, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, input, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  /** Starts a long-running program inside the namespace (`prefix`, e.g. nsenter, wraps `ip netns exec`); killed by destroy(). */
  spawn(command: string, args: readonly string[], prefix: readonly string[] = []): ChildProcess {
    const argv = [...prefix, 'ip', 'netns', 'exec', this.name, command, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  /**
   * Writes a config with `jail` (YAML lines under `jails: sshd:`), starts the daemon and waits for it to run.
   * `dashboard`: serve HTTP on the namespace's loopback, as the default configuration does (its bookkeeping costs a share of each line).
   */
  async startDaemon(jail: readonly string[], options: { stateDir?: string; prefix?: readonly string[]; timeoutMs?: number; dashboard?: boolean } = {}): Promise<Daemon> {
    const config = join(this.dir, 'portcullis.yaml');
    const socket = join(this.dir, 'control.sock');
    writeFileSync(config, [
      `state_dir: ${options.stateDir ?? join(this.dir, 'state')}`,
      `control: { socket: ${socket} }`,
      options.dashboard ? 'http: { listen: "127.0.0.1:9470" }' : 'http: { enabled: false }',
      'enforcer: nftables',
      'jails:',
      '  sshd:',
      '    enabled: true',
      ...jail.map((l) => `    ${l}`),
      '',
    ].join('\n'));
    const spawnedAt = performance.now();
    // BENCH_DAEMON_NODE_FLAGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, to profile the daemon under the bench.
    const flags = (process.env.BENCH_DAEMON_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const proc = this.spawn(process.execPath, [...flags, ...CLI_ARGS, 'run', '--config', config], options.prefix);
    const daemon = new Daemon(proc, socket, config, spawnedAt);
    await daemon.waitFor(/ started: /, options.timeoutMs ?? 60_000);
    return daemon;
  }

  /** Timestamps element additions committed in the namespace's `inet portcullis` table. */
  async monitor(): Promise<ElementMonitor> {
    const monitor = new ElementMonitor(this.spawn('nft', ['monitor', 'new', 'elements']));
    // Give nft monitor time to subscribe before anything is measured.
    await new Promise((r) => setTimeout(r, 300));
    return monitor;
  }

  /**
   * Resolves with the time (performance.now()) packets from `address` to `port`
   * started being dropped: a probe inside the namespace connects from that address
   * (added to lo) to 127.0.0.1:`port` every 2 ms; nothing listens, so until the ban
   * the kernel refuses at once. Call before the ban is caused. Cheaper and truer
   * than asking nft (every `get element` after a change lists the whole set: 0.3 s
   * of CPU at 100,000 elements) or reading `nft monitor` (which lags a burst by most
   * of a second and takes a core).
   */
  async blockedFrom(address: string, port: number, timeoutMs: number): Promise<() => Promise<number>> {
    this.exec('ip', ['addr', 'add', `${address}/32`, 'dev', 'lo']);
    const probe = this.spawn(process.execPath, ['-e', BLOCK_PROBE, address, String(port), String(timeoutMs)]);
    let out = '';
    probe.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => probe.once('exit', resolve));
    // The probe says when it has seen the first refusal (it works, and the address is not blocked yet).
    await new Promise<void>((resolve, reject) => {
      probe.stdout!.on('data', () => out.includes('ready') && resolve());
      void exited.then((code) => reject(new Error(`block probe exited (${code}) before it was ready: ${out}`)));
    });
    return async () => {
      const code = await exited;
      const at = /blocked (\d+(?:\.\d+)?)/.exec(out);
      if (code !== 0 || !at) throw new Error(`packets from ${address} to port ${port} not dropped within ${timeoutMs} ms (${out.trim()})`);
      // The probe's time is on the monotonic clock (comparable between processes, unlike timeOrigin,
      // which each takes from the wall clock at its start): put it on this process's performance.now().
      return Number(at[1]) - (Number(process.hrtime.bigint()) / 1e6 - performance.now());
    };
  }

  /** Elements of one of our sets, counted from `nft list set` text (cheaper than JSON for a million). */
  countElements(set: string): number {
    const text = this.exec('nft', ['list', 'set', 'inet', 'portcullis', set]);
    const start = text.indexOf('elements = {');
    if (start < 0) return 0;
    let n = 0;
    for (let i = start; i < text.length; i++) if (text.charCodeAt(i) === 44 /* , */) n++;
    return n + 1;
  }

  destroy(): void {
    if (!live.delete(this)) return;
    for (const c of this.children) c.kill('SIGKILL');
    try {
      for (const pid of execFileSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // namespace already gone
    }
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // never created
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Daemon {
  output = '';
  private waiters: Array<() => void> = [];

  constructor(readonly proc: ChildProcess, readonly socket: string, readonly config: string, readonly spawnedAt: number) {
    const take = (s: string): void => {
      this.output += s;
      for (const w of [...this.waiters]) w();
    };
    proc.stdout!.setEncoding('utf8').on('data', take);
    proc.stderr!.setEncoding('utf8').on('data', take);
    proc.on('exit', () => take(''));
  }

  /** CPU seconds the daemon has used: all its threads, and its main thread (the pipeline's). */
  cpuSeconds(): { all: number; main: number } {
    const pid = this.proc.pid!;
    return { all: cpuSeconds(`/proc/${pid}/stat`), main: cpuSeconds(`/proc/${pid}/task/${pid}/stat`) };
  }

  /** Resident memory of the daemon's process (MB). */
  rssMB(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  }

  /** Resolves with the time (performance.now()) the daemon printed a line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(this.output)) {
          done();
          resolve(performance.now());
        } else if (this.proc.exitCode !== null) {
          done();
          reject(new Error(`daemon exited:\n${this.output.slice(-3000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`daemon did not print ${pattern} within ${timeoutMs} ms:\n${this.output.slice(-3000)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await exited;
  }
}

/** Element additions in our table as `nft monitor` reports them: address → first time seen (performance.now()). */
export class ElementMonitor {
  readonly seen = new Map<string, number>();
  private waiters: Array<() => void> = [];

  constructor(proc: ChildProcess) {
    let buffer = '';
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const now = performance.now();
      buffer += chunk;
      const nl = buffer.lastIndexOf('\n');
      if (nl < 0) return;
      const text = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      for (const line of text.split('\n')) {
        if (!line.startsWith('add element inet portcullis ')) continue;
        for (const m of line.matchAll(/\b(\d{1,3}(?:\.\d{1,3}){3})\b/g)) if (!this.seen.has(m[1]!)) this.seen.set(m[1]!, now);
      }
      for (const w of [...this.waiters]) w();
    });
  }

  /** Resolves once `check()` holds. */
  until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const test = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== test);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== test);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push(test);
      test();
    });
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** An sshd failed-password line from `address`, stamped now (the `n`th of a run: pid and port vary). */
export function attackLine(address: string, n: number): string {
  const d = new Date();
  const p2 = (x: number): string => String(x).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} bench sshd[${1000 + (n % 30000)}]: Failed password for root from ${address} port ${1024 + (n % 60000)} ssh2\n`;
}

/** The `i`th address of 10.0.0.0/8 (i < 16,777,216). */
export function benchAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

/** CPU seconds (user + system) of a process or thread, from its /proc stat line. */
export function cpuSeconds(statPath: string): number {
  const fields = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}
