import { openSync, writeSync, closeSync } from 'node:fs';

/**
 * Deterministic log generation for benchmarks: the same seed gives the same
 * file, so figures from different commits compare like for like.
 */

/** Mulberry32: small, fast, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function stamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * An sshd auth log: about a third attack lines from `attackers` distinct
 * IPv4/IPv6 sources, the rest ordinary noise (logins, sessions, cron, sudo).
 */
export function writeAuthLog(path: string, lines: number, options: { seed?: number; attackers?: number; start?: number } = {}): void {
  const rand = rng(options.seed ?? 42);
  const attackers = options.attackers ?? 5000;
  let t = options.start ?? new Date(2024, 0, 10, 0, 0, 0).getTime();
  const fd = openSync(path, 'w');
  const users = ['root', 'admin', 'test', 'oracle', 'ubuntu', 'git', 'postgres', 'pi'];
  const addr = (i: number): string => (i % 5 === 0 ? `2001:db8:${(i >> 8).toString(16)}::${(i & 255).toString(16)}` : `203.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  let buf: string[] = [];
  for (let n = 0; n < lines; n++) {
    t += Math.floor(rand() * 40);
    const ts = stamp(t);
    const pid = 1000 + Math.floor(rand() * 60000);
    const r = rand();
    let line: string;
    if (r < 0.34) {
      const a = addr(Math.floor(rand() * attackers));
      const u = users[Math.floor(rand() * users.length)]!;
      const port = 1024 + Math.floor(rand() * 60000);
      const k = rand();
      line = k < 0.5 ? `${ts} bench sshd[${pid}]: Failed password for ${u} from ${a} port ${port} ssh2`
        : k < 0.8 ? `${ts} bench sshd[${pid}]: Invalid user ${u} from ${a} port ${port}`
        : `${ts} bench sshd[${pid}]: Connection closed by authenticating user ${u} ${a} port ${port} [preauth]`;
    } else if (r < 0.55) {
      line = `${ts} bench CRON[${pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`;
    } else if (r < 0.7) {
      line = `${ts} bench sshd[${pid}]: Accepted publickey for deploy from 192.0.2.${Math.floor(rand() * 200)} port ${1024 + pid} ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG`;
    } else if (r < 0.85) {
      line = `${ts} bench sshd[${pid}]: pam_unix(sshd:session): session closed for user deploy`;
    } else {
      line = `${ts} bench systemd-logind[${pid}]: New session ${pid} of user deploy.`;
    }
    buf.push(line);
    if (buf.length === 10000) {
      writeSync(fd, `${buf.join('\n')}\n`);
      buf = [];
    }
  }
  if (buf.length) writeSync(fd, `${buf.join('\n')}\n`);
  closeSync(fd);
}
