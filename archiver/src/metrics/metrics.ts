/**
 * The sidecar's metrics (lib/metrics.cjs, with prom-client; loaded only by the background
 * archiver of a pod with ARCHIVER_METRICS_PORT set). The names, types and help are the contract's
 * (contract/metrics.ts), which the constructs' alert rules and dashboard use too.
 *
 * 1. Counters and histograms count events as they happen (recorder.ts: the pusher, the
 *    prefetcher, the handlers, the backup scheduler).
 * 2. Gauges are looked at (looks.ts): the backlog, the server and the volume every
 *    `sampleMs` (15 s) and at a scrape when the last look is older than `freshMs` (5 s); the
 *    archive's backups every `backupsMs` (5 min) and after each backup this sidecar took.
 * 3. A gauge whose look failed is left out of the answer rather than served stale or as 0
 *    (archiver_postgres_up says whether the server answered); a failure is logged once, until
 *    the look succeeds again.
 * 4. HTTP GET METRICS_PATH on every address of the pod: read-only numbers, no names of buckets,
 *    paths or credentials.
 *
 * Nothing here can stop or slow the WAL work: every look is caught, the timers are unref'd and
 * never overlap, and a port that cannot be listened on is a log line.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { Counter, Histogram, Registry, type Metric } from 'prom-client';
import { ARCHIVER_METRICS, METRICS_PATH, type ArchiverMetricKey, type MetricDefinition } from '../../../contract';
import type { Archive } from '../archive';
import type { ConnectionSettings } from '../backup/postgres-session';
import type { Logger } from '../logger';
import { BackupCatalog, BackupSummary, LagClock, ServerLook, archivedPosition, lookAtServer, lookAtVolume, readBacklog } from './looks';
import { MetricsRecorder } from './recorder';

declare const ARCHIVER_VERSION: string | undefined;

export interface MetricsTiming {
  /** How often the backlog, the server and the volume are looked at. @default 15000 */
  readonly sampleMs?: number;
  /** A scrape looks again when the last look is older than this. @default 5000 */
  readonly freshMs?: number;
  /** How often the archive's backups are listed. @default 300000 (5 min) */
  readonly backupsMs?: number;
}

export interface MetricsProps {
  readonly port: number;
  /** @default '::' (every address), else '0.0.0.0' where IPv6 is off */
  readonly host?: string;
  /** The archive (its backups and identity). */
  readonly archive: Archive;
  /** The spool: on the data volume, the filesystem statfs measures. */
  readonly spool: string;
  /** PostgreSQL's data directory as the sidecar sees it ($PGDATA). @default - the server's data_directory, once it answered */
  readonly dataDirectory?: string;
  /** The pod's ordinal (POD_NAME): members other than 0 report whether they stream. */
  readonly ordinal?: number;
  readonly log: Logger;
  /** @default - libpq's environment (PGHOST: the socket directory) */
  readonly connection?: ConnectionSettings;
  readonly timing?: MetricsTiming;
  /** @default () => Date.now() */
  readonly clock?: () => number;
  /**
   * Whether the storage answered the sidecar's last probe (daemon/storage-probe.ts), served as
   * archiver_storage_reachable; undefined while not known.
   * @default - not served
   */
  readonly storageReachable?: () => boolean | undefined;
}

export interface MetricsHandle {
  readonly recorder: MetricsRecorder;
  /** The port it listens on (the one asked for). */
  readonly port: number;
  /** Looks at everything now (tests; a scrape does it when the last look is old). */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A gauge whose series are set by the looks and may be absent: prom-client's own gauges always
 * serve an unlabelled series (0 before it is set), which would say "no lag" where nothing is known.
 */
class LookedGauge {
  readonly type = 'gauge';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[];
  private value: { value: number; labels: Record<string, string> }[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    labels: readonly string[] = [],
  ) {
    this.labelNames = labels;
  }

  set(value: number | undefined, labels: Record<string, string> = {}): void {
    this.value = value === undefined || !Number.isFinite(value) ? [] : [{ value, labels }];
  }

  async get(): Promise<{ name: string; help: string; type: 'gauge'; values: { value: number; labels: Record<string, string> }[]; aggregator: 'sum' }> {
    return { name: this.name, help: this.help, type: 'gauge', values: this.value, aggregator: 'sum' };
  }

  reset(): void {
    this.value = [];
  }
}

type Gauges = { [K in ArchiverMetricKey as (typeof ARCHIVER_METRICS)[K]['type'] extends 'gauge' ? K : never]: LookedGauge };
type Counters = { [K in ArchiverMetricKey as (typeof ARCHIVER_METRICS)[K]['type'] extends 'counter' ? K : never]: Counter<string> };
type Histograms = { [K in ArchiverMetricKey as (typeof ARCHIVER_METRICS)[K]['type'] extends 'histogram' ? K : never]: Histogram<string> };

/** Registers every metric of the contract. */
function register(registry: Registry): { gauges: Gauges; counters: Counters; histograms: Histograms } {
  const gauges: Record<string, LookedGauge> = {};
  const counters: Record<string, Counter<string>> = {};
  const histograms: Record<string, Histogram<string>> = {};
  for (const [key, definition] of Object.entries(ARCHIVER_METRICS) as [string, MetricDefinition][]) {
    const common = { name: definition.name, help: definition.help, labelNames: [...(definition.labels ?? [])], registers: [registry] };
    if (definition.type === 'counter') counters[key] = new Counter(common);
    else if (definition.type === 'histogram') histograms[key] = new Histogram({ ...common, buckets: [...(definition.buckets ?? [])] });
    else {
      gauges[key] = new LookedGauge(definition.name, definition.help, definition.labels);
      registry.registerMetric(gauges[key] as unknown as Metric);
    }
  }
  return { gauges: gauges as Gauges, counters: counters as Counters, histograms: histograms as Histograms };
}

/**
 * Logs a look's failure once, until it succeeds again. A server that does not answer yet and a
 * pg_wal that does not exist yet are how every pod starts (the sidecar starts with the server, on
 * an empty volume before initdb): info; anything else: warn.
 */
class FailureLog {
  private readonly failing = new Map<string, string>();
  constructor(private readonly log: Logger) {}
  ok(look: string): void {
    if (this.failing.delete(look)) this.log.info('metrics: the look works again', { look });
  }
  failed(look: string, error: unknown): void {
    const message = (error as Error)?.message ?? String(error);
    if (this.failing.has(look)) return;
    this.failing.set(look, message);
    const expected = look === 'postgres' || (look === 'pg_wal' && (error as NodeJS.ErrnoException)?.code === 'ENOENT');
    this.log.log(expected ? 'info' : 'warn', 'metrics: a look failed; its metrics are left out until it works', { look, error: message });
  }
}

export class ArchiverMetrics {
  readonly registry = new Registry();
  readonly recorder: MetricsRecorder;
  private readonly gauges: Gauges;
  private readonly counters: Counters;
  private readonly histograms: Histograms;
  private readonly clock: () => number;
  private readonly lag = new LagClock();
  private readonly catalog: BackupCatalog;
  private readonly failures: FailureLog;
  private server: http.Server | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private looking: Promise<void> | undefined;
  private lastLook = 0;
  private listingBackups: Promise<void> | undefined;
  private backupsAgain = false;
  /** What the server said last: its data directory (when $PGDATA is not given) and segment size stay known while it is down. */
  private lastServer: ServerLook | undefined;
  private newestBackup: BackupSummary | undefined;
  private stopped = false;

  constructor(private readonly props: MetricsProps) {
    this.clock = props.clock ?? (() => Date.now());
    this.catalog = new BackupCatalog(props.archive.storage);
    this.failures = new FailureLog(props.log);
    ({ gauges: this.gauges, counters: this.counters, histograms: this.histograms } = register(this.registry));
    this.gauges.buildInfo.set(1, { version: typeof ARCHIVER_VERSION === 'string' ? ARCHIVER_VERSION : 'development' });
    // These metrics exist only once the archive is open (daemon/archive-opener.ts serves the 0 before).
    this.gauges.configurationOk.set(1);
    const { counters, histograms } = this;
    const safely = (f: () => void) => {
      try {
        f();
      } catch {
        // a metric must never fail the work it counts
      }
    };
    this.recorder = {
      walPushed: (event) =>
        safely(() => {
          counters.walPushedFiles.inc({ ahead: String(event.ahead) });
          counters.walPushedBytes.inc(event.bytes);
          histograms.walPushDuration.observe(event.seconds);
        }),
      walPushFailed: (reason) => safely(() => counters.walPushFailures.inc({ reason })),
      walPushAheadHit: () => safely(() => counters.walPushAheadHits.inc()),
      walCall: (operation, seconds) => safely(() => histograms.walCallDuration.observe({ operation }, seconds)),
      walFetched: (source) => safely(() => counters.walFetchedFiles.inc({ source })),
      walFetchNotFound: () => safely(() => counters.walFetchNotFound.inc()),
      walFetchFailed: (reason) => safely(() => counters.walFetchFailures.inc({ reason })),
      walPrefetched: () => safely(() => counters.walPrefetchedFiles.inc()),
      backupEnded: (reason, outcome) =>
        safely(() => {
          (outcome === 'taken' ? counters.backupsTaken : counters.backupFailures).inc({ reason });
          if (outcome === 'taken') void this.lookAtBackups();
        }),
      roleLabelFailed: () => safely(() => counters.roleLabelFailures.inc()),
      configReloaded: (outcome) =>
        safely(() => {
          counters.configReloads.inc({ outcome: outcome.applied ? 'applied' : 'failed' });
          if (outcome.applied) this.gauges.pendingRestartSettings.set(outcome.pendingRestart);
        }),
      tlsCertificateSeen: (seen) =>
        safely(() => {
          this.gauges.tlsCertificateCurrent.set(seen.current ? 1 : 0);
          this.gauges.tlsCertificateExpiry.set(seen.expiresAt);
        }),
    };
    // Label values known in advance: their series exist (at 0) before the first event.
    for (const ahead of ['true', 'false']) counters.walPushedFiles.inc({ ahead }, 0);
    for (const source of ['prefetch', 'archive']) counters.walFetchedFiles.inc({ source }, 0);
    for (const outcome of ['applied', 'failed']) counters.configReloads.inc({ outcome }, 0);
    for (const reason of ['at-ready', 'schedule']) {
      counters.backupsTaken.inc({ reason }, 0);
      counters.backupFailures.inc({ reason }, 0);
    }
  }

  /** Listens, looks at everything once, and starts the timers. */
  async start(): Promise<void> {
    this.server = await listen(this.props.port, this.props.host, (request, response) => void this.answer(request, response));
    const timing = this.props.timing ?? {};
    this.every(timing.sampleMs ?? 15_000, () => this.look());
    this.every(timing.backupsMs ?? 300_000, () => this.lookAtBackups());
    // Not awaited: a storage that does not answer must not hold up the background archiver's start.
    void this.look();
    void this.lookAtBackups();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections?.();
    await Promise.allSettled([this.looking, this.listingBackups]);
  }

  /** The backlog, the server and the volume; concurrent calls share one look. */
  look(): Promise<void> {
    this.looking ??= this.lookNow().finally(() => {
      this.looking = undefined;
      this.lastLook = this.clock();
    });
    return this.looking;
  }

  /** The archive's backups and identity; a call during a listing lists once more after it. */
  lookAtBackups(): Promise<void> {
    if (this.listingBackups) {
      this.backupsAgain = true;
      return this.listingBackups;
    }
    this.listingBackups = this.listBackupsNow().finally(() => {
      this.listingBackups = undefined;
      if (this.backupsAgain && !this.stopped) {
        this.backupsAgain = false;
        void this.lookAtBackups();
      }
    });
    return this.listingBackups;
  }

  private async lookNow(): Promise<void> {
    const g = this.gauges;
    const now = this.clock();
    const reachable = this.props.storageReachable?.();
    g.storageReachable.set(reachable === undefined ? undefined : Number(reachable));
    // 1. The server (first: the insert position, then the backlog, so that the archived position is never past it).
    let server: ServerLook | undefined;
    try {
      server = await lookAtServer(this.props.connection);
      this.lastServer = server;
      this.failures.ok('postgres');
    } catch (error) {
      this.failures.failed('postgres', error);
    }
    g.postgresUp.set(server ? 1 : 0);
    g.postgresInRecovery.set(server ? Number(server.inRecovery) : undefined);
    const primary = server !== undefined && !server.inRecovery;
    g.streamingStandbys.set(primary ? server!.streamingStandbys : undefined);
    g.standbyStreaming.set(this.props.ordinal !== undefined && this.props.ordinal > 0 ? Number(server?.inRecovery === true && server.streaming) : undefined);
    g.lastArchived.set(primary ? server!.lastArchived : undefined);
    g.lastArchiveFailure.set(primary ? server!.lastFailed : undefined);
    this.setCounter('postgresArchivedFiles', primary ? server!.archivedCount : undefined);
    this.setCounter('postgresArchiveFailures', primary ? server!.failedCount : undefined);

    // 2. The backlog in pg_wal/archive_status.
    const segmentSize = this.lastServer?.segmentSize;
    const dataDirectory = this.props.dataDirectory ?? this.lastServer?.dataDirectory;
    let backlog: Awaited<ReturnType<typeof readBacklog>> | undefined;
    if (dataDirectory !== undefined) {
      try {
        backlog = await readBacklog(path.join(dataDirectory, 'pg_wal'), segmentSize, now);
        this.failures.ok('pg_wal');
      } catch (error) {
        this.failures.failed('pg_wal', error);
      }
    }
    g.walReadyFiles.set(backlog?.files);
    g.walReadyBytes.set(backlog?.bytes);
    g.walOldestReadyAge.set(backlog?.oldestAgeSeconds);

    // 3. The lag: from the insert position to the end of the archived WAL.
    if (primary && server!.insert !== undefined && backlog !== undefined) {
      const insert = server!.insert;
      const archived = archivedPosition(insert, backlog.oldestSegment, server!.segmentSize);
      this.lag.sample(now, insert);
      g.walInsertPosition.set(Number(insert));
      g.walArchivedPosition.set(Number(archived));
      g.archiveLagBytes.set(Number(insert > archived ? insert - archived : 0n));
      g.archiveLagSeconds.set(this.lag.lagSeconds(archived, now, backlog.oldestAgeSeconds));
    } else {
      for (const gauge of [g.walInsertPosition, g.walArchivedPosition, g.archiveLagBytes, g.archiveLagSeconds]) gauge.set(undefined);
    }
    this.setRecoveryWindowEnd();

    // 4. The volume.
    try {
      const volume = await lookAtVolume(this.props.spool);
      g.volumeSize.set(volume.sizeBytes);
      g.volumeAvailable.set(volume.availableBytes);
      g.volumeUsed.set(volume.usedBytes);
      this.failures.ok('volume');
    } catch (error) {
      this.failures.failed('volume', error);
      for (const gauge of [g.volumeSize, g.volumeAvailable, g.volumeUsed]) gauge.set(undefined);
    }
  }

  private async listBackupsNow(): Promise<void> {
    const g = this.gauges;
    try {
      const [backups, identity] = await Promise.all([this.catalog.look(), this.props.archive.readIdentity()]);
      const newest = backups[backups.length - 1];
      this.newestBackup = newest;
      g.backups.set(backups.length);
      g.backupLastCompletion.set(newest ? newest.stopMs / 1000 : 0);
      g.backupLastDuration.set(newest ? Math.max(0, newest.stopMs - newest.startMs) / 1000 : undefined);
      g.backupLastSize.set(newest?.bytes);
      g.recoveryWindowStart.set(backups.length > 0 ? backups[0].stopMs / 1000 : 0);
      const created = identity?.createdAt === undefined ? undefined : Date.parse(identity.createdAt) / 1000;
      g.archiveCreated.set(identity === undefined ? 0 : created);
      this.failures.ok('backups');
    } catch (error) {
      this.failures.failed('backups', error);
      for (const gauge of [g.backups, g.backupLastCompletion, g.backupLastDuration, g.backupLastSize, g.recoveryWindowStart, g.archiveCreated]) gauge.set(undefined);
    }
    this.setRecoveryWindowEnd();
  }

  /** The newest point of recovery: the last archived WAL (on the primary), or the newest backup's end when later. */
  private setRecoveryWindowEnd(): void {
    const server = this.lastServer;
    const lastArchived = server !== undefined && !server.inRecovery ? server.lastArchived : undefined;
    this.gauges.recoveryWindowEnd.set(lastArchived === undefined ? undefined : Math.max(lastArchived, (this.newestBackup?.stopMs ?? 0) / 1000));
  }

  /** A counter that mirrors one of the server's (pg_stat_archiver): left out when unknown. */
  private setCounter(key: 'postgresArchivedFiles' | 'postgresArchiveFailures', value: number | undefined): void {
    const counter = this.counters[key];
    counter.reset();
    if (value === undefined) counter.remove();
    else counter.inc(value);
  }

  private async answer(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    try {
      const url = new URL(request.url ?? '/', 'http://metrics');
      if (request.method !== 'GET' || url.pathname !== METRICS_PATH) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end(`the metrics are at ${METRICS_PATH}\n`);
        return;
      }
      if (this.clock() - this.lastLook > (this.props.timing?.freshMs ?? 5_000)) await this.look();
      const body = await this.registry.metrics();
      response.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
    } catch (error) {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(`metrics failed: ${(error as Error).message}\n`);
    }
  }

  private every(ms: number, run: () => Promise<void>): void {
    const timer = setInterval(() => void run().catch(() => undefined), ms);
    timer.unref();
    this.timers.push(timer);
  }
}

/** Listens on `host` (default: every IPv6 and IPv4 address, else every IPv4 one). */
async function listen(port: number, host: string | undefined, handler: http.RequestListener): Promise<http.Server> {
  const attempt = (address: string) =>
    new Promise<http.Server>((resolve, reject) => {
      const server = http.createServer(handler);
      server.keepAliveTimeout = 65_000;
      server.once('error', reject);
      server.listen({ port, host: address }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        server.unref();
        resolve(server);
      });
    });
  if (host !== undefined) return attempt(host);
  try {
    return await attempt('::');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw error;
    return attempt('0.0.0.0');
  }
}

/**
 * The entry point of lib/metrics.cjs for the background archiver: serving, or a log line and
 * undefined when the port cannot be listened on (the WAL work goes on either way).
 */
export async function startMetrics(props: MetricsProps): Promise<MetricsHandle | undefined> {
  const metrics = new ArchiverMetrics(props);
  try {
    await metrics.start();
  } catch (error) {
    await metrics.stop().catch(() => undefined);
    props.log.error('metrics are off: cannot serve them', { port: props.port, error: (error as Error).message });
    return undefined;
  }
  props.log.info('serving metrics', { port: props.port, path: METRICS_PATH });
  return { recorder: metrics.recorder, port: props.port, refresh: () => Promise.all([metrics.look(), metrics.lookAtBackups()]).then(() => undefined), stop: () => metrics.stop() };
}
