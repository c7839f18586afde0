/**
 * Answers that cost in proportion to the number of bans (SQLite counts over a million rows: 0.1–0.8 s on
 * the daemon's thread, which reads no log line meanwhile) are reused for this many times their cost. The
 * dashboard asks for them after every change it is told of, a few times a second under attack.
 */
const REUSE_FACTOR = 20;
/** Answers cheaper than this are always computed afresh: a small installation sees every change at once. */
const CHEAP_MS = 50;
/** Keys remembered (one per filter asked for); the oldest is forgotten beyond. */
const MAX_KEYS = 64;

/** Per key (what is asked, with its parameters), the last answer and what it cost: reused while younger than REUSE_FACTOR × its cost. */
export class PacedAnswers {
  private readonly answers = new Map<string, { value: unknown; at: number; costMs: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  get<T>(key: string, compute: () => T): T {
    const now = this.now();
    const last = this.answers.get(key);
    if (last !== undefined && last.costMs >= CHEAP_MS && now - last.at < last.costMs * REUSE_FACTOR) return last.value as T;
    const started = performance.now();
    const value = compute();
    const costMs = performance.now() - started;
    this.answers.delete(key);
    if (this.answers.size >= MAX_KEYS) this.answers.delete(this.answers.keys().next().value!);
    this.answers.set(key, { value, at: this.now(), costMs });
    return value;
  }
}
