/**
 * Bounds a Map used as a recency list (insertion order, oldest first; callers
 * delete and set a key again to make it the newest) to `max` entries.
 *
 * It drops an eighth more than needed at once. A Map keeps deleted entries in
 * place until it rehashes, and `keys().next()` walks them from the start: dropping
 * the single oldest entry on every insert scanned the whole table each time
 * (~7 µs an insert at 10,000 entries, an OpenVPN attack's every line). A batch
 * pays that walk once per max/8 inserts.
 */
export function trimOldest<K, V>(map: Map<K, V>, max: number): void {
  if (map.size <= max) return;
  let drop = map.size - max + (max >> 3);
  for (const key of map.keys()) {
    map.delete(key);
    if (--drop <= 0) break;
  }
}
