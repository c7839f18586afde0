import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

/**
 * A time budget for user-supplied regexes on long lines.
 *
 * fail2ban's stock patterns backtrack polynomially over runs of one character
 * (`\S+:\S+` over `::::`, `\s+` then `\s*` over spaces, a lazy `.*?` before
 * `\s*`): a crafted 16 KiB line took them 0.1–0.5 s, and V8's linear-time
 * fallback does not catch it (a greedy loop over one class backtracks without
 * counting). No rewrite of a regex can bound that in general, and a JavaScript
 * regex cannot be interrupted on its own thread, so texts longer than
 * LOCAL_LENGTH are matched by one of two worker threads while the caller
 * waits, for at most the line's budget. A match still running then is given
 * up: the line is counted, and the thread finishes on its own core (or is
 * terminated after HARD_LIMIT_MS: an exponential pattern never finishes).
 * While both threads are busy, long lines are given up at once: an attack
 * costs the pipeline one budget per thread, and starts at most two threads a
 * HARD_LIMIT_MS. Up to LOCAL_LENGTH the same patterns take at most a few
 * milliseconds (the slowest of the 89 stock filters on crafted 1 KiB lines:
 * ~5 ms), and the failures they look for are shorter, so they run here with no
 * thread in between. fail2ban's maintainers suggested skipping long lines per
 * jail (https://github.com/fail2ban/fail2ban/issues/1173); this gives up only
 * those that would stall the daemon.
 */

/** Texts up to this many characters are matched on the caller's thread. */
export const LOCAL_LENGTH = 1024;
/** What the matching of one log line may take on long texts, in ms. */
export const DEFAULT_BUDGET_MS = 5;
/** A match that ran over its budget and was given up. */
export const OVER_BUDGET = Symbol('over budget');
/** The first thread's start is not the line's fault: it may take this long. */
const FIRST_START_MS = 10_000;
/** A match given up on is left to finish for this long, then its thread is terminated. */
export const HARD_LIMIT_MS = 1_000;

/** What the engine reads of a match (RegExpExecArray has it too). */
export interface RegexMatch {
  index: number;
  0: string;
  groups?: Record<string, string | undefined>;
}

/**
 * How long each side looks for the other's answer before sleeping, in ms: waking a sleeping thread
 * took ~60 µs on these VMs, twice a round trip, while a long line's match takes a few µs.
 */
const SPIN_MS = 0.2;

// The thread needs nothing of ours: a script of its own starts in ~10 ms, without a module loader.
// V8 compiles a regex at its first run and to machine code at its second: both happen before a
// regex's first request (a stock filter's regex took ~5 ms to compile), not within a line's budget.
// Requests are taken off the port as they are announced in signal[2], not through the event loop:
// its dispatch made a round trip ~200 µs.
const WORKER_SCRIPT = `
const { receiveMessageOnPort, workerData } = require('node:worker_threads');
const { port, signal, regexes } = workerData;
const compiled = new Map();
const compile = (id, source, flags) => {
  const re = new RegExp(source, flags);
  re.exec('');
  re.exec('');
  compiled.set(id, re);
};
const serve = ({ seq, id, source, flags, text }) => {
  if (text === undefined) compile(id, source, flags);
  else {
    const re = compiled.get(id);
    re.lastIndex = 0;
    const m = re.exec(text);
    port.postMessage({ seq, match: m === null ? null : { index: m.index, 0: m[0], groups: m.groups === undefined ? undefined : { ...m.groups } } });
  }
  Atomics.store(signal, 1, seq);
  Atomics.notify(signal, 1);
};
for (const [id, r] of regexes.entries()) compile(id, r.source, r.flags);
Atomics.store(signal, 0, 1);
Atomics.notify(signal, 0);
for (;;) {
  // Read before taking requests: one posted meanwhile changes it, and the wait returns at once.
  const announced = Atomics.load(signal, 2);
  for (let r = receiveMessageOnPort(port); r !== undefined; r = receiveMessageOnPort(port)) serve(r.message);
  const until = performance.now() + ${SPIN_MS};
  while (Atomics.load(signal, 2) === announced && performance.now() < until);
  Atomics.wait(signal, 2, announced);
}
`;

class MatchThread {
  readonly worker: Worker;
  readonly port: MessagePort;
  /** [0]: 1 once the thread listens; [1]: the last request it answered; [2]: the last request posted. */
  readonly signal = new Int32Array(new SharedArrayBuffer(12));
  seq = 0;
  retired = false;
  private killer: NodeJS.Timeout | null = null;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SCRIPT, { eval: true, workerData: { port: port2, signal: this.signal, regexes: registry }, transferList: [port2] });
    // Idle threads must not keep a finished process (a test, `test-filter`) alive.
    this.worker.unref();
    this.port.unref();
    this.worker.on('error', () => this.retire());
  }

  /** Has the thread compile a regex registered after it started (it is busy until done). */
  compile(id: number, r: Registered): void {
    this.post({ seq: ++this.seq, id, source: r.source, flags: r.flags });
  }

  /** Hands the thread a request and wakes it. */
  post(request: { seq: number; id: number; source?: string; flags?: string; text?: string }): void {
    this.port.postMessage(request);
    Atomics.store(this.signal, 2, request.seq);
    Atomics.notify(this.signal, 2);
  }

  /** Waits until the thread listens, or `until` (performance.now() time) passes. */
  waitReady(until: number): boolean {
    for (;;) {
      if (Atomics.load(this.signal, 0) === 1) return true;
      const left = until - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.signal, 0, 0, left);
    }
  }

  get ready(): boolean {
    return Atomics.load(this.signal, 0) === 1;
  }

  /** True when the thread has answered every request (a late answer is taken off the port). */
  get idle(): boolean {
    if (Atomics.load(this.signal, 1) !== this.seq) return false;
    if (this.killer !== null) {
      clearTimeout(this.killer);
      this.killer = null;
      while (receiveMessageOnPort(this.port) !== undefined);
    }
    return true;
  }

  /** The caller gave up on the current request: let it run out, up to HARD_LIMIT_MS. */
  overran(): void {
    this.killer = setTimeout(() => {
      if (!this.idle) this.retire();
    }, HARD_LIMIT_MS);
    this.killer.unref();
  }

  /** Ends the thread (stalled or broken) and starts another in its place. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    if (this.killer !== null) clearTimeout(this.killer);
    void this.worker.terminate();
    const i = threads.indexOf(this);
    if (i >= 0) threads[i] = startThread();
  }
}

interface Registered {
  source: string;
  flags: string;
}

const registry: Registered[] = [];
const registryIds = new Map<string, number>();
const threads: Array<MatchThread | null> = [null, null];
let started = false;

/** Counts of the process's budgeted matching (for tests and the bench). */
export const budgetStats = { remote: 0, overBudget: 0, threadsStarted: 0 };

/** An id for a regex the threads may be asked to run (the same source and flags share one). */
export function registerRegex(source: string, flags: string): number {
  const key = `${flags}/${source}`;
  let id = registryIds.get(key);
  if (id === undefined) {
    id = registry.length;
    registry.push({ source, flags });
    registryIds.set(key, id);
    for (const t of threads) if (t !== null && !t.retired) t.compile(id, registry[id]!);
  }
  return id;
}

function startThread(): MatchThread {
  budgetStats.threadsStarted++;
  return new MatchThread();
}

/** Starts both threads and waits for the first to listen; false when it did not in FIRST_START_MS. */
function startThreads(): boolean {
  for (let i = 0; i < threads.length; i++) threads[i] ??= startThread();
  started = threads[0]!.waitReady(performance.now() + FIRST_START_MS);
  return started;
}

/** An idle thread that listens; null when none is. */
function idleThread(): MatchThread | null {
  for (const t of threads) if (t !== null && !t.retired && t.ready && t.idle) return t;
  return null;
}

/** True when no thread is still running a match given up on (a bench measures each filter from there). */
export function budgetThreadsIdle(): boolean {
  return threads.every((t) => t === null || t.retired || t.idle);
}

/** One line's budget: its regexes share it. */
export interface LineBudget {
  /** What the line's regexes may take on long texts, in ms. */
  readonly ms: number;
  /** When they must be done (performance.now() time); 0 until the first long text. */
  deadline: number;
}

/**
 * Runs regex `id` (`re` is its compiled copy here) on `text`: here for short
 * texts, in a thread for long ones, giving up when the line's budget is spent.
 */
export function execWithBudget(id: number, re: RegExp, text: string, budget: LineBudget): RegexMatch | null | typeof OVER_BUDGET {
  if (text.length <= LOCAL_LENGTH) {
    re.lastIndex = 0;
    return re.exec(text);
  }
  budgetStats.remote++;
  if (!started) {
    // The first start (~10–80 ms) is not the line's fault: its time is given back.
    const before = performance.now();
    if (!startThreads()) return overBudget(null);
    if (budget.deadline !== 0) budget.deadline += performance.now() - before;
  }
  const thread = idleThread();
  if (thread === null) return overBudget(null);
  if (budget.deadline === 0) budget.deadline = performance.now() + budget.ms;
  const deadline = budget.deadline;
  if (performance.now() >= deadline) return overBudget(null);
  const seq = ++thread.seq;
  thread.post({ seq, id, text });
  const spinUntil = Math.min(deadline, performance.now() + SPIN_MS);
  while (Atomics.load(thread.signal, 1) !== seq && performance.now() < spinUntil);
  for (;;) {
    if (Atomics.load(thread.signal, 1) === seq) break;
    const left = deadline - performance.now();
    if (left <= 0 || thread.retired) return overBudget(thread);
    Atomics.wait(thread.signal, 1, seq - 1, left);
  }
  // Posted before the signal, so it is there.
  const got = receiveMessageOnPort(thread.port) as { message: { seq: number; match: RegexMatch | null } } | undefined;
  if (got === undefined || got.message.seq !== seq) {
    thread.retire();
    return overBudget(null);
  }
  return got.message.match;
}

function overBudget(thread: MatchThread | null): typeof OVER_BUDGET {
  budgetStats.overBudget++;
  thread?.overran();
  return OVER_BUDGET;
}
