import { networkInterfaces } from 'node:os';
import { canonicalAddress, formatNetwork, networkContains, parseNetwork, type Network } from '../core/address.js';

/**
 * Addresses that must never be banned. Loopback and the host's own addresses
 * are always in it: locking out the machine itself is never the right answer.
 */
export class Allowlist {
  private readonly v4: Network[] = [];
  private readonly v6: Network[] = [];
  private readonly hostAddresses = new Set<string>();

  constructor(networks: readonly Network[], options: { includeHost?: boolean } = {}) {
    for (const n of [parseNetwork('127.0.0.0/8')!, parseNetwork('::1')!, ...networks]) {
      (n.family === 4 ? this.v4 : this.v6).push(n);
    }
    if (options.includeHost ?? true) {
      for (const list of Object.values(networkInterfaces())) {
        for (const i of list ?? []) {
          const a = canonicalAddress(i.address);
          if (a) this.hostAddresses.add(a);
        }
      }
    }
  }

  /** The entry that covers `address` (for `explain`), or null. */
  match(address: string): string | null {
    if (this.hostAddresses.has(address)) return `${address} (an address of this host)`;
    const list = address.includes(':') ? this.v6 : this.v4;
    for (const n of list) if (networkContains(n, address)) return formatNetwork(n);
    return null;
  }
}
