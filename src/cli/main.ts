#!/usr/bin/env node
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_CONFIG_PATH, localSettingsOf } from '../config/files.js';
import type { Config } from '../config/load.js';
import { parseBantime } from '../core/duration.js';
import { PortcullisError, UsageError } from '../core/errors.js';
import { callDaemon, callDaemonRaw, streamDaemonResult } from '../control/client.js';
import type { Explanation, StatusReport } from '../daemon/daemon.js';
import { decisionJson, formatBanned, formatDecision, formatExplanation, formatStatus } from './format.js';
import type { RunOptions } from './run.js';

// Commands import what only they need when they run: `status` or `banned` start in a
// fraction of the time it takes to load the daemon, the fail2ban reader or the enforcers.

const program = new Command('portcullis')
  .description('Intrusion prevention: follows service logs, detects brute force and floods, bans offenders in the kernel firewall.')
  .version(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string)
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(s) });

const configOption = () => new Option('-c, --config <file>', 'configuration file (conf.d/*.yaml beside it is read too)').default(DEFAULT_CONFIG_PATH);
const socketOption = () => new Option('--socket <path>', 'control socket of the daemon (default: from the config)');

function daemonSocket(opts: { config: string; socket?: string }): string {
  if (opts.socket) return opts.socket;
  return localSettingsOf(opts.config).controlSocket;
}

program
  .command('run')
  .description('run the daemon')
  .addOption(configOption())
  .option('--dry-run', 'decide but do not touch the firewall (decisions are logged)')
  .option('--stdin', 'also read log lines from standard input, for every enabled jail')
  .option('--flush-on-exit', 'remove the bans from the firewall when stopping (default: they stay, and are reconciled at start)')
  .option('--fail2ban-config <dir>', 'run on the jails of a fail2ban configuration directory (e.g. /etc/fail2ban), as import-fail2ban converts them; --config files apply on top')
  .option('--accept-unknown-actions', 'with --fail2ban-config: load jails whose fail2ban actions have no equivalent, with the default enforcer')
  .action(async (opts: RunOptions) => (await import('./run.js')).runDaemon(opts));

program
  .command('import-fail2ban')
  .description('convert a fail2ban configuration (jails, their filters and options) into a Portcullis configuration, listing what cannot be carried over')
  .argument('[dir]', 'fail2ban configuration directory', '/etc/fail2ban')
  .option('--out <dir>', 'write portcullis.yaml there (default: print it)')
  .option('--accept-unknown-actions', 'keep jails whose fail2ban actions have no equivalent, with the default enforcer')
  .action(async (dir: string, opts: { out?: string; acceptUnknownActions?: boolean }) => {
    const { importFail2ban } = await import('../fail2ban/import.js');
    const result = importFail2ban(dir, { acceptUnknownActions: opts.acceptUnknownActions ?? false });
    if (opts.out) {
      mkdirSync(opts.out, { recursive: true });
      writeFileSync(join(opts.out, 'portcullis.yaml'), result.yaml);
      process.stderr.write(`wrote ${join(opts.out, 'portcullis.yaml')}\n`);
    } else {
      process.stdout.write(result.yaml);
    }
    const enabled = result.imported.jails.filter((j) => j.enabled && !result.skipped.includes(j.name)).map((j) => j.name);
    process.stderr.write(`imported ${enabled.length} enabled jail(s): ${enabled.join(', ') || 'none'}\n`);
    if (result.report.length) process.stderr.write(`not carried over:\n${result.report.map((r) => `  ${r}`).join('\n')}\n`);
  });

program
  .command('check')
  .description('validate the configuration without starting')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const { loadConfig } = await import('../config/load.js');
    const config = loadConfig(opts.config, { requireFile: opts.config !== DEFAULT_CONFIG_PATH });
    const enabled = config.jails.filter((j) => j.enabled);
    process.stdout.write(`${config.files.length ? config.files.join(', ') : 'embedded defaults'}: OK — ${enabled.length} jail(s) enabled: ${enabled.map((j) => j.name).join(', ') || 'none'}\n`);
  });

program
  .command('print-pf-rules')
  .description('print the pf.conf lines (a table and a block rule per enabled jail) that the pf enforcer fills')
  .addOption(configOption())
  .action(async (opts: { config: string }) => {
    const [{ pfRules }, { firewallSpec }, { loadConfig }] = await Promise.all([import('../enforcers/pf.js'), import('../enforcers/index.js'), import('../config/load.js')]);
    const config = loadConfig(opts.config, { requireFile: opts.config !== DEFAULT_CONFIG_PATH });
    process.stdout.write(pfRules(config.jails.filter((j) => j.enabled).map(firewallSpec)));
  });

program
  .command('status')
  .description('jails, failures, bans and followed sources (like fail2ban-client status)')
  .argument('[jail]', 'show only this jail')
  .option('--json', 'machine-readable output')
  .addOption(configOption())
  .addOption(socketOption())
  .action(async (jail: string | undefined, opts: { json?: boolean; config: string; socket?: string }) => {
    const report = (await callDaemon(daemonSocket(opts), 'status')) as StatusReport;
    if (jail !== undefined) {
      report.jails = report.jails.filter((j) => j.name === jail);
      if (report.jails.length === 0) throw new UsageError(`no enabled jail named "${jail}"`);
    }
    process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report, jail !== undefined));
  });

program
  .command('ban')
  .description('ban an address or network now')
  .argument('<target>', 'IPv4/IPv6 address or CIDR')
  .option('--jail <jail>', 'jail whose ports and firewall set to use (default: the first enabled jail)')
  .option('--for <duration>', 'how long (e.g. 1h, 1d, permanent; default: the jail\'s bantime)')
  .addOption(configOption())
  .addOption(socketOption())
  .action(async (target: string, opts: { jail?: string; for?: string; config: string; socket?: string }) => {
    let duration: number | null | undefined;
    if (opts.for !== undefined) {
      duration = parseBantime(opts.for);
      if (duration === undefined) throw new UsageError(`--for ${opts.for}: expected a duration such as 90s, 10m, 1h, 1d, 1w, or permanent`);
    }
    const d = (await callDaemon(daemonSocket(opts), 'ban', { target, jail: opts.jail, for: duration })) as ReturnType<typeof decisionJson>;
    process.stdout.write(`banned ${d.target} in ${d.jail}${d.until ? ` until ${d.until}` : ' permanently'}\n`);
  });

program
  .command('unban')
  .description('lift the ban of an address or network (or every ban with --all)')
  .argument('[target]', 'IPv4/IPv6 address or CIDR')
  .option('--all', 'lift every ban')
  .option('--jail <jail>', 'only in this jail')
  .addOption(configOption())
  .addOption(socketOption())
  .action(async (target: string | undefined, opts: { all?: boolean; jail?: string; config: string; socket?: string }) => {
    if ((target === undefined) === !opts.all) throw new UsageError('give an address/CIDR to unban, or --all');
    const made = (await callDaemon(daemonSocket(opts), 'unban', { target: opts.all ? null : target, jail: opts.jail })) as unknown[];
    process.stdout.write(made.length ? `lifted ${made.length} ban(s)\n` : `${target ?? 'nothing'} was not banned\n`);
  });

program
  .command('banned')
  .description('list the active bans')
  .option('--json', 'machine-readable output')
  .addOption(configOption())
  .addOption(socketOption())
  .action(async (opts: { json?: boolean; config: string; socket?: string }) => {
    // The bans are in the state database: read it directly when we can (no daemon in between, and it
    // works while the daemon is stopped); through the daemon when it is named (--socket) or unreadable.
    const { bannedFromDatabase, collect, writeAll } = await import('./banned-direct.js');
    const direct = opts.socket === undefined ? await bannedFromDatabase(localSettingsOf(opts.config).stateDir) : null;
    if (opts.json) {
      if (direct !== null) await writeAll(direct, process.stdout);
      else await streamDaemonResult(daemonSocket(opts), 'banned', process.stdout);
      process.stdout.write('\n');
      return;
    }
    const json = direct !== null ? await collect(direct) : await callDaemonRaw(daemonSocket(opts), 'banned');
    process.stdout.write(formatBanned(JSON.parse(json) as Array<Record<string, unknown>>));
  });

program
  .command('explain')
  .description('why an address is banned or allowed right now')
  .argument('<address>', 'IPv4/IPv6 address')
  .option('--json', 'machine-readable output')
  .addOption(configOption())
  .addOption(socketOption())
  .action(async (address: string, opts: { json?: boolean; config: string; socket?: string }) => {
    const e = (await callDaemon(daemonSocket(opts), 'explain', { address })) as Explanation;
    process.stdout.write(opts.json ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e));
  });

program
  .command('test-filter')
  .description('run one filter over a log file and count what it matches (like fail2ban-regex)')
  .argument('<filter>', 'built-in filter name, or a fail2ban filter: fail2ban:NAME[option=value,…] or FILE.conf[option=value,…]')
  .argument('<logfile>', 'log file')
  .option('--json', 'one JSON object per matched line')
  .option('--program <name...>', 'extra syslog program names to offer to the filter')
  .action(async (name: string, file: string, opts: { json?: boolean; program?: string[] }) => {
    const [{ resolveFilter, testFilter }, { Fail2banFilter }, { formatFail2banSummary }] = await Promise.all([
      import('./test-filter.js'), import('../fail2ban/fail2ban-filter.js'), import('../fail2ban/regex-report.js'),
    ]);
    const filter = resolveFilter(name);
    const out: string[] = [];
    const report = await testFilter(filter, file, {
      maxLineLength: 16 * 1024,
      programs: opts.program ?? [],
      ...(opts.json ? { onMatch: (m) => { out.push(JSON.stringify(m)); if (out.length >= 4096) { process.stdout.write(`${out.join('\n')}\n`); out.length = 0; } } } : {}),
    });
    if (opts.json) {
      if (out.length) process.stdout.write(`${out.join('\n')}\n`);
      return;
    }
    const w = (s: string): boolean => process.stdout.write(`${s}\n`);
    w(`Filter:  ${report.filter}`);
    w(`File:    ${file}`);
    w('');
    w(`Lines: ${report.lines}, matched: ${report.matched}, ignored (other programs): ${report.ignored}, missed: ${report.missed}${report.overBudget ? ` (${report.overBudget} given up: the patterns ran over their time budget on a long line)` : ''}  [${Math.round(report.lines / Math.max(report.seconds, 1e-9)).toLocaleString('en')} lines/s]`);
    w('');
    w('Pattern hits:');
    for (const [p, n] of Object.entries(report.byPattern)) w(`  ${String(n).padStart(8)}  ${p}`);
    const addrs = Object.entries(report.byAddress).sort((a, b) => b[1] - a[1]);
    w('');
    w(`Addresses: ${addrs.length}`);
    for (const [a, n] of addrs.slice(0, 20)) w(`  ${String(n).padStart(8)}  ${a}`);
    if (addrs.length > 20) w(`  … and ${addrs.length - 20} more (use --json)`);
    if (filter instanceof Fail2banFilter) w(`\n${formatFail2banSummary(filter, report.seconds)}`);
  });

program
  .command('replay')
  .description('run the whole pipeline over logs at full speed on their own timestamps (nothing is enforced) and print every decision')
  .argument('<files...>', 'log files, or - for standard input')
  .option('-c, --config <file>', 'configuration (default: every built-in jail enabled with default thresholds)')
  .option('--json', 'one JSON decision per line')
  .action(async (files: string[], opts: { config?: string; json?: boolean }) => {
    const [{ replay }, { default: cliProgress }, { loadConfig, replayDefaults }] = await Promise.all([import('./replay.js'), import('cli-progress'), import('../config/load.js')]);
    const config: Config = opts.config ? loadConfig(opts.config, { requireFile: true }) : replayDefaults();
    const total = files.filter((f) => f !== '-' && existsSync(f)).reduce((n, f) => n + statSize(f), 0);
    const bar = process.stderr.isTTY && total > 8 << 20
      ? new cliProgress.SingleBar({ format: 'replay [{bar}] {percentage}% | {value}/{total} MB | {eta}s', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
      : null;
    bar?.start(Math.ceil(total / 1e6), 0);
    let before = 0;
    const lines: string[] = [];
    const emit = (s: string): void => {
      lines.push(s);
      if (lines.length >= 4096) { process.stdout.write(`${lines.join('\n')}\n`); lines.length = 0; }
    };
    const summary = await replay(config, files, {
      onDecision: (d) => emit(opts.json ? JSON.stringify(decisionJson(d)) : formatDecision(d)),
      onNotice: (m) => process.stderr.write(`portcullis: ${m}\n`),
      ...(bar ? { onProgress: (bytes: number) => { if (bytes - before > 1e6) { before = bytes; bar.update(Math.floor(bytes / 1e6)); } } } : {}),
    });
    bar?.stop();
    if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
    process.stderr.write(`replayed ${summary.lines} lines (${summary.matched} matched) in ${summary.seconds.toFixed(2)}s — ${Math.round(summary.lines / Math.max(summary.seconds, 1e-9)).toLocaleString('en')} lines/s; ${summary.bans} ban(s), ${summary.decisions} decision(s)\n`);
  });

function statSize(f: string): number {
  try { return statSync(f).size; } catch { return 0; }
}

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof PortcullisError) {
      process.stderr.write(`portcullis: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`portcullis: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  }
}

await main();
