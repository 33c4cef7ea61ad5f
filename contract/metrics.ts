/**
 * The metrics the `archiver` sidecar serves (Prometheus text format, prom-client) and where: the
 * port the constructs render on the sidecar (named METRICS_PORT_NAME, which the PodMonitor
 * scrapes), and every metric's name, type, labels and help. The archiver registers exactly these
 * (archiver/src/metrics/), and the alert rules and the Grafana dashboard the constructs render
 * write their expressions with these names only: a test compares them.
 *
 * Names follow Prometheus's conventions: the `archiver_` prefix, base units in the name
 * (`_bytes`, `_seconds`, `_timestamp_seconds` for Unix times), `_total` for counters. Labels have
 * few values each (a reason is an error's class name, never a message or a path), and nothing
 * served names a bucket, a path or a credential.
 */

/** The sidecar's metrics port (the container port the constructs render). */
export const METRICS_PORT = 9188;
/** The name of that container port: what the PodMonitor scrapes. */
export const METRICS_PORT_NAME = 'metrics';
/** The HTTP path of the metrics. */
export const METRICS_PATH = '/metrics';

export type MetricType = 'gauge' | 'counter' | 'histogram';

export interface MetricDefinition {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** Label names; none when absent. */
  readonly labels?: readonly string[];
  /** Histograms: the upper bounds of the buckets. */
  readonly buckets?: readonly number[];
  /**
   * Which sidecars serve it: `primary` (from the server's archiver: only where the server is not
   * in recovery), `standby` (members other than pod 0), `all`.
   */
  readonly on: 'all' | 'primary' | 'standby';
}

/** Latencies of WAL calls and pushes: a few milliseconds (spool) to a minute (a slow storage). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

const define = <T extends Record<string, MetricDefinition>>(metrics: T): T => metrics;

/** Every metric the sidecar serves, by key. */
export const ARCHIVER_METRICS = define({
  // Archiving: what PostgreSQL waits on (pg_wal/archive_status) and how far the archive is behind.
  walReadyFiles: { name: 'archiver_wal_ready_files', type: 'gauge', on: 'all', help: 'WAL files PostgreSQL has marked ready to archive and not yet archived (.ready files in pg_wal/archive_status).' },
  walReadyBytes: { name: 'archiver_wal_ready_bytes', type: 'gauge', on: 'all', help: 'Bytes of the WAL files waiting to be archived.' },
  walOldestReadyAge: { name: 'archiver_wal_oldest_ready_age_seconds', type: 'gauge', on: 'all', help: 'Age of the oldest WAL file waiting to be archived (since PostgreSQL marked it ready); 0 when none waits.' },
  walInsertPosition: { name: 'archiver_wal_insert_position_bytes', type: 'gauge', on: 'primary', help: 'pg_current_wal_insert_lsn() as a number of bytes.' },
  walArchivedPosition: { name: 'archiver_wal_archived_position_bytes', type: 'gauge', on: 'primary', help: 'The end of the WAL that is archived, as a number of bytes: every byte before it is in the archive.' },
  archiveLagBytes: { name: 'archiver_archive_lag_bytes', type: 'gauge', on: 'primary', help: 'WAL written and not yet archived: the insert position minus the archived position.' },
  archiveLagSeconds: { name: 'archiver_archive_lag_seconds', type: 'gauge', on: 'primary', help: 'How long ago the oldest WAL not yet archived was written (to within the sampling interval, 15 s); 0 when everything is archived.' },
  lastArchived: { name: 'archiver_last_archived_timestamp_seconds', type: 'gauge', on: 'primary', help: 'When PostgreSQL last archived a WAL file (pg_stat_archiver.last_archived_time); 0 when never since the statistics were reset.' },
  lastArchiveFailure: { name: 'archiver_last_archive_failure_timestamp_seconds', type: 'gauge', on: 'primary', help: 'When archive_command last failed (pg_stat_archiver.last_failed_time); 0 when never since the statistics were reset.' },
  postgresArchivedFiles: { name: 'archiver_postgres_archived_files_total', type: 'counter', on: 'primary', help: 'WAL files PostgreSQL archived (pg_stat_archiver.archived_count, since its statistics were reset).' },
  postgresArchiveFailures: { name: 'archiver_postgres_archive_failures_total', type: 'counter', on: 'primary', help: 'Failed archive_command calls (pg_stat_archiver.failed_count, since its statistics were reset).' },

  // The sidecar's own work, since it started.
  walPushedFiles: { name: 'archiver_wal_pushed_files_total', type: 'counter', on: 'all', labels: ['ahead'], help: 'WAL files the sidecar archived (stored, or found archived with the same contents); ahead="true" before PostgreSQL asked.' },
  walPushedBytes: { name: 'archiver_wal_pushed_bytes_total', type: 'counter', on: 'all', help: 'Bytes of the WAL files the sidecar archived, before compression.' },
  walPushFailures: { name: 'archiver_wal_push_failures_total', type: 'counter', on: 'all', labels: ['reason'], help: 'Failed pushes of a WAL file by the sidecar, by the error\'s name (StorageError, WalMismatchError, ...).' },
  walPushAheadHits: { name: 'archiver_wal_push_ahead_hits_total', type: 'counter', on: 'all', help: 'archive_command calls answered at once because the sidecar had pushed the file ahead.' },
  walPushDuration: { name: 'archiver_wal_push_duration_seconds', type: 'histogram', on: 'all', buckets: LATENCY_BUCKETS, help: 'Time to archive one WAL file: compress, upload, confirm.' },
  walCallDuration: { name: 'archiver_wal_call_duration_seconds', type: 'histogram', on: 'all', labels: ['operation'], buckets: LATENCY_BUCKETS, help: 'archive_command (operation="push") and restore_command (operation="fetch") calls the sidecar answered, from request to answer.' },

  // Restore: restore_command's work.
  walFetchedFiles: { name: 'archiver_wal_fetched_files_total', type: 'counter', on: 'all', labels: ['source'], help: 'WAL files handed to restore_command: source="prefetch" from the spool (a prefetch hit), source="archive" downloaded when asked (a miss).' },
  walFetchNotFound: { name: 'archiver_wal_fetch_not_found_total', type: 'counter', on: 'all', help: 'restore_command requests for a file that is not in the archive (normal for a standby, and at the end of a recovery).' },
  walFetchFailures: { name: 'archiver_wal_fetch_failures_total', type: 'counter', on: 'all', labels: ['reason'], help: 'Failed restore_command requests, by the error\'s name.' },
  walPrefetchedFiles: { name: 'archiver_wal_prefetched_files_total', type: 'counter', on: 'all', help: 'WAL files downloaded ahead of restore_command.' },

  // Base backups, as the archive lists them (every member reports the same).
  backups: { name: 'archiver_backups', type: 'gauge', on: 'all', help: 'Complete base backups in the archive.' },
  backupLastCompletion: { name: 'archiver_backup_last_completion_timestamp_seconds', type: 'gauge', on: 'all', help: 'When the newest complete base backup finished; 0 when there is none.' },
  backupLastDuration: { name: 'archiver_backup_last_duration_seconds', type: 'gauge', on: 'all', help: 'How long the newest complete base backup took, from its start to its stop.' },
  backupLastSize: { name: 'archiver_backup_last_size_bytes', type: 'gauge', on: 'all', help: 'Bytes of the data directory in the newest complete base backup, before compression.' },
  recoveryWindowStart: { name: 'archiver_recovery_window_start_timestamp_seconds', type: 'gauge', on: 'all', help: 'The oldest point the database can be recovered to: when its oldest complete base backup finished; 0 when there is none.' },
  recoveryWindowEnd: { name: 'archiver_recovery_window_end_timestamp_seconds', type: 'gauge', on: 'primary', help: 'The newest point the database can be recovered to from the archive: when its last WAL file was archived (or the newest backup finished, if later).' },
  archiveCreated: { name: 'archiver_archive_created_timestamp_seconds', type: 'gauge', on: 'all', help: 'When the archive was created (archive.json); 0 when it does not exist yet.' },
  backupsTaken: { name: 'archiver_backups_taken_total', type: 'counter', on: 'all', labels: ['reason'], help: 'Base backups this sidecar took, by reason ("at-ready", "schedule").' },
  backupFailures: { name: 'archiver_backup_failures_total', type: 'counter', on: 'all', labels: ['reason'], help: 'Base backups this sidecar started and that failed, by reason ("at-ready", "schedule").' },

  // The pod's role label (contract/pod-role.ts), which the read-only Service selects on.
  roleLabelFailures: { name: 'archiver_role_label_failures_total', type: 'counter', on: 'all', help: 'Looks at which the sidecar could not read or patch its pod\'s role label (the Kubernetes API unreachable, or answering 401, 403, 5xx); while it fails, a standby may stay out of the read-only Service.' },

  // The data volume (statfs of the spool, which is on the volume of pg_wal).
  volumeSize: { name: 'archiver_data_volume_size_bytes', type: 'gauge', on: 'all', help: 'Size of the data volume (the filesystem of pg_wal and the spool).' },
  volumeAvailable: { name: 'archiver_data_volume_available_bytes', type: 'gauge', on: 'all', help: 'Bytes of the data volume available to PostgreSQL.' },
  volumeUsed: { name: 'archiver_data_volume_used_bytes', type: 'gauge', on: 'all', help: 'Bytes of the data volume in use.' },

  // The server and its replication.
  postgresUp: { name: 'archiver_postgres_up', type: 'gauge', on: 'all', help: '1 when the sidecar reached PostgreSQL over its socket at its last look, else 0.' },
  postgresInRecovery: { name: 'archiver_postgres_in_recovery', type: 'gauge', on: 'all', help: '1 when the server is in recovery (a standby), 0 when it is a primary.' },
  standbyStreaming: { name: 'archiver_standby_streaming', type: 'gauge', on: 'standby', help: 'Members other than pod 0: 1 when the server is a standby whose WAL receiver streams from the primary, else 0 (also when the server is down).' },
  streamingStandbys: { name: 'archiver_postgres_streaming_standbys', type: 'gauge', on: 'primary', help: 'Standbys streaming from this primary (pg_stat_replication).' },
  // The configuration: the sidecar reloads the server when the kubelet updates the ConfigMap in place.
  configReloads: { name: 'archiver_config_reloads_total', type: 'counter', on: 'all', labels: ['outcome'], help: 'Reloads of the server\'s configuration by the sidecar after the mounted ConfigMap changed: outcome="applied", or "failed" (the server did not answer; tried again every 5 s).' },
  // TLS (a database with `tls`): checked after each reload the mounted Secret's files took part in, the sidecar's first included.
  tlsCertificateCurrent: { name: 'archiver_tls_certificate_current', type: 'gauge', on: 'all', help: '1 when the server presents the mounted TLS Secret\'s certificate, 0 when it still presents an earlier one because it could not use the Secret\'s files (the sidecar\'s log says why), as seen after the last reload they took part in; absent without TLS.' },
  tlsCertificateExpiry: { name: 'archiver_tls_certificate_expiry_timestamp_seconds', type: 'gauge', on: 'all', help: 'When the certificate the server presents expires (its notAfter), as seen after the last reload the TLS Secret\'s files took part in; absent without TLS.' },
  pendingRestartSettings: { name: 'archiver_postgres_pending_restart_settings', type: 'gauge', on: 'all', help: 'Parameters whose value in the configuration files waits for a restart (pg_settings.pending_restart) at the sidecar\'s last reload; absent before its first.' },
  // Whether the sidecar can work at all: it stays up when it cannot (answering WAL calls with a
  // failure, so PostgreSQL keeps the WAL and retries), and says so here and in its log.
  configurationOk: { name: 'archiver_configuration_ok', type: 'gauge', on: 'all', help: '1 when the sidecar\'s configuration (ARCHIVER_*, the storage credentials) is valid and the archive is open; 0 while it is not: it then answers every WAL call with a failure and its log names the variable and the fix.' },
  storageReachable: { name: 'archiver_storage_reachable', type: 'gauge', on: 'all', help: '1 when the archive\'s storage answered the sidecar\'s last probe (a read of archive.json), 0 when it did not (endpoint down, credentials refused); absent while the configuration is not valid.' },
  buildInfo: { name: 'archiver_build_info', type: 'gauge', on: 'all', labels: ['version'], help: 'Always 1; the archiver\'s version in its label.' },
});

export type ArchiverMetricKey = keyof typeof ARCHIVER_METRICS;

/** Every metric name, and for histograms the series Prometheus stores (`_bucket`, `_sum`, `_count`). */
export function servedSeriesNames(): string[] {
  return Object.values(ARCHIVER_METRICS).flatMap((m: MetricDefinition) => (m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name]));
}
