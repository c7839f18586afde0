import type { Explanation, StatusReport } from '../daemon/daemon.js';

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
    out.push(`\`- Actions`);
    out.push(`   |- Currently banned: ${j.bannedNow}`);
    out.push(`   \`- Total banned:     ${j.bannedTotal}`);
  }
  return `${out.join('\n')}\n`;
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
  if (e.history.length) {
    out.push('Earlier bans:');
    for (const b of e.history) out.push(`  ${b.time} ${b.jail}: ${b.reason}; lifted ${b.liftedAt ?? '?'} (${b.liftReason ?? ''})`);
  }
  if (e.bans.length === 0 && e.jails.every((j) => !j.allowlistedBy && !j.failing)) out.push('not banned, no failures counted, not allowlisted');
  return `${out.join('\n')}\n`;
}
