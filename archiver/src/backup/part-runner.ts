/**
 * Runs a backup's part jobs on `concurrency` worker threads (lib/backup-worker.cjs, when the
 * archiver is built) or, from sources, on this thread. The threads live as long as the runner and
 * take the next job as soon as they have finished one. A push job uploads with a storage client
 * of its thread (opened at its first push, kept: the SDK, its TLS connections); a fetch job, when
 * the runner is given `downloads`, reads the bytes this thread downloads through it
 * (body-channel.ts), so that a restore's threads never load a cloud SDK. Memory is bounded per
 * thread by the codec's stream buffers and the storage's part buffers (and the channel's window),
 * whatever the size of the database.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MessageChannel, MessagePort, Worker } from 'node:worker_threads';
import { CompressionName, loadCodec } from '../compression';
import { reviveError } from '../errors';
import { openStorage } from '../storage/open';
import type { Storage, StorageOptions } from '../storage/storage';
import { sendBody } from './body-channel';
import { RunOrder, runOrdered } from './run-ordered';
import { FetchPartJob, PartSource, fetchPart, pushPart } from './part-jobs';
import type { PartEntry, PartResult } from './part-stream';

export type PartJob =
  | { readonly op: 'push'; readonly key: string; readonly entries: readonly PartEntry[]; readonly compression: CompressionName; readonly level?: number }
  | { readonly op: 'fetch'; readonly fetch: FetchPartJob };

export type PushedPart = PartResult & { readonly storedSize: number };

/**
 * Parent → worker. A job with `body` reads its part from that port (a fetch job whose download
 * runs on the parent), naming `location` in its errors.
 */
export type WorkerRequest =
  | { readonly type: 'open'; readonly storage: StorageOptions }
  | { readonly type: 'job'; readonly job: PartJob; readonly body?: { readonly port: MessagePort; readonly location: string } }
  | { readonly type: 'close' };

/** Worker → parent. */
export type PartMessage =
  | { readonly type: 'progress'; readonly bytes: number }
  | { readonly type: 'pushed'; readonly result: PushedPart }
  | { readonly type: 'fetched' }
  | { readonly type: 'closed' }
  | { readonly type: 'error'; readonly error: { name: string; message: string } };

/** The bundled worker script next to this module (archiver/dist/lib), if built. */
function bundledScript(): string | undefined {
  const script = path.join(__dirname, 'backup-worker.cjs');
  return fs.existsSync(script) ? script : undefined;
}

/**
 * Runs one job (on a worker thread, or inline): a push with `storage()`, a storage client that
 * outlives the job; a fetch from `source` when given (the parent's download), else from it too.
 */
export async function runPartJob(storage: () => Promise<Storage>, job: PartJob, onBytes: (bytes: number) => void, source?: PartSource): Promise<PushedPart | void> {
  if (job.op === 'push') return pushPart(await storage(), job.key, job.entries, loadCodec(job.compression, job.level === undefined ? {} : { level: job.level }), onBytes);
  await fetchPart(source ?? (await storage()), job.fetch, (name) => loadCodec(name), onBytes);
}

interface Lane {
  run(job: PartJob): Promise<PushedPart | void>;
  close(): Promise<void>;
}

export class PartRunner {
  private readonly script = bundledScript();
  private readonly lanes: Lane[] = [];

  constructor(
    private readonly storage: StorageOptions,
    private readonly concurrency: number,
    private readonly onBytes: (bytes: number) => void,
    /** This thread's storage client: fetch jobs on worker threads download through it. */
    private readonly downloads?: PartSource,
  ) {}

  /**
   * Runs every job, the next free thread taking the first job in order that may start (so put the
   * largest first); rejects with the first failure once the jobs started have settled. Results are
   * in job order. `after[i]` lists the jobs (each earlier in the list) that must be done before
   * job i starts; `onDone(i)` is called as job i succeeds.
   */
  async run<T extends PartJob>(jobs: readonly T[], order: RunOrder = {}): Promise<(T extends { op: 'push' } ? PushedPart : void)[]> {
    const wanted = Math.max(1, Math.min(this.concurrency, jobs.length));
    while (this.lanes.length < wanted) this.lanes.push(this.script ? new WorkerLane(this.script, this.storage, this.onBytes, this.downloads) : new InlineLane(this.storage, this.onBytes, this.downloads));
    const results = await runOrdered(jobs.length, this.lanes.slice(0, wanted), (lane, index) => lane.run(jobs[index]), order);
    return results as (T extends { op: 'push' } ? PushedPart : void)[];
  }

  /** Closes every thread's storage client and ends the threads. */
  async close(): Promise<void> {
    await Promise.all(this.lanes.splice(0).map((lane) => lane.close()));
  }
}

class InlineLane implements Lane {
  private storage: Promise<Storage> | undefined;

  constructor(
    private readonly options: StorageOptions,
    private readonly onBytes: (bytes: number) => void,
    private readonly downloads?: PartSource,
  ) {}

  async run(job: PartJob): Promise<PushedPart | void> {
    // On this thread already: a fetch reads through the runner's client, as a thread's would.
    return runPartJob(() => (this.storage ??= openStorage(this.options)), job, this.onBytes, this.downloads);
  }

  async close(): Promise<void> {
    const storage = await this.storage?.catch(() => undefined);
    await storage?.close();
  }
}

/** A worker thread that takes one job at a time. A thread that fails a job is replaced. */
class WorkerLane implements Lane {
  private worker: Worker | undefined;

  constructor(
    private readonly script: string,
    private readonly storage: StorageOptions,
    private readonly onBytes: (bytes: number) => void,
    private readonly downloads?: PartSource,
  ) {}

  async run(job: PartJob): Promise<PushedPart | void> {
    if (job.op !== 'fetch' || !this.downloads) return this.post(job);
    // Opened here, retried here (resilient.ts): a part that cannot be read fails before any thread works on it.
    const body = await this.downloads.getStream(job.fetch.key);
    const channel = new MessageChannel();
    const sender = sendBody(body, channel.port1);
    try {
      return await this.post(job, { port: channel.port2, location: this.downloads.location });
    } finally {
      sender.stop();
    }
  }

  private post(job: PartJob, body?: { port: MessagePort; location: string }): Promise<PushedPart | void> {
    const worker = this.thread();
    return new Promise((resolve, reject) => {
      const settle = (action: () => void, healthy: boolean) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        // A failed job may have left the thread's storage client or streams in any state.
        if (!healthy) this.discard();
        action();
      };
      const onMessage = (message: PartMessage) => {
        if (message.type === 'progress') this.onBytes(message.bytes);
        else if (message.type === 'pushed') settle(() => resolve(message.result), true);
        else if (message.type === 'fetched') settle(() => resolve(), true);
        else if (message.type === 'error') settle(() => reject(reviveError(message.error)), false);
      };
      const onError = (error: Error) => settle(() => reject(error), false);
      const onExit = (code: number) => settle(() => reject(new Error(`a backup worker thread exited (${code}) before it finished its part`)), false);
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
      const request: WorkerRequest = { type: 'job', job, ...(body ? { body } : {}) };
      worker.postMessage(request, body ? [body.port] : []);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    const closed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      worker.on('message', (message: PartMessage) => {
        if (message.type === 'closed') {
          clearTimeout(timer);
          resolve();
        }
      });
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    worker.postMessage({ type: 'close' } satisfies WorkerRequest);
    await closed;
    await worker.terminate();
  }

  private thread(): Worker {
    if (!this.worker) {
      this.worker = new Worker(this.script);
      this.worker.postMessage({ type: 'open', storage: this.storage } satisfies WorkerRequest);
    }
    return this.worker;
  }

  private discard(): void {
    const worker = this.worker;
    this.worker = undefined;
    void worker?.terminate();
  }
}
