import { addressFamily, formatNetwork, networkCovers, parseNetwork, prefixOf } from '../core/address.js';

/**
 * Netblock escalation (seed 003: "block entire netblocks instead of individual
 * addresses"): when `threshold` distinct addresses of one /prefix4 (IPv4) or
 * /prefix6 (IPv6) were banned within `window`, the whole prefix is due a ban.
 * A second step counts the first step's prefix bans inside a wider prefix the
 * same way (three /24s of one /16 → the /16).
 *
 * Fed only with bans (never with lines), so it costs nothing on the hot path.
 * Memory: at most `threshold` members per prefix with bans inside the window;
 * prefixes are kept in "last ban" order, so expiry walks from the front.
 */

export interface EscalationStep {
  prefix4: number;
  prefix6: number;
  threshold: number;
  /** Milliseconds. */
  window: number;
  /** Milliseconds, or null for permanent. */
  bantime: number | null;
}

interface Evidence {
  /** Banned members (addresses, or the previous step's prefixes), oldest ban first. */
  members: string[];
  times: number[];
  last: number;
}

export interface Escalation {
  /** Index of the step that fired (0 = first). */
  step: number;
  /** Canonical CIDR due a ban. */
  prefix: string;
  members: string[];
}

export interface EscalationProgress {
  step: number;
  prefix: string;
  members: string[];
  threshold: number;
  window: number;
}

export class EscalationDetector {
  /** Per step: prefix → its members banned within the window. */
  private readonly levels: Array<Map<string, Evidence>>;
  escalations = 0;

  constructor(readonly steps: readonly EscalationStep[]) {
    this.levels = steps.map(() => new Map());
  }

  /** Which step a ban of `target` feeds: 0 for an address, k+1 for a prefix of step k's size, -1 for none. */
  private levelOf(target: string): number {
    const slash = target.indexOf('/');
    if (slash < 0) return 0;
    const length = Number(target.slice(slash + 1));
    const family = addressFamily(target);
    for (let k = 0; k < this.steps.length; k++) {
      if ((family === 4 ? this.steps[k]!.prefix4 : this.steps[k]!.prefix6) === length) return k + 1;
    }
    return -1;
  }

  private prefixFor(target: string, level: number): string {
    const step = this.steps[level]!;
    const slash = target.indexOf('/');
    const address = slash < 0 ? target : target.slice(0, slash);
    return prefixOf(address, addressFamily(address) === 4 ? step.prefix4 : step.prefix6);
  }

  /** Records a ban of `target` at `time`; returns the prefix now due a ban, or null. */
  onBan(target: string, time: number): Escalation | null {
    const level = this.levelOf(target);
    if (level < 0 || level >= this.steps.length) return null;
    const step = this.steps[level]!;
    const map = this.levels[level]!;
    const prefix = this.prefixFor(target, level);
    let e = map.get(prefix);
    if (e === undefined) {
      e = { members: [], times: [], last: time };
    } else {
      map.delete(prefix);
      let drop = 0;
      while (drop < e.times.length && e.times[drop]! <= time - step.window) drop++;
      if (drop) { e.members.splice(0, drop); e.times.splice(0, drop); }
      const again = e.members.indexOf(target);
      if (again >= 0) { e.members.splice(again, 1); e.times.splice(again, 1); }
    }
    e.members.push(target);
    e.times.push(time);
    e.last = Math.max(e.last, time);
    this.expire(time);
    if (e.members.length >= step.threshold) {
      this.escalations++;
      return { step: level, prefix, members: e.members };
    }
    map.set(prefix, e);
    return null;
  }

  /**
   * Forgets the evidence of `prefix` (its ban was lifted or refused) and of the
   * prefixes inside it, so it takes `threshold` new bans to escalate again.
   */
  forget(prefix: string): void {
    const net = parseNetwork(prefix);
    if (net === null) return;
    const lifted = formatNetwork(net);
    for (const map of this.levels) {
      for (const [key, e] of map) {
        const inner = parseNetwork(key)!;
        if (networkCovers(net, inner)) {
          map.delete(key);
          continue;
        }
        // The lifted prefix no longer counts towards the wider one around it.
        const at = e.members.indexOf(lifted);
        if (at >= 0) { e.members.splice(at, 1); e.times.splice(at, 1); }
      }
    }
  }

  /** Drops evidence older than each step's window. */
  expire(now: number): void {
    for (let k = 0; k < this.steps.length; k++) {
      const limit = now - this.steps[k]!.window;
      const map = this.levels[k]!;
      for (const [prefix, e] of map) {
        if (e.last > limit) break;
        map.delete(prefix);
      }
    }
  }

  /** For `explain`: how far the prefixes around `address` are from escalating at `now`. */
  progress(address: string, now: number): EscalationProgress[] {
    const out: EscalationProgress[] = [];
    let target = address;
    for (let k = 0; k < this.steps.length; k++) {
      const step = this.steps[k]!;
      const prefix = this.prefixFor(target, k);
      const e = this.levels[k]!.get(prefix);
      const members = e ? e.members.filter((_, i) => e.times[i]! > now - step.window) : [];
      out.push({ step: k, prefix, members, threshold: step.threshold, window: step.window });
      target = prefix;
    }
    return out;
  }

  /** Prefixes with evidence inside their window. */
  get tracked(): number {
    let n = 0;
    for (const m of this.levels) n += m.size;
    return n;
  }
}
