import { appendFileSync, chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor, type RunningDaemon } from '../helpers/daemon.js';

/** A temporary daemon setup for the HTTP, dashboard and alert tests: config, token, followed logs. */

export const TOKEN = 'test-token-0123456789abcdef';

export interface Setup {
  dir: string;
  config: string;
  socket: string;
  tokenFile: string;
  auth: string;
  vpn: string;
}

export function makeSetup(prefix: string, extra = ''): Setup {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const s: Setup = {
    dir, config: join(dir, 'portcullis.yaml'), socket: join(dir, 'control.sock'), tokenFile: join(dir, 'token'),
    auth: join(dir, 'auth.log'), vpn: join(dir, 'openvpn.log'),
  };
  writeFileSync(s.tokenFile, `${TOKEN}\n`);
  chmodSync(s.tokenFile, 0o600);
  writeFileSync(s.auth, '');
  writeFileSync(s.vpn, '');
  writeFileSync(s.config, [
    `state_dir: ${join(dir, 'state')}`,
    `control: { socket: ${s.socket} }`,
    `http: { listen: "127.0.0.1:0", token_file: ${s.tokenFile} }`,
    'enforcer: dry-run',
    'defaults: { maxretry: 3, findtime: 10m, bantime: 1h }',
    'jails:',
    // From the beginning: lines appended right after start count even if the files are opened a moment later.
    `  sshd: { sources: [{ file: ${s.auth}, start_at: beginning }] }`,
    `  openvpn: { enabled: true, sources: [{ file: ${s.vpn}, start_at: beginning }], programs: [ovpn-server] }`,
    extra,
  ].join('\n'));
  return s;
}

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');
export const syslogTime = (d = new Date()): string => `${MON[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;

let pid = 1000;
/** One failed SSH login from `address` appended to auth.log. */
export function sshFailure(s: Setup, address: string, user = 'root'): void {
  appendFileSync(s.auth, `${syslogTime()} web1 sshd[${pid++}]: Failed password for ${user} from ${address} port ${40000 + (pid % 20000)} ssh2\n`);
}

/** An OpenVPN health warning (never a reason to ban). */
export function vpnSaturation(s: Setup): void {
  appendFileSync(s.vpn, `${syslogTime()} gateway ovpn-server[812]: laptop/203.0.113.20:443 MULTI: packet dropped due to output saturation\n`);
}

/** The dashboard/API address the daemon logged at start. */
export async function httpUrl(daemon: RunningDaemon): Promise<string> {
  const m = await waitFor(() => /http: dashboard, API and \/metrics on (\S+)\//.exec(daemon.output()), 10_000, () => `no HTTP address in:\n${daemon.output()}`);
  return m[1]!;
}
