/**
 * A worker thread of a base backup: runs the part jobs (part-jobs.ts) part-runner.ts sends it, one
 * at a time, reporting progress and each result. Its storage client is opened at the first job
 * that needs one (a push; a fetch whose bytes do not come from the parent) and kept.
 * Bundled as lib/backup-worker.cjs.
 */
import { parentPort } from 'node:worker_threads';
import { openStorage } from '../storage/open';
import type { Storage, StorageOptions } from '../storage/storage';
import { receiveBody } from './body-channel';
import { PartMessage, WorkerRequest, runPartJob } from './part-runner';

const post = (message: PartMessage) => parentPort!.postMessage(message);
let options: StorageOptions | undefined;
let storage: Promise<Storage> | undefined;

function openedStorage(): Promise<Storage> {
  if (!options) return Promise.reject(new Error('a backup worker thread was given a job before its storage'));
  return (storage ??= openStorage(options));
}

parentPort!.on('message', async (request: WorkerRequest) => {
  if (request.type === 'open') {
    options = request.storage;
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
    const body = request.body;
    const source = body ? { location: body.location, getStream: async () => receiveBody(body.port) } : undefined;
    const result = await runPartJob(openedStorage, request.job, (bytes) => {
      pending += bytes;
    }, source);
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
