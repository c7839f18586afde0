import type { Decision } from '../core/types.js';
import { FailureRows, type StateChanges, type StoredEvidence } from './store.js';

/**
 * A commit as it crosses to the writer thread. A structured clone costs per object and per field:
 * a burst's bans as Decision objects took the daemon's thread 1.75 µs a ban to post, as columns 0.9.
 * Only what the store writes travels: failure rows a ban consumed in the same commit stay behind
 * (FailureRows.without), so their lines travel once, as the ban's evidence.
 */
export interface WireChanges extends Omit<StateChanges, 'bans' | 'evidenceToRead' | 'failuresAdded' | 'failuresConsumed'> {
  failuresAdded?: FailureRows;
  bans?: WireBans;
  /** Per StoredEvidence: the ban (index in `bans`) whose evidence starts with its placeholders, and the failure ids to read. */
  evidenceToRead?: Array<{ ban: number; ids: number[] }>;
}

export interface WireBans {
  targets: string[];
  jails: string[];
  times: number[];
  /** NaN: permanent. */
  untils: number[];
  reasons: string[];
  origins: string[];
  /** Every ban's evidence lines, one after the other; ban i's end at evidenceEnds[i]. */
  evidence: string[];
  evidenceEnds: number[];
}

export function toWire(changes: StateChanges): WireChanges {
  const { bans, evidenceToRead, failuresAdded, failuresConsumed, ...rest } = changes;
  const wire: WireChanges = rest;
  if (failuresAdded !== undefined) wire.failuresAdded = failuresAdded.without(failuresConsumed ?? []);
  if (bans?.length) {
    const columns: WireBans = { targets: [], jails: [], times: [], untils: [], reasons: [], origins: [], evidence: [], evidenceEnds: [] };
    for (const b of bans) {
      columns.targets.push(b.target);
      columns.jails.push(b.jail);
      columns.times.push(b.time);
      columns.untils.push(b.until ?? Number.NaN);
      columns.reasons.push(b.reason);
      columns.origins.push(b.origin);
      if (b.evidence) for (const line of b.evidence) columns.evidence.push(line);
      columns.evidenceEnds.push(columns.evidence.length);
    }
    wire.bans = columns;
  }
  if (evidenceToRead?.length) {
    // Placeholders sit at the start of a ban's own evidence array: find the ban by that array.
    const banOf = new Map<string[] | undefined, number>();
    bans?.forEach((b, i) => banOf.set(b.evidence, i));
    wire.evidenceToRead = evidenceToRead.map((e) => {
      const ban = banOf.get(e.lines);
      if (ban === undefined) throw new Error('evidence to read that belongs to no ban of the commit');
      return { ban, ids: e.ids };
    });
  }
  return wire;
}

/** The changes the store applies, rebuilt on the writer thread (a structured clone keeps fields, not classes). */
export function fromWire(wire: WireChanges): StateChanges {
  const { bans, evidenceToRead, failuresAdded, ...rest } = wire;
  const changes: StateChanges = rest;
  if (failuresAdded !== undefined) changes.failuresAdded = Object.setPrototypeOf(failuresAdded, FailureRows.prototype) as FailureRows;
  if (bans !== undefined) {
    const out: Decision[] = [];
    let from = 0;
    for (let i = 0; i < bans.targets.length; i++) {
      const to = bans.evidenceEnds[i]!;
      const until = bans.untils[i]!;
      out.push({
        action: 'ban', target: bans.targets[i]!, jail: bans.jails[i]!, time: bans.times[i]!, until: Number.isNaN(until) ? null : until,
        reason: bans.reasons[i]!, origin: bans.origins[i]!, evidence: bans.evidence.slice(from, to),
      });
      from = to;
    }
    changes.bans = out;
    if (evidenceToRead !== undefined) {
      changes.evidenceToRead = evidenceToRead.map(({ ban, ids }): StoredEvidence => ({ lines: out[ban]!.evidence!, ids }));
    }
  }
  return changes;
}
