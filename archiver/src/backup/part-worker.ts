/**
 * A worker thread that runs one part job of a base backup (part-jobs.ts) with a storage client of
 * its own, and reports progress and the result to part-runner.ts. Bundled as lib/backup-worker.cjs.
 */
import { parentPort } from 'node:worker_threads';
import { loadCodec } from '../compression';
import { openStorage } from '../storage/open';
import { fetchPart, pushPart } from './part-jobs';
import type { PartJob, PartMessage } from './part-runner';

parentPort!.on('message', async (job: PartJob) => {
  const post = (message: PartMessage) => parentPort!.postMessage(message);
  let pending = 0;
  const timer = setInterval(() => {
    if (pending > 0) post({ type: 'progress', bytes: pending });
    pending = 0;
  }, 200);
  const onBytes = (bytes: number) => {
    pending += bytes;
  };
  try {
    const storage = await openStorage(job.storage);
    try {
      if (job.op === 'push') {
        const result = await pushPart(storage, job.key, job.entries, loadCodec(job.compression, job.level === undefined ? {} : { level: job.level }), onBytes);
        post({ type: 'progress', bytes: pending });
        pending = 0;
        post({ type: 'pushed', result });
      } else {
        await fetchPart(storage, job.fetch, (name) => loadCodec(name), onBytes);
        post({ type: 'progress', bytes: pending });
        pending = 0;
        post({ type: 'fetched' });
      }
    } finally {
      await storage.close();
    }
  } catch (error) {
    const e = error as Error;
    post({ type: 'error', error: { name: e.name, message: e.message } });
  } finally {
    clearInterval(timer);
  }
});
