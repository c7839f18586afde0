import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { fromWire } from './commit-wire.js';
import { Store } from './store.js';
import type { CommitFailure } from './store.js';
import type { CommitJob, CommitReply, WriterThreadData } from './store-writer.js';

/**
 * The state writer thread (see ThreadWriter in store-writer.ts): commits the daemon's batches in
 * order with a connection of its own, answers each with its outcome and filled-in evidence, then
 * counts it as done in the shared Int32 (the daemon's thread may be blocked waiting on it). The
 * batches that queued up while it was busy are committed together, in one transaction.
 */

const { dir, replies, done } = workerData as WriterThreadData;
const doneSeq = new Int32Array(done);
const store = Store.open(dir);
const port = parentPort!;

port.on('message', (first: CommitJob | null) => {
  const jobs: CommitJob[] = [];
  let closing = false;
  for (let m: CommitJob | null | undefined = first; m !== undefined; m = receiveMessageOnPort(port)?.message as CommitJob | null | undefined) {
    if (m === null) closing = true;
    else jobs.push(m);
  }
  if (jobs.length > 0) commit(jobs);
  if (closing) {
    store.close();
    replies.close();
    port.close();
  }
});

/** The last transient failure: commits handed in before the daemon's thread heard of it are not tried (CommitJob.failuresHeard). */
let lastFailure: { failure: CommitFailure; heard: number } | null = null;
/** Transient failures this thread reported. */
let failuresReported = 0;

function commit(wireJobs: CommitJob[]): void {
  const jobs = wireJobs.map(({ seq, changes, now }) => ({ seq, changes: fromWire(changes), now }));
  // Those handed in before the daemon's thread heard of the last failure come first (seqs are in order).
  const untried = lastFailure === null ? 0 : wireJobs.filter((j) => j.failuresHeard < lastFailure!.heard).length;
  const tried = store.commitGroup(jobs.slice(untried));
  const failures = [...jobs.slice(0, untried).map(() => lastFailure!.failure), ...tried];
  for (const f of failures) {
    if (f?.transient) lastFailure = { failure: f, heard: ++failuresReported };
  }
  jobs.forEach(({ seq, changes }, i) => {
    const failure = failures[i]!;
    const reply: CommitReply = failure === null
      ? { seq, failure, evidence: changes.evidenceToRead?.map((e) => e.lines) ?? null }
      : { seq, failure, evidence: null, failuresAdded: failure.transient ? changes.failuresAdded : undefined };
    replies.postMessage(reply);
  });
  Atomics.store(doneSeq, 0, jobs[jobs.length - 1]!.seq);
  Atomics.notify(doneSeq, 0);
}
