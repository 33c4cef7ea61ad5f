/**
 * The sidecar's own base backups: no operator, no CronJob (a CronJob's pod cannot mount the
 * database's ReadWriteOnce volume; the sidecar has it at the server's path and shares its socket).
 * The background archiver starts this when it is the pod's sidecar and POD_NAME is set
 * (daemon/server.ts); it is a bundle of its own (lib/scheduler.cjs, with croner, pg and the
 * backup code), loaded only then.
 *
 * At ready (ARCHIVER_BACKUP_AT_READY=on):
 *   1. Try the local server (PGHOST) every `readyPollMs` until it accepts connections, then every
 *      `readyCheckMs`, for as long as the sidecar runs (a standby promoted later, a timeline
 *      switch, a backup that failed). A server that listens on its Unix socket only is not ready
 *      yet: the official image's entrypoint initialising a new database (backup-duty.ts,
 *      `notYetServing`), which stops it again, with a fast shutdown that would end a backup of it
 *      half-way. Tried every `readyPollMs` until the server that follows it listens.
 *   2. When this member takes backups (backup-duty.ts) and the archive holds no complete backup
 *      of the server's system identifier and current timeline — a new database, or one just
 *      restored and promoted onto a new timeline — take one (`reason=at-ready`). A failed one is
 *      tried again after a back-off from `retryMinMs` up to `retryMaxMs` (a server stopped
 *      mid-backup, as in a restart, ends the backup with its session: postgres-session.ts).
 * On the schedule (ARCHIVER_BACKUP_SCHEDULE, UTC):
 *   3. At each tick, when this member takes backups: wait its turn (backup-duty.ts), skip when a
 *      backup of this database started since the tick (another member served it), take the lease
 *      (backup-lease.ts), take a backup (`reason=schedule`), then run retention
 *      (ARCHIVER_BACKUP_RETAIN, ARCHIVER_BACKUP_WINDOW: `delete ... --confirm`) still under the
 *      lease, and release it.
 *   4. A tick while a backup runs here is skipped with a log line: never two at once (the data
 *      directory lock of backup-push would refuse a second one anyway).
 * Every failure — server down, storage down, backup failed — is one log line
 * (`msg="scheduled backup failed"`) and is tried again at the next tick; nothing here throws into
 * the background archiver, whose WAL work goes on whatever happens.
 */
import type { ArchiverConfig, BackupSettings } from '../config';
import type { Archive } from '../archive';
import type { Logger } from '../logger';
import type { MetricsRecorder } from '../metrics/recorder';
import { readArchiveContents, deletePlanned } from './archive-contents';
import { CLOCK_SKEW_MS, PRIMARY_FALLBACK_MS, STANDBY_STEP_MS, backupDuty, hasBackupOf, notYetServing, servedSince, type BackupDuty, type DutyTiming, type MemberState } from './backup-duty';
import { BackupLease, LEASE_RENEW_MS, LEASE_TTL_MS } from './backup-lease';
import { backupPush, type BackupPushOptions } from './backup-push';
import { BackupSchedule } from './backup-schedule';
import { listBackups } from './catalog';
import { PostgresSession, type ConnectionSettings } from './postgres-session';
import { planRetention, plannedDeletions } from './retention';

export interface SchedulerTiming extends DutyTiming {
  /** How often a server that does not accept connections yet is tried. @default 2000 */
  readonly readyPollMs?: number;
  /** How often a server that accepts connections is checked for a backup due at ready. @default 30000 */
  readonly readyCheckMs?: number;
  /** The first wait after a failed backup at ready; it doubles after each failure. @default 60000 */
  readonly retryMinMs?: number;
  /** @default 1800000 (30 min) */
  readonly retryMaxMs?: number;
  /** How much earlier than a tick a backup may have started and still serve it (backup-duty.ts). @default CLOCK_SKEW_MS */
  readonly clockSkewMs?: number;
  /** @default LEASE_TTL_MS */
  readonly leaseTtlMs?: number;
  /** @default LEASE_RENEW_MS */
  readonly leaseRenewMs?: number;
}

export interface BackupSchedulerProps {
  readonly config: ArchiverConfig;
  /** The archive the backups go to (the background archiver's: its storage client stays warm). */
  readonly archive: Archive;
  readonly log: Logger;
  /** readBackupSettings(), with POD_NAME set. */
  readonly settings: BackupSettings & { readonly podName: string; readonly ordinal: number };
  /** @default - PGHOST, PGPORT, PGUSER, PGDATABASE (postgres-session.ts) */
  readonly connection?: ConnectionSettings;
  /** @default () => new Date() */
  readonly clock?: () => Date;
  readonly timing?: SchedulerTiming;
  /** Counts the backups taken and failed (the sidecar's metrics). @default - none */
  readonly metrics?: MetricsRecorder;
  /** Tunables of the backups taken. @default - backup-push's defaults, no progress bar */
  readonly backup?: Pick<BackupPushOptions, 'concurrency' | 'partBytes' | 'walTimeoutSeconds' | 'fast'>;
}

export type BackupReason = 'at-ready' | 'schedule';

/** What one attempt came to (the tests read it; the log says it). */
export type SchedulerOutcome =
  | { readonly kind: 'taken'; readonly reason: BackupReason; readonly backup: string }
  | { readonly kind: 'skipped'; readonly reason: BackupReason; readonly why: string }
  | { readonly kind: 'failed'; readonly reason: BackupReason; readonly error: Error };

/** What a look at the local server found (BackupScheduler.whoTakes). */
interface ServerSeen {
  readonly state: MemberState & { readonly systemIdentifier: string; readonly timeline: number };
  readonly duty: BackupDuty;
  /** Why the server is not yet the one to back up (no backup of it, whatever `duty` says); undefined: it is. */
  readonly notServing: string | undefined;
}

/** How long stop() waits for the lease to be released. */
const STOP_RELEASE_MS = 5_000;

/** setTimeout's limit (about 24.8 days): a later tick is reached in several waits. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class BackupScheduler {
  /** The cron schedule; undefined: at ready only. */
  public readonly schedule: BackupSchedule | undefined;
  private readonly clock: () => Date;
  private readonly timing: Required<SchedulerTiming>;
  private readonly since: Date;
  private readonly log: Logger;
  /** The attempt running now (in this process: never two at once). */
  private running: Promise<SchedulerOutcome> | undefined;
  private lease: BackupLease | undefined;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sleepers = new Set<() => void>();
  /** `<system identifier>/<timeline>` the archive is known to hold a backup of. */
  private covered: string | undefined;
  private retryAt = 0;
  private retryDelayMs: number;
  /** What the last readiness check found of the server (log lines on changes only). */
  private server: 'down' | 'initialising' | 'up' | undefined;
  private lastDuty: string | undefined;

  /** Throws ConfigError for a schedule that is not a five-field cron expression. */
  constructor(private readonly props: BackupSchedulerProps) {
    this.schedule = props.settings.schedule === undefined ? undefined : BackupSchedule.parse(props.settings.schedule);
    this.clock = props.clock ?? (() => new Date());
    this.since = this.clock();
    this.log = props.log.child({ member: props.settings.podName });
    this.timing = {
      standbyStepMs: props.timing?.standbyStepMs ?? STANDBY_STEP_MS,
      primaryFallbackMs: props.timing?.primaryFallbackMs ?? PRIMARY_FALLBACK_MS,
      readyPollMs: props.timing?.readyPollMs ?? 2_000,
      readyCheckMs: props.timing?.readyCheckMs ?? 30_000,
      retryMinMs: props.timing?.retryMinMs ?? 60_000,
      retryMaxMs: props.timing?.retryMaxMs ?? 30 * 60_000,
      clockSkewMs: props.timing?.clockSkewMs ?? CLOCK_SKEW_MS,
      leaseTtlMs: props.timing?.leaseTtlMs ?? LEASE_TTL_MS,
      leaseRenewMs: props.timing?.leaseRenewMs ?? LEASE_RENEW_MS,
    };
    this.retryDelayMs = this.timing.retryMinMs;
  }

  /** Starts the timers: the readiness checks (at ready on) and the ticks (a schedule set). */
  start(): void {
    const { settings } = this.props;
    const fields = {
      from: settings.from,
      at_ready: settings.atReady ? 'on' : 'off',
      retain: settings.retain,
      window: settings.windowMs === undefined ? undefined : `${settings.windowMs / 1000}s`,
    };
    if (this.schedule) {
      const next = this.schedule.next(this.clock());
      this.log.info('backup scheduled', { next: next.toISOString(), schedule: this.schedule.expression, ...fields });
      this.armTick(next);
    } else {
      this.log.info('no scheduled backups: ARCHIVER_BACKUP_SCHEDULE is not set', fields);
    }
    if (settings.atReady) this.arm(() => this.readyLoop(), 0);
  }

  /** Stops the timers and releases a lease it holds. A backup running now is left to end with the process. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const wake of this.sleepers) wake();
    // Best effort, briefly: a pod stopping must not wait on a storage that does not answer (the
    // lease then expires on its own, or this member's next run replaces it).
    if (this.lease) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.lease.release().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, STOP_RELEASE_MS)))]);
      clearTimeout(timer);
    }
  }

  /** One tick of the schedule (step 3). Never throws. */
  runTick(tick: Date): Promise<SchedulerOutcome> {
    return this.exclusive('schedule', async () => {
      const { state, duty, notServing } = await this.whoTakes();
      if (notServing !== undefined) return this.skipped('schedule', notServing);
      if (!duty.takes) return this.skipped('schedule', `not this member: ${duty.why}`, 'debug');
      await this.sleep(duty.delayMs);
      if (this.stopped) return this.skipped('schedule', 'the sidecar is stopping');
      const served = servedSince(await listBackups(this.props.archive.storage), tick, state.systemIdentifier, this.timing.clockSkewMs);
      if (served) return this.skipped('schedule', `${served.name} started since the tick ${tick.toISOString()}`);
      return this.take('schedule', duty, { tick: tick.toISOString() });
    });
  }

  /** One readiness check (steps 1 and 2). Never throws. */
  checkReady(): Promise<SchedulerOutcome> {
    return this.exclusive('at-ready', async () => {
      let found: ServerSeen;
      try {
        found = await this.whoTakes();
      } catch (error) {
        if (this.server !== 'down') this.log.info('waiting for PostgreSQL to accept connections', { error: (error as Error).message });
        this.server = 'down';
        return { kind: 'skipped', reason: 'at-ready', why: 'PostgreSQL does not accept connections' };
      }
      if (found.notServing !== undefined) {
        if (this.server !== 'initialising') this.log.info('waiting for PostgreSQL to finish initialising', { why: found.notServing, system_identifier: found.state.systemIdentifier });
        this.server = 'initialising';
        return { kind: 'skipped', reason: 'at-ready', why: found.notServing };
      }
      if (this.server !== 'up') this.log.info('PostgreSQL accepts connections', { system_identifier: found.state.systemIdentifier, timeline: found.state.timeline, in_recovery: found.state.inRecovery });
      this.server = 'up';
      const { state, duty } = found;
      const key = `${state.systemIdentifier}/${state.timeline}`;
      if (this.covered === key) return { kind: 'skipped', reason: 'at-ready', why: 'the archive holds a backup of this timeline' };
      if (!duty.takes) {
        if (this.lastDuty !== duty.why) this.log.info('this member takes no backups now', { why: duty.why });
        this.lastDuty = duty.why;
        return { kind: 'skipped', reason: 'at-ready', why: duty.why };
      }
      this.lastDuty = undefined;
      if (this.clock().getTime() < this.retryAt) return { kind: 'skipped', reason: 'at-ready', why: `retrying after ${new Date(this.retryAt).toISOString()}` };
      await this.sleep(duty.delayMs);
      if (this.stopped) return { kind: 'skipped', reason: 'at-ready', why: 'the sidecar is stopping' };
      let outcome: SchedulerOutcome;
      try {
        if (hasBackupOf(await listBackups(this.props.archive.storage), state)) {
          this.covered = key;
          this.log.info('the archive holds a backup of this database and timeline: none due at ready', { system_identifier: state.systemIdentifier, timeline: state.timeline });
          return { kind: 'skipped', reason: 'at-ready', why: 'the archive holds a backup of this timeline' };
        }
        outcome = await this.take('at-ready', duty, { system_identifier: state.systemIdentifier, timeline: state.timeline });
      } catch (error) {
        // Storage down, backup failed: try again after a back-off that doubles up to retryMaxMs.
        this.retryAt = this.clock().getTime() + this.retryDelayMs;
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.timing.retryMaxMs);
        throw error;
      }
      if (outcome.kind === 'taken') {
        this.covered = key;
        this.retryDelayMs = this.timing.retryMinMs;
      } else {
        // The lease is held by another member, which is likely taking it: look again later.
        this.retryAt = this.clock().getTime() + this.retryDelayMs;
      }
      return outcome;
    });
  }

  /** What the local server says about this member, whether it takes backups, and whether the server is the one to back up yet. Throws when the server cannot be reached. */
  private async whoTakes(): Promise<ServerSeen> {
    const session = await PostgresSession.open({ ...this.props.connection, applicationName: 'archiver backup-scheduler' });
    try {
      const replication = await session.replication();
      const state = {
        ordinal: this.props.settings.ordinal,
        inRecovery: session.facts.inRecovery,
        streaming: replication.streaming,
        streamingStandbys: replication.streamingStandbys,
        systemIdentifier: session.facts.systemIdentifier,
        timeline: session.facts.timeline,
      };
      return { state, duty: backupDuty(this.props.settings.from, state, this.timing), notServing: notYetServing(session.facts) };
    } finally {
      await session.close();
    }
  }

  /** Lease, backup, retention (after scheduled ones), release. */
  private async take(reason: BackupReason, duty: BackupDuty & { takes: true }, fields: Record<string, string | number>): Promise<SchedulerOutcome> {
    const { archive, settings, config } = this.props;
    const acquired = await BackupLease.acquire(archive.storage, { member: settings.podName, since: this.since }, {
      purpose: reason,
      clock: this.clock,
      ttlMs: this.timing.leaseTtlMs,
      renewMs: this.timing.leaseRenewMs,
      log: this.log,
    });
    if (!acquired.acquired) return this.skipped(reason, acquired.why);
    this.lease = acquired.lease;
    try {
      this.log.info('taking a base backup', { reason, role: duty.role, why: duty.why, ...fields, ...(acquired.replaced ? { lease_replaced: acquired.replaced } : {}) });
      const manifest = await backupPush(config, archive, this.log.child({ reason }), { fast: true, terminal: false, connection: this.props.connection, ...this.props.backup });
      if (reason === 'schedule' && (settings.retain !== undefined || settings.windowMs !== undefined)) await this.retention();
      return { kind: 'taken', reason, backup: manifest.name };
    } finally {
      this.lease = undefined;
      await acquired.lease.release().catch((error: unknown) => this.log.warn('could not release the backup lease: it expires on its own', { error: (error as Error).message }));
    }
  }

  /** `delete retain N --window D --confirm` after a scheduled backup; a failure is logged, the backup stands. */
  private async retention(): Promise<void> {
    const { archive, settings } = this.props;
    try {
      const contents = await readArchiveContents(archive.storage);
      const plan = planRetention({ ...contents, now: this.clock() }, { retain: settings.retain, windowMs: settings.windowMs });
      const deleted = await deletePlanned(archive.storage, plan, this.log);
      this.log.info('retention after the scheduled backup', {
        backups_deleted: plan.backups.filter((b) => !b.keep).length,
        backups_kept: plan.backups.filter((b) => b.keep).length,
        wal_deleted: plan.walDeleted.reduce((sum, r) => sum + r.count, 0),
        objects_deleted: deleted,
        planned: plannedDeletions(plan),
      });
    } catch (error) {
      this.log.error('retention after the scheduled backup failed; it runs again after the next one', { error: (error as Error).message, error_name: (error as Error).name });
    }
  }

  /** Runs `attempt` unless one runs already; turns any failure into an outcome and a log line. */
  private exclusive(reason: BackupReason, attempt: () => Promise<SchedulerOutcome>): Promise<SchedulerOutcome> {
    if (this.stopped) return Promise.resolve({ kind: 'skipped', reason, why: 'the sidecar is stopping' });
    if (this.running) {
      // At ready, checks simply come again; a tick is worth a line.
      return Promise.resolve(reason === 'schedule' ? this.skipped(reason, 'a backup is running') : { kind: 'skipped', reason, why: 'a backup is running' });
    }
    const run = attempt().catch((error: unknown): SchedulerOutcome => {
      const e = error instanceof Error ? error : new Error(String(error));
      const when =
        reason === 'schedule' ? { next: this.schedule?.next(this.clock()).toISOString() } : { retry_at: new Date(Math.max(this.retryAt, this.clock().getTime() + this.timing.readyCheckMs)).toISOString() };
      this.log.error('scheduled backup failed', { reason, error: e.message, error_name: e.name, ...when });
      return { kind: 'failed', reason, error: e };
    }).then((outcome) => {
      if (outcome.kind !== 'skipped') this.props.metrics?.backupEnded(reason, outcome.kind);
      return outcome;
    });
    this.running = run.finally(() => (this.running = undefined));
    return run;
  }

  private skipped(reason: BackupReason, why: string, level: 'info' | 'debug' = 'info'): SchedulerOutcome {
    this.log.log(level, 'scheduled backup skipped', { reason, why });
    return { kind: 'skipped', reason, why };
  }

  private async readyLoop(): Promise<void> {
    await this.checkReady();
    if (!this.stopped) this.arm(() => this.readyLoop(), this.server === 'up' ? this.timing.readyCheckMs : this.timing.readyPollMs);
  }

  /** Waits for `tick`, runs it, and arms the next one at once (so that a long backup makes the next tick skip, not slip). */
  private armTick(tick: Date): void {
    const wait = tick.getTime() - this.clock().getTime();
    if (wait > MAX_TIMER_MS) return this.arm(() => this.armTick(tick), MAX_TIMER_MS);
    this.arm(() => {
      // Timers may fire a little early: the next tick is after this one, whatever the clock says.
      const now = this.clock();
      const next = this.schedule!.next(now.getTime() > tick.getTime() ? now : tick);
      this.armTick(next);
      void this.runTick(tick).then((outcome) => {
        if (outcome.kind !== 'failed') this.log.info('backup scheduled', { next: next.toISOString(), last: outcome.kind });
      });
    }, Math.max(0, wait));
  }

  private arm(run: () => unknown, ms: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void Promise.resolve()
        .then(run)
        .catch((error: unknown) => this.log.error('backup scheduler error', { error: (error as Error).message }));
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  /** Waits `ms` (0: not at all); `stop()` cuts it short. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleepers.add(wake);
    });
  }
}

/**
 * The entry point of lib/scheduler.cjs for the background archiver: a started scheduler, or
 * undefined when the sidecar takes no backups (no schedule and at ready off). Throws ConfigError
 * for a bad ARCHIVER_BACKUP_SCHEDULE.
 */
export function startBackupScheduler(props: BackupSchedulerProps): BackupScheduler | undefined {
  if (!props.settings.atReady && props.settings.schedule === undefined) {
    props.log.info('no base backups by this sidecar: ARCHIVER_BACKUP_AT_READY is off and ARCHIVER_BACKUP_SCHEDULE is not set');
    return undefined;
  }
  const scheduler = new BackupScheduler(props);
  scheduler.start();
  return scheduler;
}

export { BackupSchedule };
// The bundle's other sidecar duty (lib/scheduler.cjs has one entry point).
export { startRecoveryEndWatcher } from './recovery-end';
// The sidecar's role label (pg, the Kubernetes API) is loaded with the scheduler's bundle: the WAL calls' never holds pg.
export { startRoleLabeller } from '../daemon/role-label';
export { startConfigReloadWatcher } from '../daemon/config-reload';
// The sidecar's credential keeper (daemon/credentials.ts) opens its sessions with it.
export { PostgresSession };
