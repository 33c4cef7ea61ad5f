/**
 * The alerts of one database, as Prometheus rule groups: each says what is wrong in its summary
 * and what to do in its description. Their expressions use only the metrics the `archiver`
 * sidecar serves (contract/metrics.ts), selected by the labels the PodMonitor gives them
 * (`namespace`, and `database` from the pods' `app.kubernetes.io/instance`). Pure: the
 * PrometheusRule (monitoring.ts) renders what this returns, and the tests run it through promtool.
 */
import { Duration } from 'cdk8s';
import { Cron } from 'croner';
import { ARCHIVER_METRICS } from '../contract';
import { show } from './validation';

/** Thresholds of the alerts; every one has a default, and `enabled: false` renders none. */
export interface ArchiveAlertProps {
  /**
   * Render the PrometheusRule.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * `ArchivedPostgresArchivingFailing`: the last archive_command failed, and none succeeded since,
   * for this long.
   * @default Duration.minutes(5)
   */
  readonly archiveFailingFor?: Duration;
  /**
   * `ArchivedPostgresArchiveBacklog`: more WAL files than this wait to be archived (16 MiB each)...
   * @default 10
   */
  readonly backlogFiles?: number;
  /**
   * ...or the oldest has waited longer than this (for 5 minutes either way). An idle database
   * switches segments only every archive_timeout, so the age of the last archive alone would
   * either fire on quiet databases or never: the backlog is what grows when archiving stalls.
   * @default Duration.minutes(10)
   */
  readonly backlogAge?: Duration;
  /**
   * `ArchivedPostgresVolumeFillingUp`: the data volume is fuller than this percentage...
   * @default 80
   */
  readonly volumeUsedPercent?: number;
  /**
   * ...and, at the rate of the last hour, fills within this time.
   * @default Duration.hours(4)
   */
  readonly volumeFullWithin?: Duration;
  /**
   * `ArchivedPostgresBackupMissing`: the archive holds no complete base backup for this long (the
   * sidecar takes the first one as soon as a new primary is ready: minutes).
   * @default Duration.hours(1)
   */
  readonly backupMissingFor?: Duration;
  /**
   * `ArchivedPostgresBackupTooOld`: the newest complete backup finished longer ago than this.
   * @default - the longest interval between two runs of `backups.schedule`, plus an hour; no
   * alert without a schedule
   */
  readonly backupMaxAge?: Duration;
  /**
   * `ArchivedPostgresRecoveryWindowShort`: the database can be recovered to fewer past points
   * than this (from the oldest backup's end to the last archived WAL), once its archive is older.
   * @default - `backups.retention.window`; no alert without one
   */
  readonly recoveryWindow?: Duration;
  /**
   * `ArchivedPostgresStandbyNotStreaming`: a standby's WAL receiver has not streamed from the
   * primary for this long (rendered with `replicas` of 2 or more).
   * @default Duration.minutes(5)
   */
  readonly standbyNotStreamingFor?: Duration;
  /**
   * `ArchivedPostgresTlsCertificateExpiring`: the certificate a member's server presents expires
   * within this time (cert-manager renews a 90-day certificate 30 days before it expires; the
   * sidecar reloads the server when the Secret changes). Rendered with `tls`.
   * @default Duration.days(7)
   */
  readonly tlsCertificateExpiresWithin?: Duration;
}

/** The thresholds, resolved, in seconds (and a count and a percentage). */
export interface AlertThresholds {
  readonly archiveFailingForSeconds: number;
  readonly backlogFiles: number;
  readonly backlogAgeSeconds: number;
  readonly volumeUsedPercent: number;
  readonly volumeFullWithinSeconds: number;
  readonly backupMissingForSeconds: number;
  readonly backupMaxAgeSeconds: number | undefined;
  readonly recoveryWindowSeconds: number | undefined;
  readonly standbyNotStreamingForSeconds: number;
  readonly tlsCertificateExpiresWithinSeconds: number;
}

/** A Prometheus alerting rule, as rule files and PrometheusRule objects hold it. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels: Record<string, string>;
  readonly annotations: { readonly summary: string; readonly description: string };
}

export interface AlertRuleGroup {
  readonly name: string;
  readonly rules: AlertRule[];
}

/** The alerts, by name. */
export const ALERTS = {
  archivingFailing: 'ArchivedPostgresArchivingFailing',
  archiveBacklog: 'ArchivedPostgresArchiveBacklog',
  volumeFillingUp: 'ArchivedPostgresVolumeFillingUp',
  archiverCannotWork: 'ArchivedPostgresArchiverCannotWork',
  roleLabelFailing: 'ArchivedPostgresRoleLabelFailing',
  backupMissing: 'ArchivedPostgresBackupMissing',
  backupTooOld: 'ArchivedPostgresBackupTooOld',
  recoveryWindowShort: 'ArchivedPostgresRecoveryWindowShort',
  standbyNotStreaming: 'ArchivedPostgresStandbyNotStreaming',
  tlsCertificateNotLoaded: 'ArchivedPostgresTlsCertificateNotLoaded',
  tlsCertificateExpiring: 'ArchivedPostgresTlsCertificateExpiring',
} as const;

/** The margin of the backup-age default over the schedule's interval (a backup takes time; a standby waits its turn). */
export const BACKUP_AGE_MARGIN = Duration.hours(1);

/**
 * The longest time between two runs of a five-field cron expression (UTC), over the next 400
 * days; undefined for an expression that does not parse (validation reports it).
 */
export function longestScheduleInterval(schedule: string, from: Date = new Date(Date.UTC(2026, 0, 1))): Duration | undefined {
  const key = `${schedule.trim().split(/\s+/).join(' ')}@${from.getTime()}`;
  if (!intervals.has(key)) intervals.set(key, computeLongestInterval(schedule, from));
  return intervals.get(key);
}

/** Schedules already walked (croner takes ~0.3 ms a run: a daily schedule's year is 0.1 s). */
const intervals = new Map<string, Duration | undefined>();

function computeLongestInterval(schedule: string, from: Date): Duration | undefined {
  let cron: Cron;
  try {
    cron = new Cron(schedule.trim().split(/\s+/).join(' '), { mode: '5-part', timezone: 'UTC', paused: true });
  } catch {
    return undefined;
  }
  try {
    // Every run of the next 400 days (a year's months and weekdays), at most 2000 of them.
    const end = from.getTime() + 400 * 86_400_000;
    let longest = 0;
    let previous = cron.nextRun(from);
    for (let runs = 0; previous !== null && previous.getTime() < end && runs < 2000; runs++) {
      const next: Date | null = cron.nextRun(previous);
      if (next === null) break;
      longest = Math.max(longest, next.getTime() - previous.getTime());
      previous = next;
    }
    return longest > 0 ? Duration.millis(longest) : undefined;
  } finally {
    cron.stop();
  }
}

/** Resolves the thresholds' defaults from the database's backups. */
export function resolveAlertThresholds(props: ArchiveAlertProps | undefined, backups: { readonly schedule?: string; readonly retentionWindow?: Duration }): AlertThresholds {
  const seconds = (d: Duration | undefined) => (d instanceof Duration ? d.toSeconds() : undefined);
  const interval = backups.schedule === undefined ? undefined : longestScheduleInterval(backups.schedule);
  return {
    archiveFailingForSeconds: seconds(props?.archiveFailingFor) ?? 5 * 60,
    backlogFiles: props?.backlogFiles ?? 10,
    backlogAgeSeconds: seconds(props?.backlogAge) ?? 10 * 60,
    volumeUsedPercent: props?.volumeUsedPercent ?? 80,
    volumeFullWithinSeconds: seconds(props?.volumeFullWithin) ?? 4 * 3600,
    backupMissingForSeconds: seconds(props?.backupMissingFor) ?? 3600,
    backupMaxAgeSeconds: seconds(props?.backupMaxAge) ?? (interval === undefined ? undefined : interval.toSeconds() + BACKUP_AGE_MARGIN.toSeconds()),
    recoveryWindowSeconds: seconds(props?.recoveryWindow) ?? seconds(backups.retentionWindow),
    standbyNotStreamingForSeconds: seconds(props?.standbyNotStreamingFor) ?? 5 * 60,
    tlsCertificateExpiresWithinSeconds: seconds(props?.tlsCertificateExpiresWithin) ?? 7 * 86_400,
  };
}

/** Every problem of the `alerts` prop, as `field.x: message`. */
export function checkAlertProps(field: string, props: ArchiveAlertProps | undefined): string[] {
  if (props === undefined) return [];
  const errors: string[] = [];
  const durations: (keyof ArchiveAlertProps)[] = ['archiveFailingFor', 'backlogAge', 'volumeFullWithin', 'backupMissingFor', 'backupMaxAge', 'recoveryWindow', 'standbyNotStreamingFor', 'tlsCertificateExpiresWithin'];
  for (const key of durations) {
    const value = props[key];
    if (value === undefined) continue;
    if (!(value instanceof Duration)) errors.push(`${field}.${key}: ${show(value)} is not a Duration: write e.g. Duration.minutes(10)`);
    else if (value.toMilliseconds() % 1000 !== 0 || value.toMilliseconds() < 60_000) {
      errors.push(`${field}.${key}: ${value.toMilliseconds()} ms is not a whole number of seconds of at least a minute (Prometheus evaluates rules every 30 s or so): write e.g. Duration.minutes(10)`);
    }
  }
  if (props.backlogFiles !== undefined && !(Number.isInteger(props.backlogFiles) && props.backlogFiles >= 1)) {
    errors.push(`${field}.backlogFiles: ${show(props.backlogFiles)} is not a whole number of at least 1: the WAL files (16 MiB each) that may wait to be archived, e.g. 10`);
  }
  if (props.volumeUsedPercent !== undefined && !(typeof props.volumeUsedPercent === 'number' && props.volumeUsedPercent > 0 && props.volumeUsedPercent < 100)) {
    errors.push(`${field}.volumeUsedPercent: ${show(props.volumeUsedPercent)} is not a percentage between 0 and 100 (exclusive): e.g. 80`);
  }
  if (props.enabled !== undefined && typeof props.enabled !== 'boolean') errors.push(`${field}.enabled: ${show(props.enabled)} is not true or false`);
  return errors;
}

/** Seconds as a Prometheus duration in the largest unit that divides them: `600` → `10m`. */
export function promDuration(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** Seconds for people: `90000` → `25 hours`, `600` → `10 minutes`. */
function human(seconds: number): string {
  const [, count, unit] = /^(\d+)([dhms])$/.exec(promDuration(seconds))!;
  const word = { d: 'day', h: 'hour', m: 'minute', s: 'second' }[unit as 'd' | 'h' | 'm' | 's'];
  return `${count} ${word}${count === '1' ? '' : 's'}`;
}

export interface AlertRulesOptions {
  readonly namespace: string;
  /** The database (its StatefulSet's name; the PodMonitor's `database` label). */
  readonly name: string;
  readonly replicas: number;
  readonly thresholds: AlertThresholds;
  /**
   * Whether the database serves TLS from a Secret (`tls`): the certificate alerts are rendered.
   * @default false
   */
  readonly tls?: boolean;
}

/** The label matchers of one database's series. */
export function databaseSelector(namespace: string, name: string): string {
  return `namespace="${namespace}",database="${name}"`;
}

/** The alerting rules of one database, in one group. */
export function archiveAlertRules(options: AlertRulesOptions): AlertRuleGroup {
  const { namespace, name, thresholds: t } = options;
  const sel = databaseSelector(namespace, name);
  const m = (key: keyof typeof ARCHIVER_METRICS) => `${ARCHIVER_METRICS[key].name}{${sel}}`;
  const byDatabase = (key: keyof typeof ARCHIVER_METRICS) => `max by (namespace, database) (${m(key)})`;
  const db = `${namespace}/${name}`;
  const exec = (pod: string) => `kubectl exec -n ${namespace} ${pod} -c archiver -- /archiver/bin/node /archiver/lib/archiver.cjs`;
  const labels = (severity: 'critical' | 'warning') => ({ severity, namespace, database: name });
  const rules: AlertRule[] = [
    {
      alert: ALERTS.archivingFailing,
      expr: `${m('lastArchiveFailure')} > ${m('lastArchived')}`,
      for: promDuration(t.archiveFailingForSeconds),
      labels: labels('critical'),
      annotations: {
        summary: `PostgreSQL ${db}: WAL archiving fails on {{ $labels.pod }}`,
        description:
          `archive_command has failed on {{ $labels.pod }} and nothing was archived since, for over ${human(t.archiveFailingForSeconds)}. ` +
          'Until it works again PostgreSQL keeps every WAL file in pg_wal: the data volume fills, then PostgreSQL stops, and what is not archived cannot be recovered. ' +
          `Why: kubectl logs -n ${namespace} {{ $labels.pod }} -c archiver (msg="push failed" names the error) and -c postgres ("archive command failed"). ` +
          `Check the storage Secret, the bucket and the endpoint; \`${exec('{{ $labels.pod }}')} check --storage\` tells whether the archive answers. ` +
          'The backlog and the volume are on the database\'s dashboard.',
      },
    },
    {
      alert: ALERTS.archiveBacklog,
      expr: `${m('walReadyFiles')} > ${t.backlogFiles} or ${m('walOldestReadyAge')} > ${t.backlogAgeSeconds}`,
      for: '5m',
      labels: labels('warning'),
      annotations: {
        summary: `PostgreSQL ${db}: WAL waits to be archived on {{ $labels.pod }}`,
        description:
          `More than ${t.backlogFiles} WAL files wait to be archived, or the oldest has waited over ${human(t.backlogAgeSeconds)}, on {{ $labels.pod }} (value: {{ $value }}). ` +
          'Archiving is behind or stalled: the WAL not yet archived is lost if the volume is. ' +
          `Look at the archive lag and the failures on the dashboard, at kubectl logs -n ${namespace} {{ $labels.pod }} -c archiver (msg="push failed", or pushes slower than the WAL is written), ` +
          'and at the storage\'s latency and the sidecar\'s CPU limit (archiver.resources); a burst of writes drains by itself.',
      },
    },
    {
      alert: ALERTS.volumeFillingUp,
      expr:
        `(1 - ${m('volumeAvailable')} / ${m('volumeSize')}) * 100 > ${t.volumeUsedPercent}` +
        ` and predict_linear(${m('volumeAvailable')}[1h], ${t.volumeFullWithinSeconds}) < 0`,
      for: '10m',
      labels: labels('critical'),
      annotations: {
        summary: `PostgreSQL ${db}: the data volume of {{ $labels.pod }} fills within ${human(t.volumeFullWithinSeconds)}`,
        description:
          `The data volume of {{ $labels.pod }} is over ${t.volumeUsedPercent}% full and, at the rate of the last hour, full within ${human(t.volumeFullWithinSeconds)}; a full volume stops PostgreSQL. ` +
          'WAL that cannot be archived piles up in pg_wal: if the archive alerts fire too, fix archiving first. ' +
          'Otherwise the data grows: give the database a larger volume (storage.size, and expand the volume claims: the StatefulSet keeps its claim template), or delete data.',
      },
    },
    {
      // The sidecar no longer crash-loops on a configuration it cannot use (that would take pod 0
      // out of the read-write Service): it stays up, fails every WAL call, and says so here.
      alert: ALERTS.archiverCannotWork,
      expr: `${m('configurationOk')} == 0`,
      for: '5m',
      labels: labels('critical'),
      annotations: {
        summary: `PostgreSQL ${db}: the archiver sidecar of {{ $labels.pod }} cannot work with its configuration`,
        description:
          `The archiver sidecar of {{ $labels.pod }} has had a configuration it cannot use, or an archive it cannot open, for over 5 minutes: every archive_command and restore_command call fails, PostgreSQL keeps the WAL in pg_wal, and the volume fills. ` +
          `Its log names the variable and the fix: kubectl logs -n ${namespace} {{ $labels.pod }} -c archiver (level=error, variable=, fix=). ` +
          'Fix the storage Secret or the settings in Git; a fixed Secret reaches the sidecar when its container starts again.',
      },
    },
    {
      alert: ALERTS.roleLabelFailing,
      expr: `increase(${m('roleLabelFailures')}[15m]) > 0`,
      for: '15m',
      labels: labels('warning'),
      annotations: {
        summary: `PostgreSQL ${db}: {{ $labels.pod }} cannot label itself with its role`,
        description:
          `The archiver sidecar of {{ $labels.pod }} has failed for over 15 minutes to read or patch the pod's role label through the Kubernetes API: a standby stays out of ${name}-standby (reads lose it), and a relabelled primary may still receive reads. ` +
          `Why: kubectl logs -n ${namespace} {{ $labels.pod }} -c archiver (msg="cannot label the pod with its role"): 403 means Role/${name} does not name the pod (a member beyond replicas), 401 a refused token; the WAL work does not depend on it.`,
      },
    },
    {
      alert: ALERTS.backupMissing,
      expr: `${byDatabase('backups')} == 0`,
      for: promDuration(t.backupMissingForSeconds),
      labels: labels('critical'),
      annotations: {
        summary: `PostgreSQL ${db}: its archive holds no base backup`,
        description:
          `The archive of ${db} has held no complete base backup for over ${human(t.backupMissingForSeconds)}: nothing can be restored from it, and pod 0 would refuse to start on an empty volume. ` +
          `The sidecar of the member that takes backups says why: kubectl logs -n ${namespace} ${name}-0 -c archiver (msg="scheduled backup failed"). ` +
          `Take one by hand: ${exec(`${name}-0`)} backup-push.`,
      },
    },
  ];
  if (t.backupMaxAgeSeconds !== undefined) {
    rules.push({
      alert: ALERTS.backupTooOld,
      expr: `time() - ${byDatabase('backupLastCompletion')} > ${t.backupMaxAgeSeconds} and ${byDatabase('backups')} > 0`,
      for: '5m',
      labels: labels('warning'),
      annotations: {
        summary: `PostgreSQL ${db}: no base backup for over ${human(t.backupMaxAgeSeconds)}`,
        description:
          `The newest complete base backup of ${db} finished over ${human(t.backupMaxAgeSeconds)} ago: the schedule has been missed. A restore replays all WAL since that backup (slower), and retention keeps old WAL. ` +
          `Why: kubectl logs -n ${namespace} <member> -c archiver of the member that takes backups (msg="scheduled backup failed" or "scheduled backup skipped"). ` +
          `Take one by hand: ${exec(`${name}-0`)} backup-push; list them with backup-list.`,
      },
    });
  }
  if (t.recoveryWindowSeconds !== undefined) {
    rules.push({
      alert: ALERTS.recoveryWindowShort,
      expr:
        `${byDatabase('recoveryWindowEnd')} - ${byDatabase('recoveryWindowStart')} < ${t.recoveryWindowSeconds}` +
        ` and time() - ${byDatabase('archiveCreated')} > ${t.recoveryWindowSeconds + 3600}`,
      for: '15m',
      labels: labels('warning'),
      annotations: {
        summary: `PostgreSQL ${db}: recoverable for less than ${human(t.recoveryWindowSeconds)} back`,
        description:
          `${db} can be recovered only to points within {{ $value | humanizeDuration }}, from its oldest backup's end to its last archived WAL, while retention promises ${human(t.recoveryWindowSeconds)}. ` +
          'Backups were deleted by hand, failed for long, or archiving stopped. ' +
          `See \`${exec(`${name}-0`)} backup-list\` and \`wal-verify\` (a gap in the WAL shortens the window too), and the dashboard's recovery window.`,
      },
    });
  }
  if (options.replicas > 1) {
    rules.push({
      alert: ALERTS.standbyNotStreaming,
      expr: `${m('standbyStreaming')} == 0`,
      for: promDuration(t.standbyNotStreamingForSeconds),
      labels: labels('warning'),
      annotations: {
        summary: `PostgreSQL ${db}: standby {{ $labels.pod }} does not stream from the primary`,
        description:
          `The WAL receiver of {{ $labels.pod }} has not streamed from ${name}-0 for over ${human(t.standbyNotStreamingForSeconds)} (or its server is down): it falls behind, and reads from ${name}-standby see old data. ` +
          `Its probes restart a standby that cannot follow pod 0, and its start script rewinds or copies it again: kubectl describe pod -n ${namespace} {{ $labels.pod }} and kubectl logs -n ${namespace} {{ $labels.pod }} -c postgres say what happened.`,
      },
    });
  }
  if (options.tls) {
    rules.push(
      {
        alert: ALERTS.tlsCertificateNotLoaded,
        expr: `${m('tlsCertificateCurrent')} == 0`,
        for: '5m',
        labels: labels('warning'),
        annotations: {
          summary: `PostgreSQL ${db}: {{ $labels.pod }} serves an earlier TLS certificate than its Secret's`,
          description:
            `The server of {{ $labels.pod }} could not use the TLS Secret's new certificate and key at its last reload, and serves its earlier certificate until they can be used; when that one expires, clients refuse the database. ` +
            `Why: kubectl logs -n ${namespace} {{ $labels.pod }} -c archiver (msg="configuration reloaded, but the server still presents its previous TLS certificate", why=) and -c postgres. ` +
            'Usually the key is not the certificate\'s: fix the Secret (cert-manager: kubectl describe certificate); the sidecar reloads the server when it changes.',
        },
      },
      {
        alert: ALERTS.tlsCertificateExpiring,
        expr: `${m('tlsCertificateExpiry')} - time() < ${t.tlsCertificateExpiresWithinSeconds}`,
        for: '15m',
        labels: labels('warning'),
        annotations: {
          summary: `PostgreSQL ${db}: the TLS certificate of {{ $labels.pod }} expires within ${human(t.tlsCertificateExpiresWithinSeconds)}`,
          description:
            `The certificate the server of {{ $labels.pod }} presents expires in {{ $value | humanizeDuration }}; then every client that verifies it, the standbys included, refuses the database. ` +
            'It was not renewed in time: see the Certificate (kubectl describe certificate, when cert-manager issues it) and the TLS Secret. ' +
            `A renewed Secret is loaded without a restart (the sidecar reloads the server); if it was renewed and this still fires, see ${ALERTS.tlsCertificateNotLoaded}.`,
        },
      },
    );
  }
  return { name: `archived-postgres.${namespace}.${name}`, rules };
}
