/**
 * A worker thread of a base backup: opens its storage client once, then runs the part jobs
 * (part-jobs.ts) part-runner.ts sends it, one at a time, reporting progress and each result.
 * Bundled as lib/backup-worker.cjs.
 */
import { parentPort } from 'node:worker_threads';
import { openStorage } from '../storage/open';
import type { Storage } from '../storage/storage';
import { PartMessage, WorkerRequest, runPartJob } from './part-runner';

const post = (message: PartMessage) => parentPort!.postMessage(message);
let storage: Promise<Storage> | undefined;

parentPort!.on('message', async (request: WorkerRequest) => {
  if (request.type === 'open') {
    storage = openStorage(request.storage);
    storage.catch(() => undefined);
    return;
  }
  if (request.type === 'close') {
    const opened = await storage?.catch(() => undefined);
    await opened?.close().catch(() => undefined);
    post({ type: 'closed' });
    return;
  }
  let pending = 0;
  const timer = setInterval(() => {
    if (pending > 0) post({ type: 'progress', bytes: pending });
    pending = 0;
  }, 200);
  const flush = () => {
    if (pending > 0) post({ type: 'progress', bytes: pending });
    pending = 0;
  };
  try {
    if (!storage) throw new Error('a backup worker thread was given a job before its storage');
    const result = await runPartJob(await storage, request.job, (bytes) => {
      pending += bytes;
    });
    flush();
    post(request.job.op === 'push' ? { type: 'pushed', result: result! } : { type: 'fetched' });
  } catch (error) {
    flush();
    const e = error as Error;
    post({ type: 'error', error: { name: e.name, message: e.message } });
  } finally {
    clearInterval(timer);
  }
});
