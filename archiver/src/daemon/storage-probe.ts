/**
 * Whether the sidecar's storage answers, known before a WAL file waits on it: a stat of
 * archive.json (absent is an answer too), every `intervalMs` while it answers and with a back-off
 * while it does not. The sidecar keeps working either way (pushes retry on their own); this is
 * what its log and archiver_storage_reachable say, once per change, so that an endpoint that is
 * down or credentials that are refused show before the WAL piles up.
 */
import { ARCHIVE_LAYOUT } from '../../../contract';
import type { Archive } from '../archive';
import type { Logger } from '../logger';
import { PeriodicLook } from './periodic-look';

export interface StorageProbeOptions {
  /** Between probes while the storage answers. @default 30000 */
  readonly intervalMs?: number;
  /** The first wait after a failed probe, doubling up to `intervalMs`. @default 1000 */
  readonly initialBackoffMs?: number;
}

export class StorageProbe {
  /** The last probe's outcome; undefined before the first one ends. */
  public reachable: boolean | undefined;
  private readonly loop: PeriodicLook;

  constructor(
    private readonly archive: Archive,
    private readonly log: Logger,
    options: StorageProbeOptions = {},
  ) {
    const intervalMs = options.intervalMs ?? 30_000;
    const initialBackoffMs = options.initialBackoffMs ?? 1000;
    let backoff = initialBackoffMs;
    // While it answers, every interval; while it does not, 1 s, 2 s, 4 s ... up to the interval.
    this.loop = new PeriodicLook(() => this.probe(), (reachable) => {
      if (reachable) {
        backoff = initialBackoffMs;
        return intervalMs;
      }
      const wait = backoff;
      backoff = Math.min(backoff * 2, intervalMs);
      return wait;
    });
  }

  /** Probes now, then on its own until stop(). */
  start(): void {
    this.loop.start();
  }

  /** Stops probing; resolves once a probe in flight has ended. */
  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One probe; whether the storage answered. Never throws. */
  private async probe(): Promise<boolean> {
    let failure: Error | undefined;
    try {
      await this.archive.storage.stat(ARCHIVE_LAYOUT.identity);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
    }
    const was = this.reachable;
    this.reachable = failure === undefined;
    if (failure && was !== false) {
      this.log.error("the archive's storage does not answer: WAL calls fail until it does (PostgreSQL keeps the WAL and retries)", {
        location: this.archive.location,
        error: failure.message,
        fix: 'check the endpoint (ARCHIVER_S3_ENDPOINT), the network path to it and the storage Secret\'s credentials; the sidecar retries on its own',
      });
    } else if (!failure && was === false) {
      this.log.info("the archive's storage answers again", { location: this.archive.location });
    }
    return this.reachable;
  }
}
