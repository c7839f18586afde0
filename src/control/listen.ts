/** `http.listen`: `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (all interfaces); port 0 picks a free one (tests). */
export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? (m[2] || '::'), port };
}
