import { PortcullisError } from '../core/errors.js';
import { formatNetwork, parseNetwork, type Network } from '../core/address.js';
import { ExecRunner, inNetns, type CommandRunner } from './command-runner.js';
import type { FlushScope, Protocol } from './enforcer.js';

/**
 * Cuts an offender's established connections, like pf's `overload … flush global`:
 * a ban only stops new packets, but an attacker already logged in (or a flood
 * riding an accepted connection) must be thrown out too.
 *
 * Two kernel mechanisms, both through the command runner:
 * - `conntrack -D` forgets the offender's tracked flows, so `ct state established
 *   accept` rules elsewhere (and NAT/forwarded flows) no longer let them through;
 * - `ss -K` destroys local sockets to the offender (kernel CONFIG_INET_DIAG_DESTROY):
 *   the server process sees an error at once and the kernel sends the peer a reset.
 * Scope `rule` limits both to the jail's ports and protocol; `global` takes everything.
 */

export interface ConnectionFlusherOptions {
  /** Run inside this network namespace (`ip netns exec NAME`). */
  netns?: string;
  runner?: CommandRunner;
}

export interface FlushTarget {
  /** Canonical address or CIDR. */
  target: string;
  scope: FlushScope;
  /** For scope `rule`: the jail's ports (null = all) and protocol. */
  ports?: readonly number[] | null;
  protocol?: Protocol;
}

export class FlushError extends PortcullisError {
  override name = 'FlushError';
  constructor(readonly target: string, readonly failures: string[]) {
    super(`could not cut all connections of ${target}: ${failures.join('; ')}`);
  }
}

export class ConnectionFlusher {
  private readonly runner: CommandRunner;

  constructor(options: ConnectionFlusherOptions = {}) {
    this.runner = inNetns(options.runner ?? new ExecRunner(), options.netns);
  }

  /** Runs conntrack and ss for `request`; both are tried even when one fails, then failures are reported together. */
  async flush(request: FlushTarget): Promise<void> {
    if (request.scope === 'none') return;
    const net = parseNetwork(request.target);
    if (net === null) throw new PortcullisError(`cannot flush connections of ${JSON.stringify(request.target)}: not an address or CIDR`);
    const failures: string[] = [];
    for (const args of conntrackCommands(net, request)) {
      // conntrack exits 1 when no flow matched ("0 flow entries have been deleted"): nothing to cut is fine.
      await this.runner.run('conntrack', args, { okExitCodes: [0, 1] }).catch((err: Error) => failures.push(err.message));
    }
    await this.runner.run('ss', ssCommand(net, request)).catch((err: Error) => failures.push(err.message));
    if (failures.length > 0) throw new FlushError(request.target, failures);
  }
}

function protocolsOf(request: FlushTarget): ('tcp' | 'udp')[] {
  const protocol = request.protocol ?? 'all';
  return protocol === 'all' ? ['tcp', 'udp'] : [protocol];
}

function conntrackCommands(net: Network, request: FlushTarget): string[][] {
  const base = ['-D', '-f', net.family === 4 ? 'ipv4' : 'ipv6', '-s', formatNetwork(net)];
  const ports = request.ports ?? null;
  if (request.scope === 'global' || (ports === null && (request.protocol ?? 'all') === 'all')) return [base];
  const commands: string[][] = [];
  for (const proto of protocolsOf(request)) {
    if (ports === null) commands.push([...base, '-p', proto]);
    else for (const port of ports) commands.push([...base, '-p', proto, '--dport', String(port)]);
  }
  return commands;
}

/** `ss -K` takes a filter expression as separate words; IPv6 hosts go in brackets so `:` is not read as a port. */
function ssCommand(net: Network, request: FlushTarget): string[] {
  // ss reads `[2001:db8::/48]` as an IPv6 prefix; without brackets the last `:` group would be taken for a port.
  const host = net.family === 6 ? `[${formatNetwork(net)}]` : formatNetwork(net);
  const kinds = request.scope === 'global' ? ['-t', '-u'] : protocolsOf(request).map((p) => (p === 'tcp' ? '-t' : '-u'));
  const args = ['-K', '-n', ...kinds, 'dst', host];
  const ports = request.scope === 'rule' ? request.ports ?? null : null;
  if (ports !== null && ports.length > 0) {
    args.push('and', '(');
    ports.forEach((port, i) => args.push(...(i > 0 ? ['or'] : []), 'sport', '=', `:${port}`));
    args.push(')');
  }
  return args;
}

/** After a batch: cuts the connections of every new ban whose jail asks for it; failures are warnings, the ban stands. */
export async function flushBanned(
  flusher: ConnectionFlusher,
  bans: readonly { target: string; jail: string }[],
  specOf: (jail: string) => { flush?: FlushScope; ports: readonly number[] | null; protocol: Protocol },
  warn: (message: string) => void,
): Promise<void> {
  for (const ban of bans) {
    const spec = specOf(ban.jail);
    if (!spec.flush || spec.flush === 'none') continue;
    await flusher
      .flush({ target: ban.target, scope: spec.flush, ports: spec.ports, protocol: spec.protocol })
      .catch((err: Error) => warn(err.message));
  }
}
