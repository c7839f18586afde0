import { Worker, type TransferListItem } from 'node:worker_threads';

/**
 * Starts the module `name` (without extension) beside `callerUrl` (the caller's `import.meta.url`) as
 * a worker thread. Run from TypeScript sources (the tests, under tsx), a worker does not inherit
 * tsx's loader, so it registers it first.
 */
export function startWorker(callerUrl: string, name: string, workerData: unknown, transferList: TransferListItem[] = []): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), { workerData, transferList });
  const entry = JSON.stringify(new URL(`./${name}.ts`, callerUrl).href);
  return new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${entry}); });`, { eval: true, workerData, transferList });
}
