import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Config, EnforcerName, JailConfig } from '../config/load.js';
import { PortcullisError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { CommandEnforcer } from './command.js';
import { DryRunEnforcer } from './dry-run.js';
import type { Enforcer, JailFirewallSpec } from './enforcer.js';
import { IpsetEnforcer } from './ipset.js';
import { NftablesEnforcer } from './nftables.js';
import { PfEnforcer } from './pf.js';

/**
 * Builds the enforcers the jails ask for (each jail may name several; the
 * global `enforcer` is the default) and which jails each one serves. Adding a
 * backend = one file implementing Enforcer plus one case here.
 */
export function createEnforcers(config: Config, jails: readonly JailConfig[], options: { dryRun: boolean; log: Logger }): Array<{ enforcer: Enforcer; jails: JailFirewallSpec[] }> {
  const byName = new Map<EnforcerName, JailFirewallSpec[]>();
  const fallback = resolveDefault(config, options);
  for (const jail of jails) {
    const names: EnforcerName[] = options.dryRun ? ['dry-run'] : jail.enforcers.length ? jail.enforcers : [fallback];
    for (const name of names) {
      const list = byName.get(name) ?? [];
      list.push(firewallSpec(jail));
      byName.set(name, list);
    }
  }
  return [...byName].map(([name, specs]) => ({ enforcer: create(name, config, options.log), jails: specs }));
}

export function firewallSpec(jail: JailConfig): JailFirewallSpec {
  return {
    jail: jail.name, ports: jail.ports, protocol: jail.protocol, verdict: jail.action, flush: jail.flush, forward: jail.forward,
    ...(jail.limits ? { limits: jail.limits } : {}),
    ...(jail.siege ? { siege: { rateLimit: jail.siege.rateLimit, allowlistOnly: jail.siege.allowlistOnly } } : {}),
  };
}

function resolveDefault(config: Config, options: { dryRun: boolean; log: Logger }): EnforcerName {
  if (config.enforcer !== 'auto') return config.enforcer;
  if (onPath('nft')) return 'nftables';
  options.log.warn('*** nft (nftables) is not installed: running in DRY-RUN mode — bans are decided and recorded but NOTHING IS BLOCKED. Install it with `apt-get install nftables`, or choose `enforcer:` in the config. ***');
  return 'dry-run';
}

function create(name: EnforcerName, config: Config, log: Logger): Enforcer {
  const onWarning = (m: string): void => log.warn(m);
  switch (name) {
    case 'nftables':
      return new NftablesEnforcer({ onWarning });
    case 'iptables':
      return new IpsetEnforcer({ onWarning });
    case 'pf':
      return new PfEnforcer();
    case 'command':
      if (!config.command) throw new PortcullisError('enforcer "command" needs a `command: { ban: [...], unban: [...] }` section in the config', 2);
      return new CommandEnforcer(config.command);
    case 'dry-run':
      return new DryRunEnforcer({ log: (line) => log.info(line) });
  }
}

function onPath(binary: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  return dirs.some((d) => d && existsSync(join(d, binary)));
}
