/**
 * Restore prefetch. PostgreSQL calls restore_command for one file at a time and replays it before
 * asking for the next, so every millisecond of a call adds to recovery time. After serving a
 * segment, the background archiver downloads the next segments of the same timeline into the
 * spool (verified, renamed into place; not fsync'd, see spool.ts); the launcher then hands the
 * next one to PostgreSQL with a rename, without starting Node.
 *
 * The window moves with PostgreSQL: when a prefetched file is taken (the launcher renames it
 * away), the files after it are fetched. A segment not (yet) in the archive ends the window; it
 * is asked for again when PostgreSQL asks for it.
 */
import * as fs from 'node:fs';
import { Archive } from './archive';
import { WalNotFoundError } from './errors';
import { Limiter } from './limiter';
import { Logger } from './logger';
import { MetricsRecorder, NO_METRICS } from './metrics/recorder';
import type { TimelineSurvey } from './recovery';
import { Spool } from './spool';
import { followingSegments, walFileKind } from './wal-names';

export class Prefetcher {
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly limiter: Limiter;
  /** Names written to the spool and not yet seen taken. */
  private readonly offered = new Set<string>();
  private watcher: fs.FSWatcher | undefined;

  constructor(
    private readonly archive: Archive,
    private readonly spool: Spool,
    private readonly window: number,
    concurrency: number,
    private readonly log: Logger,
    /** Called when the spool turns out to belong to another archive location. */
    private readonly onDisowned: () => void = () => undefined,
    private readonly metrics: MetricsRecorder = NO_METRICS,
  ) {
    this.limiter = new Limiter(concurrency);
  }

  get location(): string {
    return this.archive.location;
  }

  /**
   * Serves `name` to `destination`: from the spool, from a download in flight, or from the
   * archive. A download that failed, for whatever reason, only means the archive is asked now:
   * its failure is never taken for the answer (a storage failure is not "not in the archive").
   */
  async fetch(name: string, destination: string, options: { readonly signal?: AbortSignal } = {}): Promise<{ source: 'prefetch' | 'archive'; bytes?: number }> {
    let source: 'prefetch' | 'archive' = 'prefetch';
    const pending = this.inFlight.get(name);
    if (pending) await untilAborted(pending.catch(() => false), options.signal);
    if (!(await this.spool.takePrefetched(name, destination))) {
      source = 'archive';
      await this.archive.fetch(name, destination, options);
    }
    this.offered.delete(name);
    this.metrics.walFetched(source);
    if (walFileKind(name) === 'segment') {
      await this.forgetOtherThan(name);
      this.fill(name);
    }
    return { source };
  }

  /** The archive's survey of `name`'s timeline (recovery.ts tells a gap from the end with it). */
  surveyTimeline(name: string, options: { readonly signal?: AbortSignal } = {}): Promise<TimelineSurvey> {
    return this.archive.surveyTimeline(name, options);
  }

  /** Watches the spool so that a file taken by the launcher moves the window. */
  watch(): void {
    if (this.watcher || this.window === 0) return;
    this.watcher = fs.watch(this.spool.prefetchDir, (_event, file) => {
      if (!file || file.endsWith('.tmp') || !this.offered.has(file)) return;
      if (!fs.existsSync(this.spool.prefetchPath(file))) {
        // Taken by the launcher (a rename into pg_wal): a prefetch hit.
        this.offered.delete(file);
        this.metrics.walFetched('prefetch');
        this.fill(file);
      }
    });
    this.watcher.on('error', () => undefined);
  }

  close(): void {
    this.watcher?.close();
  }

  /** Starts downloading the segments after `name` that are neither in the spool nor in flight. */
  private fill(name: string): void {
    if (this.window === 0) return;
    void this.archive.segmentSize().then((segmentSize) => {
      for (const next of followingSegments(name, this.window, segmentSize)) {
        if (this.inFlight.has(next) || this.offered.has(next)) continue;
        const download = this.limiter.run(() => this.download(next));
        this.inFlight.set(next, download);
        download.finally(() => this.inFlight.delete(next)).catch(() => undefined);
      }
    }, () => undefined);
  }

  private async download(name: string): Promise<boolean> {
    try {
      let bytes = 0;
      // Not fsync'd: the spool's .boot keeps a file of an earlier boot from being taken (spool.ts).
      const offered = await this.spool.offerPrefetched(name, async (file) => {
        ({ bytes } = await this.archive.fetch(name, file));
      });
      if (!offered) {
        this.onDisowned();
        return false;
      }
      this.offered.add(name);
      this.metrics.walPrefetched();
      this.log.debug('prefetched', { wal: name, bytes });
      return true;
    } catch (error) {
      if (!(error instanceof WalNotFoundError)) this.log.warn('prefetch failed', { wal: name, error: (error as Error).message });
      return false;
    }
  }

  /**
   * Drops prefetched files PostgreSQL will not ask for: earlier names of the timeline, and
   * other timelines (after a timeline switch).
   */
  private async forgetOtherThan(current: string): Promise<void> {
    const timeline = current.slice(0, 8);
    for (const name of await this.spool.prefetchedNames()) {
      if (name.slice(0, 8) !== timeline || name <= current) {
        // Out of `offered` first: the watcher must not take this removal for the launcher's.
        this.offered.delete(name);
        await fs.promises.rm(this.spool.prefetchPath(name), { force: true });
      }
    }
  }
}

/** `promise`, or a rejection with the signal's reason when `signal` aborts first (a download stuck on a hung server). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
