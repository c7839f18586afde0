import { existsSync, readFileSync } from 'node:fs';
import { DEFAULT_CONFIG_PATH, missingConfigError } from '../config/files.js';
import { loadConfig, type Config } from '../config/load.js';
import { UsageError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { bannedJson } from '../control/banned.js';
import { HttpServer } from '../control/http.js';
import { ControlServer, JsonPieces } from '../control/server.js';
import { Daemon } from '../daemon/daemon.js';
import { configFromFail2ban } from '../fail2ban/import.js';
import { EmailNotifier } from '../notifiers/email.js';
import { closeNotifiers, connectNotifiers, type Notifier } from '../notifiers/notifier.js';
import { WebhookNotifier } from '../notifiers/webhook.js';
import { decisionJson } from './format.js';

/**
 * `portcullis run`: the daemon with its control socket, HTTP server and notifiers,
 * until SIGTERM or SIGINT. Loaded only by that command, so the others start fast.
 */

export interface RunOptions {
  config: string;
  dryRun?: boolean;
  stdin?: boolean;
  flushOnExit?: boolean;
  fail2banConfig?: string;
  acceptUnknownActions?: boolean;
}

export async function runDaemon(opts: RunOptions): Promise<void> {
  const log = createLogger();
  // A --config the admin named must exist: the embedded defaults instead would enforce jails they never asked for.
  const named = opts.config !== DEFAULT_CONFIG_PATH;
  if (named && !existsSync(opts.config)) throw missingConfigError(opts.config);
  const config = opts.fail2banConfig ? fail2banRunConfig(opts.fail2banConfig, opts.config, opts.acceptUnknownActions ?? false, log) : loadConfig(opts.config);
  if (config.files.length === 0) log.info(`no ${opts.config}: running on the embedded defaults (sshd jail)`);
  const daemon = new Daemon(config, { log, dryRun: opts.dryRun ?? false, stdin: opts.stdin ?? false, flushOnExit: opts.flushOnExit ?? false });
  const control = new ControlServer(config.controlSocket, (req) => handleControl(daemon, req.cmd, req.args ?? {}), log);
  const http = new HttpServer(daemon, config, log);
  const notifiers: Notifier[] = [
    ...(config.notify.email ? [new EmailNotifier(config.notify.email, log)] : []),
    ...config.notify.webhooks.map((w) => new WebhookNotifier(w, log)),
  ];
  connectNotifiers(daemon, notifiers);
  await control.listen();
  await http.listen();
  await daemon.start();
  log.info(`control socket ${config.controlSocket}`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${signal}: stopping`);
      void control.close().then(() => http.close()).then(() => daemon.stop()).then(() => closeNotifiers(notifiers, log)).then(resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

async function handleControl(daemon: Daemon, cmd: string, args: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'status':
      return daemon.status();
    case 'banned':
      return new JsonPieces(bannedJson(daemon.store));
    case 'explain':
      return daemon.explain(String(args.address));
    case 'ban': {
      const d = daemon.ban(String(args.target), (args.jail as string | undefined) ?? null, args.for === undefined ? undefined : (args.for as number | null), 'cli');
      await daemon.settled();
      return decisionJson(d);
    }
    case 'unban': {
      const made = daemon.unban((args.target as string | null) ?? null, (args.jail as string | undefined) ?? null, 'cli');
      await daemon.settled();
      return made.map(decisionJson);
    }
    case 'sources':
      return daemon.sourceStatus();
    case 'ping':
      // The socket answers during a long start (restoring bans) too; `pong` means the sources are open.
      return daemon.running ? 'pong' : 'starting';
    default:
      throw new UsageError(`unknown control command "${cmd}"`);
  }
}

function fail2banRunConfig(dir: string, configPath: string, acceptUnknownActions: boolean, log: { info(message: string): void }): Config {
  const own = existsSync(configPath) ? [{ file: configPath, text: readFileSync(configPath, 'utf8') }] : [];
  const { config, report } = configFromFail2ban(dir, own, { acceptUnknownActions });
  for (const r of report) log.info(`fail2ban import: ${r}`);
  return config;
}
