/**
 * Ban latency, measured on the real daemon and a real kernel (run as root):
 *
 *   node --import tsx src/bench/ban-latency.ts        (or, after `npm run build`, node dist/bench/ban-latency.js)
 *
 * The daemon runs inside a throwaway network namespace (so only that
 * namespace's ruleset changes) with the nftables enforcer, following a log
 * file; `nft monitor` in the same namespace timestamps every element the
 * kernel commits. Printed:
 * - one ban at a time, 100 times: from the attack line being appended to the
 *   file to its address being committed in the kernel set (median, p90, worst);
 * - 10,000 attack lines (10,000 addresses, maxretry 1) appended in one write:
 *   time until the last of them is committed, and until `nft list set` shows all.
 * Environment: BENCH_SINGLE (default 100), BENCH_BURST (default 10000).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SINGLE = Number(process.env.BENCH_SINGLE ?? 100);
const BURST = Number(process.env.BENCH_BURST ?? 10_000);

const here = fileURLToPath(import.meta.url);
const fromSource = here.endsWith('.ts');
const cli = fileURLToPath(new URL(fromSource ? '../cli/main.ts' : '../cli/main.js', import.meta.url));
const nodeArgs = fromSource ? ['--import', 'tsx', cli] : [cli];
const root = fileURLToPath(new URL('../..', import.meta.url));

const ns = `pc-bench-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'portcullis-latency-'));
const children: ChildProcess[] = [];

function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  try {
    for (const pid of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  } catch {
    // namespace already gone
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // never created
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function attackLine(address: string, n: number): string {
  const d = new Date();
  const p2 = (x: number): string => String(x).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} bench sshd[${1000 + (n % 30000)}]: Failed password for root from ${address} port ${1024 + (n % 60000)} ssh2\n`;
}

/** Element additions committed in our table, as they are reported: address → first time seen (ms). */
class ElementMonitor {
  readonly seen = new Map<string, number>();
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];

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
      this.waiters = this.waiters.filter((w) => (w.check() ? (w.resolve(), false) : true));
    });
  }

  until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench creates a network namespace');
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const log = join(dir, 'auth.log');
  writeFileSync(log, '');
  const config = join(dir, 'portcullis.yaml');
  writeFileSync(config, [
    `state_dir: ${join(dir, 'state')}`,
    `control: { socket: ${join(dir, 'control.sock')} }`,
    'enforcer: nftables',
    'jails:',
    '  sshd:',
    '    enabled: true',
    `    sources: [{ file: ${log} }]`,
    '    maxretry: 1',
    '    bantime: 1h',
    '',
  ].join('\n'));

  const daemon = spawn('ip', ['netns', 'exec', ns, process.execPath, ...nodeArgs, 'run', '--config', config], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(daemon);
  let output = '';
  daemon.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  daemon.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const deadline = Date.now() + 30_000;
  while (!/ started: /.test(output)) {
    if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const monitorProc = spawn('ip', ['netns', 'exec', ns, 'nft', 'monitor', 'new', 'elements'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(monitorProc);
  const monitor = new ElementMonitor(monitorProc);
  // `nft monitor` reports only what is committed after it subscribed: make one ban and wait for it.
  appendFileSync(log, attackLine('198.18.255.254', 0));
  await monitor.until(() => monitor.seen.has('198.18.255.254'), 'the monitor to report a first ban');

  const latencies: number[] = [];
  for (let i = 0; i < SINGLE; i++) {
    const address = `198.18.${i >> 8}.${i & 255}`;
    const written = performance.now();
    appendFileSync(log, attackLine(address, i));
    await monitor.until(() => monitor.seen.has(address), `ban ${i}`);
    latencies.push(monitor.seen.get(address)! - written);
  }
  latencies.sort((a, b) => a - b);
  const ms = (x: number): string => `${x.toFixed(1)} ms`;
  console.log(`single bans (${SINGLE}), log line appended → element committed in the kernel set:`);
  console.log(`  median ${ms(percentile(latencies, 0.5))}, p90 ${ms(percentile(latencies, 0.9))}, worst ${ms(latencies[latencies.length - 1]!)}, best ${ms(latencies[0]!)}`);

  const burst = Array.from({ length: BURST }, (_, i) => `198.19.${i >> 8}.${i & 255}`);
  const text = burst.map((a, i) => attackLine(a, i)).join('');
  const before = monitor.seen.size;
  const t0 = performance.now();
  appendFileSync(log, text);
  await monitor.until(() => monitor.seen.size >= before + BURST, `${BURST} bans`, 120_000);
  const last = Math.max(...burst.map((a) => monitor.seen.get(a)!));
  const first = Math.min(...burst.map((a) => monitor.seen.get(a)!));
  let listed = 0;
  while (listed < BURST + SINGLE + 1) {
    const out = execFileSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'set', 'inet', 'portcullis', 'sshd_v4'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    listed = ((JSON.parse(out).nftables as Array<{ set?: { elem?: unknown[] } }>).find((i) => i.set)?.set?.elem ?? []).length;
  }
  const visible = performance.now() - t0;
  console.log(`${BURST} attack lines appended in one write (maxretry 1, ${BURST} addresses):`);
  console.log(`  first committed after ${ms(first - t0)}, last after ${ms(last - t0)}; all listed by nft after ${ms(visible)}`);


}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`ban-latency: ${err.message}\n`);
    process.exit(1);
  },
);
