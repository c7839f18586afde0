/** `text` as a regular expression that matches exactly it (every syntax character escaped). */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** A regular expression matching any of `texts` literally: one scan finds whether a line holds any of them. */
export function anyOf(texts: readonly string[]): RegExp {
  return new RegExp([...new Set(texts)].map(escapeRegExp).join('|'));
}
