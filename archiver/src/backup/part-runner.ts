/**
 * Runs a backup's part jobs, at most `concurrency` at a time, each on a worker thread of its own
 * (lib/backup-worker.cjs, when the archiver is built) or, from sources, on this thread. Memory is
 * bounded per job by the codec's stream buffers and the storage's part buffers, whatever the size
 * of the database.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CompressionName, loadCodec } from '../compression';
import { reviveError } from '../errors';
import { openStorage } from '../storage/open';
import type { StorageOptions } from '../storage/storage';
import { FetchPartJob, fetchPart, pushPart } from './part-jobs';
import type { PartEntry, PartResult } from './part-stream';

export type PartJob =
  | { readonly op: 'push'; readonly storage: StorageOptions; readonly key: string; readonly entries: readonly PartEntry[]; readonly compression: CompressionName; readonly level?: number }
  | { readonly op: 'fetch'; readonly storage: StorageOptions; readonly fetch: FetchPartJob };

export type PushedPart = PartResult & { readonly storedSize: number };

export type PartMessage =
  | { readonly type: 'progress'; readonly bytes: number }
  | { readonly type: 'pushed'; readonly result: PushedPart }
  | { readonly type: 'fetched' }
  | { readonly type: 'error'; readonly error: { name: string; message: string } };

/** The bundled worker script next to this module (archiver/dist/lib), if built. */
function bundledScript(): string | undefined {
  const script = path.join(__dirname, 'backup-worker.cjs');
  return fs.existsSync(script) ? script : undefined;
}

export class PartRunner {
  private readonly script = bundledScript();

  constructor(
    private readonly concurrency: number,
    private readonly onBytes: (bytes: number) => void,
  ) {}

  /** Runs every job; rejects with the first failure once the jobs started have settled. */
  async run<T extends PartJob>(jobs: readonly T[]): Promise<(T extends { op: 'push' } ? PushedPart : void)[]> {
    const results: unknown[] = new Array(jobs.length);
    let next = 0;
    let failure: { error: unknown } | undefined;
    const lane = async () => {
      while (next < jobs.length && !failure) {
        const index = next++;
        try {
          results[index] = await this.runOne(jobs[index]);
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.concurrency, jobs.length)) }, lane));
    if (failure) throw failure.error;
    return results as (T extends { op: 'push' } ? PushedPart : void)[];
  }

  private runOne(job: PartJob): Promise<PushedPart | void> {
    return this.script ? this.onWorker(this.script, job) : this.inline(job);
  }

  private async inline(job: PartJob): Promise<PushedPart | void> {
    const storage = await openStorage(job.storage);
    try {
      if (job.op === 'push') return await pushPart(storage, job.key, job.entries, loadCodec(job.compression, job.level === undefined ? {} : { level: job.level }), this.onBytes);
      await fetchPart(storage, job.fetch, (name) => loadCodec(name), this.onBytes);
    } finally {
      await storage.close();
    }
  }

  private onWorker(script: string, job: PartJob): Promise<PushedPart | void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(script);
      let settled = false;
      const settle = (action: () => void) => {
        if (settled) return;
        settled = true;
        action();
        void worker.terminate();
      };
      worker.on('message', (message: PartMessage) => {
        if (message.type === 'progress') this.onBytes(message.bytes);
        else if (message.type === 'pushed') settle(() => resolve(message.result));
        else if (message.type === 'fetched') settle(() => resolve());
        else settle(() => reject(reviveError(message.error)));
      });
      worker.once('error', (error) => settle(() => reject(error)));
      worker.once('exit', (code) => settle(() => reject(new Error(`a backup worker thread exited (${code}) before it finished its part`))));
      worker.postMessage(job);
    });
  }
}
