import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median, percentile, type BenchRow, type BenchSection } from './report.js';
import { attackLine, BenchNamespace, ROOT, type Daemon, type ElementMonitor } from './netns-daemon.js';
import { callDaemon } from '../control/client.js';
import type { StatusReport } from '../daemon/daemon.js';

/**
 * Target 2: ban latency, live. The daemon runs in a throwaway network namespace
 * with the nftables enforcer; `nft monitor` there timestamps every element the
 * kernel commits. One attack line at a time (maxretry 1, a new address each),
 * from the line being written to its address being in the set:
 * - appended to a followed file;
 * - written to the systemd journal (through a `systemd-cat -t sshd` stream),
 *   followed by the daemon's journal source with its journal waker (the
 *   default `journal_wake: 2ms`). journald runs privately for the bench, in a
 *   mount namespace of its own (tmpfs over /run/systemd and /run/log), so the
 *   host's journal is neither needed nor touched. The same lines are also
 *   timed from the write to `journalctl -f` printing them, without Portcullis:
 *   journald's own delivery, which every journal reader without a waker gets.
 *   journald appends to its mmapped file at once but wakes readers (inotify)
 *   only from a timer that coalesces changes (250 ms in systemd's
 *   journal-file.c), so entries reach followers 250–500 ms late.
 *   A few journal bans are also timed after 1.5 s without any entry, when the
 *   waker polls at its slower quiet interval.
 * Environment: BENCH_LATENCY_BANS (default 1000, file and journal),
 * BENCH_JOURNALCTL_SAMPLES (default 200: each takes half a second),
 * BENCH_QUIET_SAMPLES (default 20).
 */

const BANS = Number(process.env.BENCH_LATENCY_BANS ?? 1000);
const JOURNALCTL_SAMPLES = Number(process.env.BENCH_JOURNALCTL_SAMPLES ?? 200);
const QUIET_SAMPLES = Number(process.env.BENCH_QUIET_SAMPLES ?? 20);
const JOURNALD = '/lib/systemd/systemd-journald';
const TARGET = 'median ≤ 5 ms, p99 ≤ 25 ms';

export async function latency(): Promise<BenchSection> {
  const file = await fileLatency();
  const journal = existsSync(JOURNALD) ? await journalLatency() : null;
  const rows: BenchRow[] = [row('log file → kernel set', file)];
  if (journal) {
    rows.push(row('journal → kernel set', journal.portcullis));
    rows.push({ name: 'journal → kernel set, after 1.5 s of quiet', value: figures(journal.afterQuiet) });
    rows.push({ name: 'journal → journalctl -f (no Portcullis)', value: figures(journal.journald) });
  } else rows.push({ name: 'journal', value: `not measured: ${JOURNALD} missing (apt-get install systemd)` });
  return {
    title: 'Ban latency, live: bans one at a time, line written → address committed in the nftables set',
    rows,
    json: { file, journal },
  };
}

function row(name: string, ms: number[]): BenchRow {
  return { name, value: figures(ms), target: TARGET, met: median(ms) <= 5 && percentile(ms, 0.99) <= 25 };
}

function figures(ms: number[]): string {
  const f = (x: number): string => `${x.toFixed(1)} ms`;
  return `median ${f(median(ms))}, p90 ${f(percentile(ms, 0.9))}, p99 ${f(percentile(ms, 0.99))}, worst ${f(Math.max(...ms))} (${ms.length} bans)`;
}

/**
 * Writes one attack line per address with `write` and waits for each ban: latencies in ms. A ban not
 * seen in time fails the run with what tells a lost ban from a missed report: whether the address is
 * in the set after all, and the daemon's last log lines.
 */
async function banOneByOne(ns: BenchNamespace, daemon: Daemon, monitor: ElementMonitor, write: (line: string) => void, addressOf: (i: number) => string, count: number, pauseMs = 0, whereIsLine?: (address: string) => Promise<string>): Promise<number[]> {
  // nft monitor reports only what is committed after it subscribed: one ban first, unmeasured.
  write(attackLine('198.18.255.254', 0));
  await monitor.until(() => monitor.seen.has('198.18.255.254'), 'the monitor to report a first ban');
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const address = addressOf(i);
    // Pauses that are not one multiple of a poll interval: the writes fall at every phase of the waker's timer.
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs + ((i * 37) % 50)));
    const written = performance.now();
    write(attackLine(address, i));
    await monitor.until(() => monitor.seen.has(address), `the ban of ${address}`).catch(async (err: Error) => {
      let inSet: string;
      try {
        ns.exec('nft', ['get', 'element', 'inet', 'portcullis', 'sshd_v4', `{ ${address} }`]);
        inSet = 'it is in the set: nft monitor did not report it';
      } catch {
        inSet = 'it is not in the set';
      }
      const source = (await whereIsLine?.(address)) ?? '';
      throw new Error(`${err.message} (ban ${i + 1} of ${count}); ${inSet}.${source} The daemon's last lines:\n${daemon.output.split('\n').slice(-20).join('\n')}`);
    });
    latencies.push(monitor.seen.get(address)! - written);
  }
  return latencies;
}

async function fileLatency(): Promise<number[]> {
  const ns = new BenchNamespace('file');
  try {
    const log = join(ns.dir, 'auth.log');
    writeFileSync(log, '');
    const daemon = await ns.startDaemon([`sources: [{ file: ${log} }]`, 'maxretry: 1', 'bantime: 1h']);
    const monitor = await ns.monitor();
    const latencies = await banOneByOne(ns, daemon, monitor, (line) => appendFileSync(log, line), (i) => `198.18.${i >> 8}.${i & 255}`, BANS);
    await daemon.stop();
    return latencies;
  } finally {
    ns.destroy();
  }
}

async function journalLatency(): Promise<{ portcullis: number[]; afterQuiet: number[]; journald: number[] }> {
  const ns = new BenchNamespace('journal');
  let journald: ChildProcess | null = null;
  try {
    journald = startPrivateJournald(ns.dir);
    const inJournalNs = ['nsenter', '-t', String(journald.pid), '-m', `--wd=${ROOT}`, '--'];
    await waitForSocket(inJournalNs);
    const writer = spawn(inJournalNs[0]!, [...inJournalNs.slice(1), 'systemd-cat', '-t', 'sshd'], { stdio: ['pipe', 'ignore', 'inherit'] });
    const write = (line: string): void => void writer.stdin!.write(line.replace(/^.*?sshd\[\d+\]: /, ''));
    try {
      const own = await journalctlLatency(inJournalNs, write);
      const daemon = await ns.startDaemon(['sources: [{ journal: { SYSLOG_IDENTIFIER: sshd } }]', 'maxretry: 1', 'bantime: 1h'], { prefix: inJournalNs });
      const monitor = await ns.monitor();
      // On a ban not seen: did journald store the line?
      // On a ban not seen: did journald store the line, and does touching its files (an inotify event for the followers) bring it?
      const inJournal = async (address: string): Promise<string> => {
        const run = (args: string[]): string => execFileSync(inJournalNs[0]!, [...inJournalNs.slice(1), ...args], { encoding: 'utf8' });
        let stored: string;
        try {
          stored = ` The journal holds its line: ${run(['journalctl', '-q', '-o', 'short-unix', 'SYSLOG_IDENTIFIER=sshd', '--grep', `from ${address} port`]).trim()}.`;
        } catch (e) {
          return ` The journal does not hold its line (journalctl: ${(e as Error).message.split('\n')[0]}).`;
        }
        run(['sh', '-c', 'touch /run/log/journal/*/*.journal']);
        const touched = await monitor.until(() => monitor.seen.has(address), 'the ban', 2000).then(() => 'came', () => 'did not come');
        const view = await daemonsView(daemon);
        // A follower that skips a file whose entry count did not change since it last looked gets the entry with the next one.
        let afterAnother = '';
        if (touched !== 'came') {
          run(['systemd-cat', '-t', 'bench-other', 'echo', 'another entry']);
          afterAnother = ` After an entry of another program, it ${await monitor.until(() => monitor.seen.has(address), 'the ban', 2000).then(() => 'came', () => 'did not come')} within 2 s.`;
        }
        return `${stored} After touching the journal files, the ban ${touched} within 2 s.${afterAnother}${view}`;
      };
      const latencies = await banOneByOne(ns, daemon, monitor, write, (i) => `198.19.${i >> 8}.${i & 255}`, BANS, 0, inJournal);
      // The waker polls at 50 ms once the journal has been quiet for a second: the first line after a pause.
      const afterQuiet = await banOneByOne(ns, daemon, monitor, write, (i) => `198.21.${i >> 8}.${i & 255}`, QUIET_SAMPLES, 1500, inJournal);
      await daemon.stop();
      return { portcullis: latencies, afterQuiet, journald: own };
    } finally {
      writer.kill('SIGKILL');
    }
  } finally {
    journald?.kill('SIGKILL');
    ns.destroy();
  }
}

/** What the daemon says of its sources, and the state of its child processes (journalctl): for a ban not seen. */
async function daemonsView(daemon: Daemon): Promise<string> {
  let sources: string;
  try {
    const status = (await callDaemon(daemon.socket, 'status', {}, 5000)) as StatusReport;
    sources = JSON.stringify(status.jails.map((j) => j.sources));
  } catch (e) {
    sources = `no answer (${(e as Error).message})`;
  }
  let children: string;
  try {
    children = execFileSync('ps', ['-o', 'pid,stat,wchan:24,etime,time,args', '--ppid', String(daemon.proc.pid)], { encoding: 'utf8' }).trim();
  } catch {
    children = 'none';
  }
  return `\nThe daemon's sources: ${sources}\nIts child processes:\n${children}\n`;
}

/**
 * journald in a mount namespace of its own, with a tmpfs over /run (its sockets
 * and volatile journal go there, nothing is created on the host), the host's
 * /run/netns carried over so that `ip netns exec` still works inside.
 */
function startPrivateJournald(dir: string): ChildProcess {
  const keep = join(dir, 'netns');
  const script = [
    'set -e',
    `mkdir -p ${keep}`,
    `mount --rbind /run/netns ${keep}`,
    'mount -t tmpfs tmpfs /run',
    'mkdir -p /run/netns /run/systemd/journal /run/log',
    `mount --rbind ${keep} /run/netns`,
    'if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi',
    `exec ${JOURNALD}`,
  ].join('\n');
  return spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function waitForSocket(inJournalNs: readonly string[]): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync(inJournalNs[0]!, [...inJournalNs.slice(1), 'test', '-S', '/run/systemd/journal/stdout']);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('the private journald did not create its sockets');
}

/** journald's own delivery: from the write to `journalctl -f -o json` printing the entry. */
async function journalctlLatency(inJournalNs: readonly string[], write: (line: string) => void): Promise<number[]> {
  const follower = spawn(inJournalNs[0]!, [...inJournalNs.slice(1), 'journalctl', '--follow', '--output=json', '--lines=0', 'SYSLOG_IDENTIFIER=sshd'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let output = '';
    const seen = new Map<string, number>();
    let waiter: (() => void) | null = null;
    follower.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const now = performance.now();
      output += chunk;
      for (const m of output.matchAll(/from (\d+\.\d+\.\d+\.\d+) port/g)) if (!seen.has(m[1]!)) seen.set(m[1]!, now);
      output = output.slice(output.lastIndexOf('\n') + 1);
      waiter?.();
    });
    const until = (address: string): Promise<void> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`journalctl -f did not show ${address}`)), 10_000);
      waiter = () => {
        if (seen.has(address)) {
          clearTimeout(timer);
          resolve();
        }
      };
      waiter();
    });
    // journalctl starts at the end of the journal: lines written before it is ready are not shown.
    for (let i = 0; !seen.has('198.18.255.253'); i++) {
      if (i === 50) throw new Error('journalctl -f shows nothing of what systemd-cat writes');
      write(attackLine('198.18.255.253', i));
      await new Promise((r) => setTimeout(r, 200));
    }
    const latencies: number[] = [];
    for (let i = 0; i < JOURNALCTL_SAMPLES; i++) {
      const address = `198.20.${i >> 8}.${i & 255}`;
      const written = performance.now();
      write(attackLine(address, i));
      await until(address);
      latencies.push(seen.get(address)! - written);
    }
    return latencies;
  } finally {
    follower.kill('SIGKILL');
  }
}
