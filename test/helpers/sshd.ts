/**
 * A real OpenSSH server in the topology's server namespace, and real `ssh`
 * clients (driven by `sshpass`) in the other namespaces.
 *
 * Nothing on the host changes: the test user exists only in copies of
 * /etc/passwd and /etc/shadow bind-mounted over the originals inside sshd's
 * own mount namespace (`ip netns exec` gives every process one, with mounts
 * that never propagate back), and sshd's privilege-separation directory
 * /run/sshd lives on a tmpfs mounted over /run in that same mount namespace.
 * sshd logs to stderr (`-D -e`, LogLevel VERBOSE); each line is written to
 * `logFile` with a syslog envelope, as rsyslog would write auth.log.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ExecResult, Role, Topology } from './netns.js';
import { syslogWriter } from './e2e.js';

export interface Sshd {
  user: string;
  password: string;
  /** sshd's stderr so far (for failure messages). */
  output(): string;
  /** One `ssh` login from `role` running `command`; a nonzero exit is returned, not thrown. */
  login(role: Role, password: string, command?: string): Promise<ExecResult>;
  /** Logs in from `role` and keeps the session open (remote `sleep`); `ended` resolves with ssh's exit code. */
  openSession(role: Role): Promise<{ ended: Promise<number | null>; proc: ChildProcess }>;
}

const SSH_OPTIONS = [
  '-F', '/dev/null',
  '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
  '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password', '-o', 'NumberOfPasswordPrompts=1',
  '-o', 'ConnectTimeout=3', '-o', 'BatchMode=no',
];

export async function startSshd(topology: Topology, dir: string, logFile: string): Promise<Sshd> {
  const user = `pctest${randomBytes(3).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);

  const passwd = join(dir, 'passwd');
  const shadow = join(dir, 'shadow');
  copyFileSync('/etc/passwd', passwd);
  copyFileSync('/etc/shadow', shadow);
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: password, encoding: 'utf8' }).trim();
  writeFileSync(passwd, `${user}:x:64999:65534:Portcullis test:/tmp:/bin/sh\n`, { flag: 'a' });
  writeFileSync(shadow, `${user}:${hash}:19000:0:99999:7:::\n`, { flag: 'a', mode: 0o600 });

  const config = join(dir, 'sshd_config');
  writeFileSync(config, [
    `ListenAddress ${topology.addresses.server.v4}:22`,
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'LogLevel VERBOSE',
    'UsePAM no',
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    'StrictModes no',
    'AuthorizedKeysFile none',
    'MaxStartups 100',
    '',
  ].join('\n'));
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    'mkdir -m 0755 /run/sshd',
    `mount --bind ${passwd} /etc/passwd`,
    `mount --bind ${shadow} /etc/shadow`,
    `exec /usr/sbin/sshd -D -e -f ${config}`,
  ].join('\n');
  const proc = topology.spawn('server', '/bin/sh', ['-c', script]);
  const write = syslogWriter(logFile, 'server', 'sshd', proc.pid ?? 0);
  let output = '';
  let pending = '';
  let listening: () => void = () => {};
  const ready = new Promise<void>((resolve) => (listening = resolve));
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      write(line);
      if (line.startsWith('Server listening on')) listening();
    }
  });
  const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`sshd exited with ${code}:\n${output}`))));
  exited.catch(() => {});
  await Promise.race([ready, exited]);

  const host = `${user}@${topology.addresses.server.v4}`;
  return {
    user,
    password,
    output: () => output,
    login: (role, pw, command = 'echo logged-in') => topology.exec(role, 'sshpass', ['-p', pw, 'ssh', ...SSH_OPTIONS, host, command], { allowFailure: true }),
    async openSession(role) {
      const child = topology.spawn(role, 'sshpass', ['-p', password, 'ssh', ...SSH_OPTIONS, host, 'echo session-open; exec sleep 120']);
      const ended = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout!.setEncoding('utf8').on('data', (s: string) => {
          out += s;
          if (out.includes('session-open')) resolve();
        });
        void ended.then((code) => reject(new Error(`ssh session from ${role} ended with ${code} before it opened`)));
      });
      return { ended, proc: child };
    },
  };
}
