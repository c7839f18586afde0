import type { Fail2banFilter } from './fail2ban-filter.js';

/**
 * The part of `test-filter`'s summary that fail2ban-regex users know: hits per
 * failregex and ignoreregex, date-template hits, and lines matched / ignored
 * (by an ignoreregex) / missed, counted as fail2ban-regex counts them.
 */
export function formatFail2banSummary(filter: Fail2banFilter, seconds: number): string {
  const e = filter.engine;
  const s = e.stats;
  const out: string[] = [];
  const d = e.definition;
  out.push(`Use   failregex filter file : ${d.name}, files: ${d.files.join(', ')}`);
  if (d.options.size) out.push(`Use      filter options : ${[...d.options].map(([k, v]) => `${k}=${v}`).join(', ')}`);
  out.push(`Use      datepattern : ${d.datepattern?.regex ?? '{DEFAULT}'}`);
  if (d.maxlines > 1) out.push(`Use         maxlines : ${d.maxlines}`);
  out.push('');
  out.push(`Failregex: ${s.failHits.reduce((a, b) => a + b, 0)} total`);
  out.push('|-  #) [# of hits] regular expression');
  e.failregex.forEach((r, i) => out.push(`|  ${String(i + 1).padStart(2)}) [${s.failHits[i]}] ${r.source.regex}`));
  out.push('`-');
  out.push('');
  out.push(`Ignoreregex: ${s.ignoreHits.reduce((a, b) => a + b, 0)} total`);
  if (e.ignoreregex.length) {
    out.push('|-  #) [# of hits] regular expression');
    e.ignoreregex.forEach((r, i) => out.push(`|  ${String(i + 1).padStart(2)}) [${s.ignoreHits[i]}] ${r.source.regex}`));
    out.push('`-');
  }
  out.push('');
  out.push('Date template hits:');
  out.push('|- [# of hits] date format');
  for (const [name, n] of [...e.detector.hits].sort((a, b) => b[1] - a[1])) out.push(`|  [${n}] ${name}`);
  out.push('`-');
  out.push('');
  const missed = s.lines - s.matchedLines - s.ignoredLines;
  out.push(`Lines: ${s.lines} lines, ${s.ignoredLines} ignored, ${s.matchedLines} matched, ${missed} missed`);
  if (filter.unbannable) out.push(`(${filter.unbannable} failure(s) named a host name or another non-address id: recognised, never banned)`);
  if (e.warnings.length) for (const w of e.warnings) out.push(`warning: ${w.message}`);
  out.push(`[processed in ${seconds.toFixed(2)} sec]`);
  return `${out.join('\n')}\n`;
}
