import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../core/errors.js';

/**
 * Which files make up the configuration, and the settings commands that talk
 * to the daemon or read its state need (the control socket, the state
 * directory) read without validating the rest: validation loads the schema,
 * the filters and the fail2ban reader, which was two thirds of the time
 * `portcullis status` took to start.
 */

export const DEFAULT_CONFIG_PATH = '/etc/portcullis/portcullis.yaml';
export const DEFAULT_CONTROL_SOCKET = '/run/portcullis.sock';
export const DEFAULT_STATE_DIR = '/var/lib/portcullis';

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

/** The settings CLI commands need to find the daemon and its state, as the daemon reads them. */
export interface LocalSettings {
  controlSocket: string;
  stateDir: string;
}

/**
 * `control.socket` and `state_dir` from the same files the daemon reads (the last file setting one
 * wins), without validating the rest; a file that does not parse is skipped here, the daemon would
 * not have started on it.
 */
export function localSettingsOf(path: string = DEFAULT_CONFIG_PATH): LocalSettings {
  const settings: LocalSettings = { controlSocket: DEFAULT_CONTROL_SOCKET, stateDir: DEFAULT_STATE_DIR };
  for (const file of configFiles(path)) {
    let data: unknown;
    try {
      data = parse(readFileSync(file, 'utf8'));
    } catch {
      continue;
    }
    if (data === null || typeof data !== 'object') continue;
    const { control, state_dir: stateDir } = data as { control?: unknown; state_dir?: unknown };
    const socket = (control as { socket?: unknown } | null | undefined)?.socket;
    if (typeof socket === 'string' && socket !== '') settings.controlSocket = socket;
    if (typeof stateDir === 'string' && stateDir !== '') settings.stateDir = stateDir;
  }
  return settings;
}
