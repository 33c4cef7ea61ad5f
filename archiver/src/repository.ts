/**
 * The archive a configuration names, ready to use: its storage (with deadlines and retries), its
 * codecs (on worker threads when asked) and its identity. Every command that touches the archive
 * opens it here.
 */
import { Archive } from './archive';
import { WorkerPool, bundledWorkerScript } from './worker-pool';
import { ArchiverConfig } from './config';
import { Logger } from './logger';
import { openStorage } from './storage/open';

export interface RepositoryOptions {
  /**
   * Worker threads for hashing and (de)compression, when the bundled worker script exists
   * (archiver/dist/lib/worker.cjs; from sources the work runs on the calling thread).
   * @default 0 - the calling thread
   */
  readonly workers?: number;
  /** Where the archive reports what it repairs. @default - a Logger at the configuration's level */
  readonly log?: Logger;
}

export async function openRepository(config: ArchiverConfig, options: RepositoryOptions = {}): Promise<Archive> {
  const storage = await openStorage(config.storage);
  const workers = options.workers ?? 0;
  const script = workers > 0 ? bundledWorkerScript() : undefined;
  const pool = script ? new WorkerPool(script, workers, config.compression, config.compressionLevel) : undefined;
  pool?.warm();
  return new Archive({ storage, compression: config.compression, compressionLevel: config.compressionLevel, pool, log: options.log ?? new Logger(config.logLevel) });
}
