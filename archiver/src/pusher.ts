/**
 * Push-ahead (the model is CloudNativePG's archiver and pgBackRest's asynchronous archive-push):
 *
 * 1. PostgreSQL asks for one file (`push`); if that file is already being pushed ahead, wait
 *    for that push instead of starting another.
 * 2. Gather the other `.ready` files in pg_wal/archive_status, in PostgreSQL's own order.
 * 3. Push them in parallel, bounded, the requested file first.
 * 4. Record each success of a file pushed ahead as an empty marker in the spool, only after the
 *    storage confirmed it durable; the requested file's result is returned, never recorded.
 *
 * A later archive_command for a marked file returns at once (the launcher consumes the marker).
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Archive, PushResult } from './archive';
import { Limiter } from './limiter';
import { Logger } from './logger';
import { MetricsRecorder, NO_METRICS, errorReason } from './metrics/recorder';
import { Spool } from './spool';
import { archiveOrder, walFileKind } from './wal-names';

interface InFlight {
  /** The absolute path being pushed. */
  readonly file: string;
  readonly promise: Promise<PushResult>;
  /** PostgreSQL asked for this file: report to it, leave no marker. */
  requested: boolean;
}

export class Pusher {
  private readonly inFlight = new Map<string, InFlight>();
  /**
   * Files pushed lately. PostgreSQL renames X.ready to X.done only after archive_command returns,
   * so a scan in between still sees X ready: without this, X would be compared again.
   */
  private readonly recent = new Set<string>();
  private readonly limiter: Limiter;
  /**
   * Markers this pusher wrote that nobody took yet: one that disappears while listed here was
   * taken by the launcher (a push-ahead hit). Its own removals take the name out first.
   */
  private readonly marked = new Set<string>();
  private markerWatcher: FSWatcher | undefined;

  constructor(
    private readonly archive: Archive,
    private readonly spool: Spool,
    concurrency: number,
    private readonly log: Logger,
    /** Called when the spool turns out to belong to another archive location (the configuration changed). */
    private readonly onDisowned: () => void = () => undefined,
    private readonly metrics: MetricsRecorder = NO_METRICS,
  ) {
    this.limiter = new Limiter(concurrency);
  }

  /**
   * Counts the markers the launcher takes (it answers archive_command from the spool without
   * Node, and without a word to the background archiver). For metrics only.
   */
  watchMarkers(): void {
    if (this.markerWatcher) return;
    try {
      this.markerWatcher = watch(this.spool.pushedDir, (_event, file) => {
        if (!file || !this.marked.has(file) || existsSync(path.join(this.spool.pushedDir, file))) return;
        this.marked.delete(file);
        this.metrics.walPushAheadHit();
      });
      this.markerWatcher.on('error', () => undefined);
    } catch {
      // no spool directory to watch: hits go uncounted
    }
  }

  close(): void {
    this.markerWatcher?.close();
  }

  /** Pushes the file PostgreSQL asked for, and starts pushing the next ready files. */
  async push(file: string): Promise<PushResult> {
    file = path.resolve(file);
    const name = path.basename(file);
    // Pushed ahead already (the launcher checks this too; a push may have finished since).
    const wasMarked = this.marked.delete(name);
    if (await this.spool.takePushed(file)) {
      this.metrics.walPushAheadHit();
      return { name, status: 'already-archived', bytes: 0, storedBytes: 0 };
    }
    if (wasMarked) this.marked.add(name);
    let entry = this.inFlight.get(name);
    // A push of another file under the same name (a pushed-ahead pg_wal/NAME while asked for
    // /elsewhere/NAME) answers nothing about this one: wait for it, then push this file.
    while (entry && entry.file !== file) {
      await entry.promise.catch(() => undefined);
      entry = this.inFlight.get(name);
    }
    if (entry) entry.requested = true;
    else entry = this.start(file, true);
    void this.pushAhead(path.dirname(path.resolve(file)));
    return entry.promise;
  }

  /** Scans already scheduled or running, per directory: bursts of events make one scan. */
  private readonly scans = new Map<string, Promise<void>>();
  private readonly rescan = new Set<string>();

  /**
   * Starts pushing every ready file of `walDirectory` not yet pushed or in flight. Calls while a
   * scan runs coalesce into one more scan after it.
   */
  pushAhead(walDirectory: string): Promise<void> {
    const running = this.scans.get(walDirectory);
    if (running) {
      this.rescan.add(walDirectory);
      return running;
    }
    const scan = this.scan(walDirectory).finally(() => {
      this.scans.delete(walDirectory);
      if (this.rescan.delete(walDirectory)) void this.pushAhead(walDirectory);
    });
    this.scans.set(walDirectory, scan);
    return scan;
  }

  private async scan(walDirectory: string): Promise<void> {
    let ready: string[];
    try {
      ready = (await fs.readdir(path.join(walDirectory, 'archive_status')))
        .filter((f) => f.endsWith('.ready'))
        .map((f) => f.slice(0, -'.ready'.length))
        .filter((name) => walFileKind(name) !== undefined)
        .sort(archiveOrder);
    } catch {
      return; // not a data directory's pg_wal (a file pushed by hand): nothing to push ahead
    }
    const marked = new Set(await this.spool.pushedNames());
    const fresh = ready.filter((name) => !this.inFlight.has(name) && !marked.has(name) && !this.recent.has(name));
    // A backlog: one listing instead of a HEAD request per file (a failed listing falls back to HEAD).
    if (fresh.length >= 4) await this.archive.preloadExistence(fresh).catch(() => undefined);
    for (const name of fresh) {
      if (!this.inFlight.has(name)) this.start(path.join(walDirectory, name), false).promise.catch(() => undefined);
    }
    // Markers whose file is no longer ready are of no use to anyone.
    const readySet = new Set(ready);
    for (const name of marked) {
      if (readySet.has(name) || this.inFlight.has(name)) continue;
      this.marked.delete(name);
      await this.spool.removePushed(name);
    }
  }

  /** Files being pushed, and waiting to be. */
  get pending(): number {
    return this.inFlight.size;
  }

  /** Resolves when nothing is in flight. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()].map((e) => e.promise));
  }

  private mark(name: string): void {
    this.marked.add(name);
    if (this.marked.size > 4096) this.marked.delete(this.marked.values().next().value as string);
  }

  private remember(name: string): void {
    this.recent.add(name);
    if (this.recent.size > 4096) this.recent.delete(this.recent.values().next().value as string);
  }

  private start(file: string, requested: boolean): InFlight {
    const name = path.basename(file);
    const queued = Date.now();
    const entry: InFlight = {
      file,
      requested,
      promise: this.limiter.run(async () => {
        // `ms` is the push itself; `queued_ms` the wait for a slot before it.
        const started = Date.now();
        try {
          const result = await this.archive.push(file);
          this.remember(name);
          this.metrics.walPushed({ ahead: !entry.requested, bytes: result.bytes, seconds: (Date.now() - started) / 1000 });
          // Only now, after the storage confirmed the object durable: the marker is a promise to
          // PostgreSQL's next call that this file is archived.
          // (Listed before it is written: the launcher may take it at once.)
          if (!entry.requested) {
            this.mark(name);
            if (!(await this.spool.markPushed(file))) {
              this.marked.delete(name);
              this.onDisowned();
            } else if (entry.requested) {
              // PostgreSQL asked for this file while the marker was being written, and is answered
              // by this very result: a marker left behind would answer a later call for another
              // file at this path (a recycled segment) from the spool, unchecked.
              this.marked.delete(name);
              await this.spool.takePushed(file);
            }
          }
          this.log.info(result.status === 'stored' ? 'pushed' : 'already archived', {
            wal: name,
            bytes: result.bytes,
            stored_bytes: result.storedBytes,
            ms: Date.now() - started,
            queued_ms: started - queued,
            ahead: !entry.requested,
          });
          return result;
        } catch (error) {
          this.metrics.walPushFailed(errorReason(error));
          this.log.log(entry.requested ? 'error' : 'warn', 'push failed', { wal: name, error: (error as Error).message, ahead: !entry.requested });
          throw error;
        } finally {
          this.inFlight.delete(name);
        }
      }, requested),
    };
    this.inFlight.set(name, entry);
    return entry;
  }
}
