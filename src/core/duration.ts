/** Durations as written in configs and on the command line: `90s`, `10m`, `1h`, `1d`, `1w`, combinations like `1h30m`. */

const UNIT_MS: Record<string, number> = {
  ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000,
};

export const DURATION_HELP = 'a duration such as 90s, 10m, 1h, 1d, 1w (or a combination like 1h30m, or plain seconds)';

/** Milliseconds, or null when `text` is not a duration. Plain numbers are seconds (as in fail2ban). */
export function parseDuration(text: string | number): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text * 1000 : null;
  const s = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const re = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/y;
  let total = 0;
  let pos = 0;
  let any = false;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return null;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
    while (s.charCodeAt(pos) === 32) pos++;
    any = true;
  }
  return any ? Math.round(total) : null;
}

/** Bantime: a duration, or -1 / `permanent` / `forever` meaning no expiry (returned as null). */
export function parseBantime(text: string | number): number | null | undefined {
  if (text === -1 || text === '-1' || text === 'permanent' || text === 'forever') return null;
  const ms = parseDuration(text);
  return ms === null ? undefined : ms;
}

/** Compact human form: 3600000 → `1h`, 5400000 → `1h30m`. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return 'permanent';
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}
