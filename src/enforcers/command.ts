import { formatNetwork } from '../core/address.js';
import { PortcullisError } from '../core/errors.js';
import { ExecRunner, inNetns, type CommandRunner } from './command-runner.js';
import {
  banKey, banNetwork, checkJailName, reconcilePlan, secondsLeft,
  type BanEntry, type Enforcer, type EnforcerChanges, type JailFirewallSpec, type ReconcileResult,
} from './enforcer.js';

/**
 * User-defined ban and unban commands, for firewalls Portcullis does not know
 * (a cloud security group CLI, a router's API, a hosting panel).
 *
 * A command is an argv array; placeholders are replaced inside each argument
 * and every argument stays one argument: nothing is ever handed to a shell, so
 * no value can become syntax. Values are restricted anyway: `{target}` is a
 * canonical address or CIDR, `{jail}` a validated jail name; log text (user
 * names, reasons) is deliberately not offered as a placeholder.
 *
 * Placeholders: {target} {jail} {family} (`inet`/`inet6`) {prefix} (prefix length)
 * {until} (ISO-8601, or `never`) {seconds} (seconds left, 0 when permanent)
 * {ports} (comma-separated, empty for all) {protocol} (`tcp`/`udp`/`all`).
 *
 * When a shell is really wanted, give `{ shell: 'script' }`: the script runs as
 * `/bin/sh -c SCRIPT portcullis TARGET JAIL FAMILY UNTIL SECONDS`, so it reads
 * the values as "$1" … "$5" and they are never spliced into its text.
 *
 * User commands cannot be listed, so `list()` reports what this process did;
 * after a restart `reconcile` runs the ban command for every wanted ban: make
 * the commands idempotent.
 */

export type CommandTemplate = readonly string[] | { shell: string };

export interface CommandEnforcerOptions {
  ban: CommandTemplate;
  unban: CommandTemplate;
  /** Run once by `setup()` / `teardown()`, with {jail} placeholders only, per jail. */
  setupJail?: CommandTemplate;
  teardownJail?: CommandTemplate;
  netns?: string;
  runner?: CommandRunner;
  timeoutMs?: number;
  now?: () => number;
}

export class CommandEnforcerError extends PortcullisError {
  override name = 'CommandEnforcerError';
}

const PLACEHOLDERS = ['target', 'jail', 'family', 'prefix', 'until', 'seconds', 'ports', 'protocol'] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];

/** Checks a template once, at configuration time, so mistakes surface before the first ban. */
export function checkTemplate(template: CommandTemplate, what: string): void {
  if (!Array.isArray(template)) {
    const script = (template as { shell: string }).shell;
    if (typeof script !== 'string' || script.trim() === '') throw new CommandEnforcerError(`${what}: shell script is empty`, 2);
    if (/\{[a-z]+\}/.test(script)) {
      throw new CommandEnforcerError(
        `${what}: a shell script cannot contain placeholders such as {target}, because splicing values into shell text is how injection happens; read them as "$1" (target), "$2" (jail), "$3" (family), "$4" (until), "$5" (seconds)`,
        2,
      );
    }
    return;
  }
  const argv = template as readonly string[];
  if (argv.length === 0 || argv[0] === '') throw new CommandEnforcerError(`${what}: the command is empty; give the program and its arguments as a list`, 2);
  for (const arg of argv) {
    for (const m of arg.matchAll(/\{([a-z_]+)\}/g)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(m[1]!)) {
        throw new CommandEnforcerError(`${what}: unknown placeholder {${m[1]}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}; log text such as user names is never offered)`, 2);
      }
    }
  }
}

/** The argv for one entry: placeholders substituted inside each argument, argument boundaries untouched. */
export function renderCommand(template: CommandTemplate, values: Record<Placeholder, string>): string[] {
  if (!Array.isArray(template)) {
    const { shell } = template as { shell: string };
    return ['/bin/sh', '-c', shell, 'portcullis', values.target, values.jail, values.family, values.until, values.seconds];
  }
  return (template as readonly string[]).map((arg) => arg.replace(/\{([a-z_]+)\}/g, (_, name: string) => values[name as Placeholder] ?? ''));
}

export class CommandEnforcer implements Enforcer {
  readonly name = 'command';
  private readonly runner: CommandRunner;
  private readonly now: () => number;
  private readonly jails = new Map<string, JailFirewallSpec>();
  /** What this process has banned (user commands cannot be asked). */
  private readonly active = new Map<string, BanEntry>();

  constructor(private readonly options: CommandEnforcerOptions) {
    checkTemplate(options.ban, 'enforcer command ban');
    checkTemplate(options.unban, 'enforcer command unban');
    if (options.setupJail) checkTemplate(options.setupJail, 'enforcer command setup');
    if (options.teardownJail) checkTemplate(options.teardownJail, 'enforcer command teardown');
    this.runner = inNetns(options.runner ?? new ExecRunner(), options.netns);
    this.now = options.now ?? Date.now;
  }

  async setup(jails: readonly JailFirewallSpec[]): Promise<void> {
    for (const spec of jails) checkJailName(spec.jail);
    this.jails.clear();
    for (const spec of jails) this.jails.set(spec.jail, spec);
    if (this.options.setupJail) for (const spec of jails) await this.exec(this.options.setupJail, this.jailValues(spec));
  }

  async apply(changes: EnforcerChanges): Promise<void> {
    const now = this.now();
    const banned = new Set(changes.ban.map(banKey));
    // Validate the whole batch before running anything.
    const unbans = changes.unban.filter((u) => !banned.has(banKey(u))).map((u) => this.entryValues(u, now));
    const bans = changes.ban.filter((b) => secondsLeft(b.until, now) !== 0).map((b) => this.entryValues(b, now));
    const failures: string[] = [];
    for (const { entry, values } of unbans) {
      await this.exec(this.options.unban, values).then(() => this.active.delete(banKey(entry)), (err: Error) => failures.push(err.message));
    }
    for (const { entry, values } of bans) {
      await this.exec(this.options.ban, values).then(() => this.active.set(banKey(entry), entry), (err: Error) => failures.push(err.message));
    }
    if (failures.length > 0) throw new CommandEnforcerError(`${failures.length} enforcer command(s) failed: ${failures.join('; ')}`);
  }

  async list(): Promise<BanEntry[]> {
    const now = this.now();
    for (const [key, entry] of this.active) if (entry.until !== null && entry.until <= now) this.active.delete(key);
    return [...this.active.values()];
  }

  async reconcile(wanted: readonly BanEntry[]): Promise<ReconcileResult> {
    const plan = reconcilePlan(await this.list(), wanted.filter((w) => this.jails.has(w.jail)));
    await this.apply(plan);
    return { added: plan.ban.length, removed: plan.unban.length };
  }

  async teardown(): Promise<void> {
    await this.apply({ ban: [], unban: [...this.active.values()] });
    if (this.options.teardownJail) for (const spec of this.jails.values()) await this.exec(this.options.teardownJail, this.jailValues(spec));
  }

  private async exec(template: CommandTemplate, values: Record<Placeholder, string>): Promise<void> {
    const [command, ...args] = renderCommand(template, values);
    await this.runner.run(command!, args, { timeoutMs: this.options.timeoutMs ?? 30_000 });
  }

  private jailValues(spec: JailFirewallSpec): Record<Placeholder, string> {
    return {
      target: '', family: '', prefix: '', until: '', seconds: '',
      jail: spec.jail,
      ports: (spec.ports ?? []).join(','),
      protocol: spec.protocol,
    };
  }

  private entryValues(entry: BanEntry, now: number): { entry: BanEntry; values: Record<Placeholder, string> } {
    const spec = this.jails.get(entry.jail);
    if (!spec) throw new CommandEnforcerError(`jail ${entry.jail} is not in the command enforcer's setup (is the jail enabled?)`);
    const net = banNetwork(entry);
    const target = formatNetwork(net);
    return {
      entry: { ...entry, target },
      values: {
        ...this.jailValues(spec),
        target,
        family: net.family === 4 ? 'inet' : 'inet6',
        prefix: String(net.prefix),
        until: entry.until === null ? 'never' : new Date(entry.until).toISOString(),
        seconds: String(secondsLeft(entry.until, now) ?? 0),
      },
    };
  }
}
