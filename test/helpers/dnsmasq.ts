/**
 * A real DNS server on loopback for allowlist tests: Debian's dnsmasq (package
 * dnsmasq-base) answering only from the records given, on a random port of
 * 127.0.0.1, with no upstream servers and nothing read from /etc. Names under
 * the `local` domains that have no record get NXDOMAIN, like a real zone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { DnsClient } from '../../src/policy/dns.js';

export interface Zone {
  /** Domains answered authoritatively (unknown names → NXDOMAIN). */
  local: string[];
  /** TXT records: name and its character-strings (several strings form one record; no commas inside). */
  txt?: Array<[string, ...string[]]>;
  /** A/AAAA records: name and addresses. */
  hosts?: Array<[string, ...string[]]>;
  /** MX records: domain, exchange, preference. */
  mx?: Array<[string, string, number]>;
  /** TTL of every answer, seconds (default 60). */
  ttl?: number;
}

export interface DnsServerHandle {
  /** `127.0.0.1:PORT`, for `dns.servers`. */
  server: string;
  /** Replaces the records (restarts dnsmasq on the same port). */
  reload(zone: Zone): Promise<void>;
  stop(): Promise<void>;
}

export async function startDnsmasq(zone: Zone): Promise<DnsServerHandle> {
  let child: ChildProcess | null = null;
  let port = 0;
  const launch = async (z: Zone): Promise<void> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const p = port || randomInt(20000, 60000);
      const proc = spawn('dnsmasq', argsFor(z, p), { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number>((resolve) => proc.once('exit', (code) => resolve(code ?? 1)));
      const ready = await Promise.race([waitReady(p, z.local[0]!).then(() => true), exited.then(() => false)]);
      if (ready) {
        child = proc;
        port = p;
        return;
      }
      // Port taken: pick another (unless we are reloading on a fixed port, then the old one is still closing).
      if (!/Address already in use/.test(stderr)) throw new Error(`dnsmasq failed: ${stderr.trim()}`);
      if (port === 0) continue;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('dnsmasq could not bind a port');
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    await gone;
  };
  process.once('exit', () => child?.kill('SIGKILL'));
  await launch(zone);
  return {
    get server() {
      return `127.0.0.1:${port}`;
    },
    async reload(z: Zone) {
      await stop();
      await launch(z);
    },
    stop,
  };
}

function argsFor(zone: Zone, port: number): string[] {
  const args = [
    '--no-daemon', '--conf-file=/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    '--no-resolv', '--no-hosts', '--user=root', '--group=root', '--pid-file=', '--cache-size=0', `--local-ttl=${zone.ttl ?? 60}`,
  ];
  for (const d of zone.local) args.push(`--local=/${d}/`);
  for (const [name, ...strings] of zone.txt ?? []) args.push(`--txt-record=${[name, ...strings].join(",")}`);
  for (const [name, ...addresses] of zone.hosts ?? []) for (const a of addresses) args.push(`--host-record=${name},${a}`);
  for (const [domain, exchange, preference] of zone.mx ?? []) args.push(`--mx-host=${domain},${exchange},${preference}`);
  return args;
}

async function waitReady(port: number, name: string): Promise<void> {
  const client = new DnsClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 200, attempts: 1 });
  for (let i = 0; i < 50; i++) {
    try {
      await client.query(name, 'TXT');
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`dnsmasq on port ${port} does not answer`);
}
