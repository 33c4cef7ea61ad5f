/**
 * The background archiver: one long-lived process per spool. It keeps the storage client (and
 * its connections) warm, pushes ready WAL ahead of PostgreSQL's requests, prefetches WAL for
 * restore, and answers the calls over loopback TCP (protocol.ts; the port and a secret token are
 * in the spool's daemon.port file, readable by its owner only).
 *
 * In Kubernetes it runs as the pod's `archiver` sidecar container (ARCHIVER_DAEMON_IDLE_SECONDS=0:
 * it never exits on its own), so that it is warm before the first segment is ready and is never
 * a child of the postmaster; elsewhere the first call starts it (ARCHIVER_DAEMON=on), and it
 * stops when idle or when the PostgreSQL it was started for is gone. It stops too when another
 * configuration claims the spool, and on a `stop` request. When it is down, calls started
 * outside the pod do the work themselves; the pod's calls (ARCHIVER_DAEMON=external: no storage
 * credentials) fail, and PostgreSQL calls again (wal-call.ts).
 *
 * 1. Take the spool's lock (lock.ts): at most one per spool, however many calls start one.
 * 2. Open the archive (the sidecar: until it opens, archive-opener.ts answers calls with a
 *    failure; then storage-probe.ts watches the storage), claim and empty the spool.
 * 3. Listen on 127.0.0.1, then publish the address in daemon.port.
 * 4. Answer each request by the handler table (handlers.ts), saying `wait` every
 *    HEARTBEAT_SECONDS while it works, so that a call can tell a busy archiver from a frozen one.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARCHIVER_ENV, HEARTBEAT_SECONDS, KUBERNETES_SERVICE_ENV } from '../../../contract';
import { ArchiverConfig, podOrdinal, readBackupSettings, readMetricsPort } from '../config';
import type { Archive } from '../archive';
import { Logger } from '../logger';
import type { MetricsHandle, MetricsTiming } from '../metrics/metrics';
import { MetricsRecorder, NO_METRICS } from '../metrics/recorder';
import { Prefetcher } from '../prefetcher';
import { Pusher } from '../pusher';
import { openRepository } from '../repository';
import { BUNDLED } from '../storage/open';
import { Spool } from '../spool';
import { DaemonAddress, removeAddress, writeAddress } from './address';
import { CredentialKeeper, credentialKeeperFromEnvironment } from './credentials';
import { DaemonContext, dispatch } from './handlers';
import { acquireSpoolLock } from './lock';
import { openWhenPossible } from './archive-opener';
import { listenOnLoopback, oneLineServer } from './one-line-server';
import { StorageProbe, StorageProbeOptions } from './storage-probe';
import { failure, formatAnswer, parseRequest } from './protocol';

export interface DaemonHandle {
  readonly address: DaemonAddress;
  /** Resolves when the daemon has stopped. */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /**
   * The data directory of the PostgreSQL this background archiver serves: it stops when that
   * server's postmaster is gone.
   * @default - not watched (the sidecar: another container's processes are not visible)
   */
  readonly dataDirectory?: string;
  /** How often idleness, the spool's owner and the postmaster are checked. @default 1000 (less for idle times under 4 s) */
  readonly watchIntervalMs?: number;
  /**
   * Base backups taken by this background archiver itself (backup/backup-scheduler.ts): the
   * environment POD_NAME and ARCHIVER_BACKUP_* are read from, or `false` for none. They need
   * POD_NAME; a mistake in them is logged and leaves the WAL work running.
   * @default - process.env when this is the pod's sidecar (ARCHIVER_DAEMON_IDLE_SECONDS=0 and no
   * `dataDirectory`: not started by a call); none otherwise
   */
  readonly backups?: false | Readonly<Record<string, string | undefined>>;
  /**
   * The metrics (metrics/metrics.ts, lib/metrics.cjs): the port to serve them on, or `false` for
   * none. A port that cannot be listened on is logged and leaves the WAL work running.
   * @default - ARCHIVER_METRICS_PORT when this is the pod's sidecar (as `backups`); none otherwise
   */
  readonly metrics?: false | { readonly port: number; readonly host?: string; readonly timing?: MetricsTiming };
  /** The sidecar's probe of its storage (storage-probe.ts). @default - every 30 s, back-off from 1 s while it fails */
  readonly storageProbe?: StorageProbeOptions;
  /**
   * Stops a sidecar still waiting for its archive to open: runDaemon then resolves undefined.
   * @default - it waits until the archive opens
   */
  readonly signal?: AbortSignal;
}

/**
 * Starts the metrics, loaded only now (lib/metrics.cjs: prom-client). Never throws: whatever goes
 * wrong is logged, and the WAL work goes on without them.
 */
async function startMetrics(
  config: ArchiverConfig & { spool: string },
  archive: Archive,
  log: Logger,
  options: { readonly port: number; readonly host?: string; readonly timing?: MetricsTiming },
  env: Readonly<Record<string, string | undefined>>,
  probe: StorageProbe | undefined,
): Promise<MetricsHandle | undefined> {
  try {
    // require() in the bundle, not import(): see storage/open.ts.
    const metrics = BUNDLED ? (require('../metrics/metrics') as typeof import('../metrics/metrics')) : await import('../metrics/metrics');
    const podName = env[ARCHIVER_ENV.podName];
    return await metrics.startMetrics({
      port: options.port,
      host: options.host,
      timing: options.timing,
      archive,
      spool: config.spool,
      dataDirectory: config.dataDirectory,
      ordinal: podName ? podOrdinal(podName) : undefined,
      log,
      storageReachable: probe ? () => probe.reachable : undefined,
    });
  } catch (error) {
    log.error('metrics are off', { error: (error as Error).message, error_name: (error as Error).name });
    return undefined;
  }
}

/**
 * Starts the sidecar's backup scheduler, the watch for the end of a recovery
 * (backup/recovery-end.ts) and the watch of the mounted configuration (config-reload.ts, with
 * ARCHIVER_CONFIG_DIR), loaded only now (lib/scheduler.cjs: croner, pg, the backup code).
 * Never throws: whatever goes wrong here is logged, and the WAL work goes on.
 */
async function startBackups(config: ArchiverConfig, archive: Archive, log: Logger, env: Readonly<Record<string, string | undefined>>, metrics: MetricsRecorder): Promise<{ stop(): Promise<void> } | undefined> {
  const started: { stop(): Promise<void> }[] = [];
  const all = { stop: async () => void (await Promise.all(started.map((s) => s.stop()))) };
  try {
    if (!env[ARCHIVER_ENV.podName]) {
      log.debug('no base backups by this background archiver: POD_NAME is not set');
      return undefined;
    }
    // require() in the bundle, not import(): see storage/open.ts.
    const scheduler = BUNDLED ? (require('../backup/backup-scheduler') as typeof import('../backup/backup-scheduler')) : await import('../backup/backup-scheduler');
    started.push(scheduler.startRecoveryEndWatcher({ log }));
    const configDir = env[ARCHIVER_ENV.configDir];
    if (configDir) started.push(scheduler.startConfigReloadWatcher({ log, configDir, tlsDir: env[ARCHIVER_ENV.tlsDir] || undefined, metrics }));
    const settings = readBackupSettings(env);
    if (settings.podName === undefined || settings.ordinal === undefined) return all;
    const backups = scheduler.startBackupScheduler({ config, archive, log, metrics, settings: { ...settings, podName: settings.podName, ordinal: settings.ordinal } });
    if (backups) started.push(backups);
    return all;
  } catch (error) {
    log.error('scheduled backups are off', { error: (error as Error).message, error_name: (error as Error).name });
    return started.length > 0 ? all : undefined;
  }
}

/**
 * Starts the pod's role label (role-label.ts) when ARCHIVER_ROLE_LABEL is `on`, loaded only now
 * (lib/scheduler.cjs: pg). Never throws: whatever goes wrong is logged, and the WAL work goes on.
 */
async function startRoleLabel(log: Logger, env: Readonly<Record<string, string | undefined>>, metrics: MetricsRecorder): Promise<{ stop(): Promise<void> } | undefined> {
  if (env[ARCHIVER_ENV.roleLabel] !== 'on') return undefined;
  // The kubelet sets it in every container: without it this is not a pod (a test, a laptop).
  if (!env[KUBERNETES_SERVICE_ENV.host]) {
    log.info("the pod's role label is off: no Kubernetes API here", { reason: `${KUBERNETES_SERVICE_ENV.host} is not set` });
    return undefined;
  }
  try {
    // require() in the bundle, not import(): see storage/open.ts.
    const scheduler = BUNDLED ? (require('../backup/backup-scheduler') as typeof import('../backup/backup-scheduler')) : await import('../backup/backup-scheduler');
    return scheduler.startRoleLabeller({ env, log, metrics });
  } catch (error) {
    // A warning, not an error: the WAL work is whole. The read-only Service leaves this member out.
    log.warn("the pod's role label is off", { error: (error as Error).message, error_name: (error as Error).name });
    return undefined;
  }
}

function timingSafeEqualStrings(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The pid in a data directory's postmaster.pid, or undefined. */
function postmasterPid(dataDirectory: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDirectory, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs the background archiver until it is stopped. Returns undefined when another one already serves the spool. */
export async function runDaemon(config: ArchiverConfig & { spool: string }, log: Logger, options: DaemonOptions = {}): Promise<DaemonHandle | undefined> {
  const spool = new Spool(config.spool, config.spoolOwner);
  await spool.ensure();
  const lock = await acquireSpoolLock(config.spool);
  if (!lock) return undefined;

  const sidecar = config.daemonIdleSeconds === 0 && options.dataDirectory === undefined;
  let metricsOptions = options.metrics;
  if (metricsOptions === undefined && sidecar) {
    try {
      const port = readMetricsPort(process.env);
      metricsOptions = port === undefined ? false : { port };
    } catch (error) {
      log.error('metrics are off', { error: (error as Error).message, error_name: (error as Error).name });
    }
  }
  // The sidecar never exits on an archive it cannot open (archive-opener.ts): it would cost the
  // pod its readiness. A background archiver started by a call fails instead: the call works alone.
  const open = () => openRepository(config, { workers: config.workers, log });
  const archive = sidecar
    ? await openWhenPossible('opening the archive', open, { log, spool: config.spool, metrics: metricsOptions || undefined, signal: options.signal })
    : await open();
  if (!archive) {
    await lock.release();
    return undefined;
  }
  const probe = sidecar ? new StorageProbe(archive, log, options.storageProbe) : undefined;
  probe?.start();
  const metrics = metricsOptions ? await startMetrics(config, archive, log, metricsOptions, process.env, probe) : undefined;
  const recorder = metrics?.recorder ?? NO_METRICS;
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  // Another configuration claimed the spool: this background archiver is obsolete.
  const disowned = () => {
    log.warn('the spool now belongs to another archive location; stopping', { location: archive.location });
    setImmediate(() => void stop());
  };
  const pusher = new Pusher(archive, spool, config.pushConcurrency, log, disowned, recorder);
  const prefetcher = new Prefetcher(archive, spool, config.prefetch, Math.min(config.prefetchConcurrency, Math.max(1, config.prefetch)), log, disowned, recorder);
  // Markers and prefetched files of an earlier run may belong to another configuration.
  await spool.clear();
  await spool.claim();
  await spool.recordBoot();
  if (metrics) pusher.watchMarkers();

  // The roles' passwords and the standbys' passfile, from the mounted Secrets (credentials.ts):
  // started before the address is published, so the passfile is there when start.sh sees it.
  let credentials: CredentialKeeper | undefined;
  if (sidecar) {
    const podName = process.env[ARCHIVER_ENV.podName];
    credentials = credentialKeeperFromEnvironment(process.env, podName !== undefined && podOrdinal(podName) === 0, async () => {
      // require() in the bundle, not import(): see storage/open.ts (pg is in lib/scheduler.cjs).
      const scheduler = BUNDLED ? (require('../backup/backup-scheduler') as typeof import('../backup/backup-scheduler')) : await import('../backup/backup-scheduler');
      return scheduler.PostgresSession.open({ applicationName: 'archiver credentials' });
    }, log);
    credentials?.start();
  }

  const watchers = new Map<string, fs.FSWatcher>();
  const context: DaemonContext = {
    pusher,
    prefetcher,
    recoveryDeadlineSeconds: config.recoveryDeadlineSeconds,
    log,
    metrics: recorder,
    watchWalDirectory(walDirectory) {
      if (watchers.has(walDirectory)) return;
      try {
        const watcher = fs.watch(path.join(walDirectory, 'archive_status'), (_event, file) => {
          if (file?.endsWith('.ready')) void pusher.pushAhead(walDirectory);
        });
        watcher.on('error', () => undefined);
        watchers.set(walDirectory, watcher);
      } catch {
        // not a data directory's pg_wal
      }
    },
    stop: () => setImmediate(() => void stop()),
  };

  let lastActivity = Date.now();
  let inProgress = 0;
  const token = randomBytes(16).toString('hex');
  const server = oneLineServer((line, socket) => {
    const parsed = parseRequest(line);
    if (parsed.kind === 'invalid') return void socket.end(`${formatAnswer(failure(Object.assign(new Error(parsed.reason), { name: 'UsageError' })))}\n`);
    if (!timingSafeEqualStrings(parsed.token, token)) return void socket.destroy();
    if (parsed.owner !== config.spoolOwner) return void socket.end(`${formatAnswer({ kind: 'mismatch' })}\n`);
    lastActivity = Date.now();
    inProgress++;
    const received = process.hrtime.bigint();
    const heartbeat = setInterval(() => socket.write(`${formatAnswer({ kind: 'wait' })}\n`), HEARTBEAT_SECONDS * 1000);
    dispatch(context, parsed.request)
      .then((detail) => formatAnswer({ kind: 'ok', detail }), (error: unknown) => formatAnswer(failure(error)))
      .then((answer) => {
        clearInterval(heartbeat);
        const op = parsed.request.op;
        if (op === 'push' || op === 'fetch') recorder.walCall(op, Number(process.hrtime.bigint() - received) / 1e9);
        inProgress--;
        lastActivity = Date.now();
        socket.end(`${answer}\n`);
      });
  });
  const address: DaemonAddress = { port: await listenOnLoopback(server), token, pid: process.pid };
  writeAddress(spool.portFile, address);

  // Idle, disowned, or the PostgreSQL it was started for is gone: stop.
  const postmaster = options.dataDirectory ? postmasterPid(options.dataDirectory) : undefined;
  const watch = setInterval(() => {
    void (async () => {
      if (stopping) return;
      const idle = config.daemonIdleSeconds > 0 && Date.now() - lastActivity > config.daemonIdleSeconds * 1000 && inProgress === 0 && pusher.pending === 0;
      if (idle) {
        log.info('idle; stopping', { idle_seconds: config.daemonIdleSeconds });
        return void stop();
      }
      if (postmaster !== undefined && (!processAlive(postmaster) || postmasterPid(options.dataDirectory!) !== postmaster)) {
        log.info('the PostgreSQL server it serves has stopped; stopping', { postmaster_pid: postmaster });
        return void stop();
      }
      if (!(await spool.owned())) disowned();
    })();
  }, options.watchIntervalMs ?? (config.daemonIdleSeconds > 0 ? Math.min(1000, config.daemonIdleSeconds * 250) : 1000));
  watch.unref();

  let backups: { stop(): Promise<void> } | undefined;
  let roleLabel: { stop(): Promise<void> } | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(watch);
      // Not awaited: a probe of a storage that hangs must not hold the sidecar's stop up.
      void probe?.stop();
      server.close();
      removeAddress(spool.portFile, address);
      for (const watcher of watchers.values()) watcher.close();
      prefetcher.close();
      pusher.close();
      await backups?.stop();
      await roleLabel?.stop();
      await credentials?.stop();
      await metrics?.stop();
      await pusher.drain();
      await archive.close();
      await lock.release();
      log.info('background archiver stopped', { pid: process.pid });
      resolveStopped();
    })();
    return stopping;
  };

  log.info('background archiver started', {
    pid: process.pid,
    location: archive.location,
    spool: config.spool,
    concurrency: config.pushConcurrency,
    prefetch: config.prefetch,
    postmaster_pid: postmaster,
  });
  const backupEnv = options.backups ?? (sidecar ? process.env : false);
  if (backupEnv !== false) {
    backups = await startBackups(config, archive, log, backupEnv, recorder);
    roleLabel = await startRoleLabel(log, backupEnv, recorder);
    // Stopped while the scheduler was loading.
    if (stopping) await Promise.all([backups?.stop(), roleLabel?.stop()]);
  }
  return { address, stopped, stop };
}
