import type { Decision } from '../core/types.js';
import type { Explanation, StatusReport } from '../daemon/daemon.js';
import type { DefenceExplanation, DefenceStatus } from '../daemon/pipeline.js';

/** Text renderings of control answers for a terminal. */

export function formatStatus(r: StatusReport, oneJail: boolean): string {
  const out: string[] = [];
  if (!oneJail) {
    out.push(`Portcullis on ${r.node} (pid ${r.pid}), up since ${r.startedAt}`);
    out.push(`Config: ${r.config.length ? r.config.join(', ') : 'embedded defaults'}   State: ${r.stateDb}`);
    out.push(`Lines read: ${r.linesRead}, matched: ${r.linesMatched}`);
    for (const e of r.enforcers) {
      out.push(`Enforcer ${e.name}: ${e.ready ? 'ready' : 'NOT READY'}, ${e.applied} change(s) applied${e.pending ? `, ${e.pending} pending` : ''}${e.lastError ? `, last error: ${e.lastError}` : ''}`);
    }
    if (r.errors.length) {
      out.push('Problems:');
      for (const e of r.errors) out.push(`  ! ${e}`);
    }
    const health = Object.entries(r.health);
    if (health.length) out.push(`Health events: ${health.map(([k, v]) => `${k}=${v}`).join(', ')}`);
    out.push(`Jails (${r.jails.length}): ${r.jails.map((j) => j.name).join(', ')}`);
  }
  for (const j of r.jails) {
    out.push('');
    out.push(`Jail ${j.name}  (filters: ${j.filters.join(', ')}; ${j.maxretry} in ${j.findtime} → ban ${j.bantime}; ports ${j.ports ? j.ports.join(',') : 'all'}/${j.protocol})`);
    out.push(`|- Filter`);
    out.push(`|  |- Currently failing: ${j.failing}`);
    out.push(`|  |- Total failed:      ${j.failuresTotal}${j.ignoredTotal ? ` (${j.ignoredTotal} from allowlisted addresses)` : ''}`);
    out.push(`|  \`- Sources:`);
    for (const s of j.sources) {
      for (const i of s.items) out.push(`|       ${s.kind} ${i.name}: ${i.state}${i.lagBytes ? `, ${i.lagBytes} bytes behind` : ''}`);
      if (s.items.length === 0) out.push(`|       ${s.id}: ${s.error ?? 'no items'}`);
      else if (s.error) out.push(`|       ! ${s.error}`);
    }
    out.push(`${j.defences ? '|' : '`'}- Actions`);
    const bar = j.defences ? '|' : ' ';
    out.push(`${bar}  |- Currently banned: ${j.bannedNow}`);
    out.push(`${bar}  \`- Total banned:     ${j.bannedTotal}`);
    if (j.defences) {
      out.push('`- Defences');
      const lines = defenceLines(j.defences);
      lines.forEach((l, i) => out.push(`   ${i === lines.length - 1 ? '`' : '|'}- ${l}`));
    }
  }
  return `${out.join('\n')}\n`;
}

/** One line per defence, also for those that are off (so the admin knows they exist). */
function defenceLines(d: DefenceStatus): string[] {
  const out = [`Ban time: ${d.bantime}`];
  const e = d.escalation;
  out.push(e
    ? `Netblock escalation: ${e.steps.join('; then ')}; ${e.bannedNow} prefix ban(s) now, ${e.escalations} escalation(s), ${e.conflicts} refused as covering an allowlisted address${e.lastConflict ? ` (last: ${e.lastConflict})` : ''}`
    : 'Netblock escalation: off (escalate:)');
  const s = d.siege;
  out.push(s
    ? `Siege: ${s.active ? `ON since ${iso(s.since)}${s.leavesAt !== null ? `, leaving at ${iso(s.leavesAt)} if it stays calm` : ''} (${s.during})` : 'off'}; last minute: ${s.rate} failure(s) from ${s.sources} address(es); enters at ${s.enter}, leaves ${s.leave}; entered ${s.entered} time(s)`
    : 'Siege: off (siege:)');
  const l = d.slow;
  out.push(l
    ? `Slow brute force: ${l.maxretry} failures within ${l.window}; spray: ${l.spray ?? 'off'}; tracking ${l.addresses} address(es), ${l.users} user name(s) (${l.sprayedUsers} sprayed); ${l.slowBans} slow and ${l.sprayBans} spray ban(s)`
    : 'Slow brute force: off (slow:)');
  if (d.recidive) out.push(`Recidive: ${d.recidive.rule}; counting ${d.recidive.counting} address(es)`);
  return out;
}

function iso(ms: number | null): string {
  return ms === null ? '?' : new Date(ms).toISOString();
}

export function formatBanned(bans: Array<Record<string, unknown>>): string {
  if (bans.length === 0) return 'no active bans\n';
  const rows = bans.map((b) => `${String(b.target).padEnd(40)} ${String(b.jail).padEnd(16)} ${b.until === null ? 'permanent'.padEnd(24) : String(b.until).padEnd(24)} ${String(b.reason)}`);
  return `${'TARGET'.padEnd(40)} ${'JAIL'.padEnd(16)} ${'UNTIL'.padEnd(24)} REASON\n${rows.join('\n')}\n`;
}

export function formatExplanation(e: Explanation): string {
  const out: string[] = [`${e.address}: banned ${e.banCount} time(s) in all`];
  for (const b of e.bans) {
    out.push(`BANNED in ${b.jail} since ${b.time} ${b.until ? `until ${b.until}` : 'permanently'} (by ${b.origin}): ${b.reason}`);
    for (const l of b.evidence) out.push(`    | ${l}`);
  }
  for (const j of e.jails) {
    if (j.allowlistedBy) out.push(`allowed in ${j.jail}: matches allowlist entry ${j.allowlistedBy}`);
    else if (!j.banned && j.failing) out.push(`${j.jail}: ${j.failing} of ${j.maxretry} failures counted in the current window`);
  }
  const defences = (e.defences ?? []).flatMap((d) => defenceExplanation(d, e.banCount));
  out.push(...defences);
  if (e.history.length) {
    out.push('Earlier bans:');
    for (const b of e.history) out.push(`  ${b.time} ${b.jail}: ${b.reason}; lifted ${b.liftedAt ?? '?'} (${b.liftReason ?? ''})`);
  }
  if (e.bans.length === 0 && defences.length === 0 && e.jails.every((j) => !j.allowlistedBy && !j.failing)) out.push('not banned, no failures counted, not allowlisted');
  return `${out.join('\n')}\n`;
}

function defenceExplanation(d: DefenceExplanation, banCount: number): string[] {
  const out: string[] = [];
  const at = `${d.jail}:`;
  if (d.coveredBy) out.push(`${at} banned with its netblock ${d.coveredBy}`);
  for (const [i, step] of d.escalation.entries()) {
    if (step.prefixBanned) continue;
    if (step.banned.length) out.push(`${at} escalation step ${i + 1}: ${step.banned.length} of ${step.threshold} bans within ${step.window} in ${step.prefix} (${step.banned.join(', ')})`);
  }
  if (d.previousBans > 0 || banCount > 0) out.push(`${at} repeat offender: ${d.previousBans} earlier ban(s) counted; the next ban would last ${d.nextBantime}`);
  if (d.siege) out.push(`${at} ${d.siege}`);
  const l = d.longWindow;
  if (l && l.failures) {
    out.push(`${at} long window: ${l.failures} of ${l.maxretry} failures within ${l.window}${l.sprayedUser !== null ? `; tried the sprayed user name ${JSON.stringify(l.sprayedUser)} (banned at ${l.sprayMaxretry} failure(s))` : ''}`);
  }
  if (d.recidiveBans) out.push(`${at} ${d.recidiveBans} ban(s) counted towards a recidive ban`);
  return out;
}

/** A decision as the control socket and `replay --json` give it. */
export function decisionJson(d: Decision): { action: string; target: string; jail: string; time: string; until: string | null; reason: string } {
  return { action: d.action, target: d.target, jail: d.jail, time: iso(d.time), until: d.until === null ? null : iso(d.until), reason: d.reason };
}

/** A decision as one line of `replay` output. */
export function formatDecision(d: Decision): string {
  return `${iso(d.time)} ${d.action.padEnd(5)} ${d.target.padEnd(18)} [${d.jail}]${d.action === 'ban' ? ` until ${d.until === null ? 'forever' : iso(d.until)}` : ''} — ${d.reason}`;
}
