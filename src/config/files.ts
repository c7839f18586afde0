import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../core/errors.js';

/**
 * Which files make up the configuration, and the one setting commands that
 * talk to the daemon need (its control socket) read without validating the
 * rest: validation loads the schema, the filters and the fail2ban reader,
 * which was two thirds of the time `portcullis status` took to start.
 */

export const DEFAULT_CONFIG_PATH = '/etc/portcullis/portcullis.yaml';
export const DEFAULT_CONTROL_SOCKET = '/run/portcullis.sock';

export function missingConfigError(path: string): ConfigError {
  return new ConfigError(path, 1, 1, 'the configuration file does not exist; create it or pass --config with an existing file');
}

/**
 * The main config file plus `conf.d/*.yaml` beside it, in name order (later
 * files override earlier ones). A missing main file at the default path
 * means the embedded defaults; `requireFile` makes it an error.
 */
export function configFiles(path: string = DEFAULT_CONFIG_PATH, options: { requireFile?: boolean } = {}): string[] {
  const files: string[] = [];
  if (existsSync(path)) files.push(path);
  else if (options.requireFile) throw missingConfigError(path);
  const confd = join(path, '..', 'conf.d');
  if (existsSync(confd)) {
    for (const name of readdirSync(confd).sort()) if (/\.ya?ml$/.test(name)) files.push(join(confd, name));
  }
  return files;
}

/** `control.socket` as the daemon reads it from the same files (the last file setting it wins); a file that does not parse is skipped here, the daemon would not have started on it. */
export function controlSocketOf(path: string = DEFAULT_CONFIG_PATH): string {
  let socket = DEFAULT_CONTROL_SOCKET;
  for (const file of configFiles(path)) {
    let data: unknown;
    try {
      data = parse(readFileSync(file, 'utf8'));
    } catch {
      continue;
    }
    const control = (data as { control?: unknown } | null)?.control;
    const value = (control as { socket?: unknown } | null | undefined)?.socket;
    if (typeof value === 'string' && value !== '') socket = value;
  }
  return socket;
}
