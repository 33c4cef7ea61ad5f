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

export interface StorageProbeOptions {
  /** Between probes while the storage answers. @default 30000 */
  readonly intervalMs?: number;
  /** The first wait after a failed probe, doubling up to `intervalMs`. @default 1000 */
  readonly initialBackoffMs?: number;
}

export class StorageProbe {
  /** The last probe's outcome; undefined before the first one ends. */
  public reachable: boolean | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private backoff: number;
  private readonly intervalMs: number;
  private readonly initialBackoffMs: number;

  constructor(
    private readonly archive: Archive,
    private readonly log: Logger,
    options: StorageProbeOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 30_000;
    this.initialBackoffMs = options.initialBackoffMs ?? 1000;
    this.backoff = this.initialBackoffMs;
  }

  /** Probes now, then on its own until stop(). */
  start(): void {
    void this.probe();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async probe(): Promise<void> {
    let failure: Error | undefined;
    try {
      await this.archive.storage.stat(ARCHIVE_LAYOUT.identity);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
    }
    if (this.stopped) return;
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
    this.backoff = failure ? Math.min(this.backoff * 2, this.intervalMs) : this.initialBackoffMs;
    const wait = failure ? this.backoff : this.intervalMs;
    this.timer = setTimeout(() => void this.probe(), wait);
    this.timer.unref();
  }
}
