import { spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';

/**
 * The tools our users run today, measured on the same input in the same run:
 * sshguard's parser and fail2ban-regex with the stock sshd filter. Absent
 * tools are reported as such (the bench never fails for them).
 */

export const SSHG_PARSER = ['/usr/libexec/sshguard/sshg-parser', '/usr/lib/x86_64-linux-gnu/sshg-parser', '/usr/sbin/sshg-parser'].find((p) => existsSync(p)) ?? null;
export const FAIL2BAN_REGEX = ['/usr/bin/fail2ban-regex'].find((p) => existsSync(p)) ?? null;
export const FAIL2BAN_SSHD_FILTER = '/etc/fail2ban/filter.d/sshd.conf';

/** Seconds for sshg-parser to read `file` on stdin, or null when it is not installed. */
export function timeSshgParser(file: string): number | null {
  if (!SSHG_PARSER) return null;
  const input = openSync(file, 'r');
  const output = openSync('/dev/null', 'w');
  try {
    const t = process.hrtime.bigint();
    const r = spawnSync(SSHG_PARSER, [], { stdio: [input, output, 'inherit'] });
    if (r.status !== 0) return null;
    return Number(process.hrtime.bigint() - t) / 1e9;
  } finally {
    closeSync(input);
    closeSync(output);
  }
}

/** Seconds for fail2ban-regex with the stock sshd filter over `file`, or null when it is not installed. */
export function timeFail2banRegex(file: string, filter = FAIL2BAN_SSHD_FILTER): number | null {
  if (!FAIL2BAN_REGEX || !existsSync(filter)) return null;
  const t = process.hrtime.bigint();
  const r = spawnSync(FAIL2BAN_REGEX, [file, filter], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) return null;
  return Number(process.hrtime.bigint() - t) / 1e9;
}
