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

/** Writes lines to `path` in blocks of 10,000 (one string per block, not per line). */
function lineWriter(path: string): { push(line: string): void; close(): void } {
  const fd = openSync(path, 'w');
  let block: string[] = [];
  const flush = (): void => {
    if (block.length) writeSync(fd, `${block.join('\n')}\n`);
    block = [];
  };
  return {
    push(line) {
      block.push(line);
      if (block.length === 10_000) flush();
    },
    close() {
      flush();
      closeSync(fd);
    },
  };
}

/**
 * A busy gateway's syslog: sshd, OpenVPN, Postfix, Sendmail and Asterisk,
 * about a third attack lines from `attackers` distinct IPv4/IPv6 sources,
 * the rest ordinary traffic and kernel/cron noise — the target-1 input.
 */
export function writeMixedLog(path: string, lines: number, options: { seed?: number; attackers?: number; start?: number } = {}): void {
  const rand = rng(options.seed ?? 7);
  const attackers = options.attackers ?? 20_000;
  let t = options.start ?? new Date(2024, 0, 10, 0, 0, 0).getTime();
  const out = lineWriter(path);
  const users = ['root', 'admin', 'test', 'oracle', 'ubuntu', 'git', 'postgres', 'pi', 'info', 'sales'];
  const addr = (i: number): string => (i % 4 === 0 ? `2001:db8:${(i >> 8).toString(16)}::${(i & 255).toString(16)}` : `${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}`);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (let n = 0; n < lines; n++) {
    t += Math.floor(rand() * 8);
    const ts = stamp(t);
    const pid = 1000 + Math.floor(rand() * 60000);
    const port = 1024 + Math.floor(rand() * 60000);
    const r = rand();
    let line: string;
    if (r < 0.34) {
      const a = addr(Math.floor(rand() * attackers));
      const v4 = !a.includes(':');
      const k = rand();
      if (k < 0.35) {
        const u = pick(users);
        const s = rand();
        line = s < 0.5 ? `${ts} gw sshd[${pid}]: Failed password for ${u} from ${a} port ${port} ssh2`
          : s < 0.8 ? `${ts} gw sshd[${pid}]: Invalid user ${u} from ${a} port ${port}`
          : `${ts} gw sshd[${pid}]: Connection closed by authenticating user ${u} ${a} port ${port} [preauth]`;
      } else if (k < 0.5) {
        // OpenVPN's instance prefix is ADDR:PORT for an IPv4 peer and the bare address for an IPv6 one.
        line = `${ts} gw ovpn-server[535]: ${v4 ? `${a}:${port}` : a} TLS Error: TLS handshake failed`;
      } else if (k < 0.7) {
        line = `${ts} gw postfix/smtpd[${pid}]: warning: unknown[${a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`;
      } else if (k < 0.85) {
        line = `${ts} gw sm-mta[${pid}]: x${pid}A${port}: [${v4 ? a : `IPv6:${a}`}] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA`;
      } else {
        line = `${ts} gw asterisk[2200]: NOTICE[2211]: chan_sip.c:24501 in handle_request_register: Registration from '<sip:${200 + (pid % 100)}@192.0.2.1>' failed for '${v4 ? a : `[${a}]`}:5060' - Wrong password`;
      }
    } else if (r < 0.45) {
      line = `${ts} gw CRON[${pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)`;
    } else if (r < 0.55) {
      line = `${ts} gw kernel: [${(t / 1000).toFixed(6)}] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=192.0.2.${pid & 255} DST=192.0.2.1 LEN=60 TOS=0x00 PROTO=TCP SPT=${port} DPT=23 WINDOW=29200 SYN`;
    } else if (r < 0.65) {
      line = `${ts} gw sshd[${pid}]: Accepted publickey for deploy from 192.0.2.${pid & 255} port ${port} ssh2: ED25519 SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG`;
    } else if (r < 0.72) {
      line = `${ts} gw postfix/smtpd[${pid}]: connect from mail-${pid}.example.net[198.51.100.${pid & 255}]`;
    } else if (r < 0.78) {
      line = `${ts} gw postfix/qmgr[880]: 4B${pid.toString(16).toUpperCase()}C: from=<news@example.net>, size=${pid}, nrcpt=1 (queue active)`;
    } else if (r < 0.84) {
      line = `${ts} gw ovpn-server[535]: alice/192.0.2.${pid & 255}:${port} MULTI: primary virtual IP for alice/192.0.2.${pid & 255}:${port}: 10.8.0.6`;
    } else if (r < 0.9) {
      line = `${ts} gw sm-mta[${pid}]: x${pid}A${port}: from=<list@example.org>, size=${pid}, class=0, nrcpts=1, proto=ESMTP, daemon=MTA, relay=mx.example.org [198.51.100.${pid & 255}]`;
    } else if (r < 0.95) {
      line = `${ts} gw asterisk[2200]: VERBOSE[2212]: pbx.c:2900 in pbx_extension_helper: -- Executing [${pid}@internal:1] Dial("SIP/200-0000${(pid & 255).toString(16)}", "SIP/201,30") in new stack`;
    } else {
      line = `${ts} gw systemd[1]: Started session-${pid}.scope - Session ${pid} of User deploy.`;
    }
    out.push(line);
  }
  out.close();
}
