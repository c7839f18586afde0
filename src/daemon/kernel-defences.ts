import type { Config, JailConfig } from '../config/load.js';
import type { Logger } from '../core/log.js';
import type { Decision } from '../core/types.js';
import type { Enforcer, JailFirewallSpec } from '../enforcers/enforcer.js';
import { portMatch } from '../enforcers/nftables.js';
import { hasDefences, NftablesDefences, type KernelBan } from '../enforcers/nftables-limits.js';
import { Allowlist, AllowlistResolver, type AllowlistSourceStatus } from '../policy/allowlist.js';
import type { Pipeline } from './pipeline.js';

/**
 * Wires the defences the kernel enforces by itself into the daemon:
 * - resolves the allowlists' host:, spf: and file: entries (shared by every jail's
 *   Allowlist in the pipeline) and keeps the firewall's allow sets equal to them;
 * - records the bans the kernel made for connection limits (origin `kernel`), so
 *   they show in the database, `status`, notifications, and get flushed;
 * - applies siege-on / siege-off decisions to the firewall.
 */

export interface AllowlistStatus {
  sources: AllowlistSourceStatus[];
}

export class KernelDefences {
  readonly resolver: AllowlistResolver;
  private firewall: NftablesDefences | null = null;
  private readonly global: Allowlist;
  private readonly perJail = new Map<string, Allowlist>();
  private syncing: Promise<void> = Promise.resolve();

  constructor(
    config: Config,
    private readonly pipeline: () => Pipeline,
    private readonly record: (ban: KernelBan, reason: string) => void,
    private readonly log: Logger,
  ) {
    this.resolver = new AllowlistResolver({
      ...(config.dns?.servers.length ? { servers: config.dns.servers } : {}),
      ...(config.dns ? { dnsTimeoutMs: config.dns.timeoutMs } : {}),
      log: (level, message) => (level === 'warn' ? log.warn(message) : log.info(message)),
    });
    this.global = new Allowlist(config.ignoreip, { entries: config.allowlist ?? [], resolver: this.resolver });
  }

  /** Takes the enforcers' jails: those on nftables with `limits` or `siege` get the firewall side. */
  useEnforcers(jails: readonly JailConfig[], assignments: ReadonlyArray<{ enforcer: Enforcer; jails: JailFirewallSpec[] }>): void {
    const log = this.log;
    const nft = assignments.find((a) => a.enforcer.name === 'nftables');
    const specs = nft?.jails.filter(hasDefences) ?? [];
    for (const jail of jails) {
      if ((jail.limits || jail.siege) && !specs.some((s) => s.jail === jail.name)) {
        log.warn(`[${jail.name}] ${jail.limits ? 'connection limits' : 'siege rate limits'} are enforced by nftables only; this jail's enforcer cannot, so ${jail.limits ? 'they are' : 'only the detection part is'} in effect${jail.limits ? ' nowhere' : ''}`);
      }
    }
    this.firewall = specs.length === 0 ? null : new NftablesDefences(specs, {
      onKernelBan: (ban) => this.onKernelBan(ban),
      isRecorded: (jail, target) => this.pipeline().jails.get(jail)?.active.has(target) ?? false,
      warn: (m) => log.warn(m),
    }, portMatch);
    for (const spec of specs) {
      const jail = jails.find((j) => j.name === spec.jail)!;
      this.perJail.set(spec.jail, new Allowlist(jail.ignoreip, { entries: jail.allowlist ?? [], resolver: this.resolver, includeHost: false }));
    }
  }

  /** Resolves the allowlists (waiting at most `waitMs` for slow DNS: entries fill in when they arrive). */
  async resolveAllowlists(waitMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.resolver.start(), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  /** After the enforcers' setup: the firewall side (allow sets, overload watching, no siege left over). */
  async start(): Promise<void> {
    if (!this.firewall) return;
    await this.firewall.start();
    this.resolver.on('change', () => void this.syncAllowSets());
    await this.syncAllowSets();
  }

  onDecision(d: Decision): void {
    this.firewall?.onDecision(d).catch((err: Error) => this.log.error(`[${d.jail}] could not apply ${d.action} to the firewall: ${err.message}`));
  }

  status(): AllowlistStatus {
    return { sources: this.resolver.status() };
  }

  async stop(): Promise<void> {
    this.resolver.stop();
    await this.firewall?.stop();
  }

  private syncAllowSets(): Promise<void> {
    // One sync at a time, in order: the last one always reflects the latest resolution.
    this.syncing = this.syncing.then(() =>
      this.firewall!.syncAllowlists(this.global.networks(), new Map([...this.perJail].map(([jail, list]) => [jail, list.networks()]))).catch((err: Error) =>
        this.log.error(`could not update the firewall's allowlist sets: ${err.message}`),
      ),
    );
    return this.syncing;
  }

  private onKernelBan(ban: KernelBan): void {
    const runtime = this.pipeline().jails.get(ban.jail);
    if (!runtime) return;
    const allowed = runtime.allowlist.match(ban.target);
    if (allowed !== null) {
      // Allowlisted after the kernel saw it (a name resolved meanwhile): never banned.
      this.log.warn(`[${ban.jail}] the kernel put ${ban.target} over its connection limits, but it is allowlisted (${allowed}): released`);
      this.onDecision({ action: 'unban', target: ban.target, jail: ban.jail, time: Date.now(), until: null, reason: `allowlisted (${allowed})`, origin: 'kernel' });
      return;
    }
    const l = runtime.config.limits;
    const what = [
      l?.maxSrcConn != null ? `more than ${l.maxSrcConn} connections at once` : null,
      l?.maxSrcConnRate ? `more than ${l.maxSrcConnRate.count} new connections within ${l.maxSrcConnRate.seconds}s` : null,
    ].filter(Boolean).join(' or ');
    const ports = l?.ports ?? runtime.config.ports;
    this.record(ban, `connection limits: ${what}${ports ? ` to port ${ports.join(', ')}` : ''} (kernel overload)`);
  }
}
