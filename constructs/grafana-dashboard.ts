/**
 * The Grafana dashboard of one database: how far its archive is behind (lag in bytes and time,
 * the WAL waiting, failures), its base backups and recovery window, its data volume and its
 * standbys, over time; with TLS, the certificate the members present. Pure: monitoring.ts puts the JSON in a ConfigMap labelled for Grafana's
 * dashboard sidecar. Its expressions use only the metrics the `archiver` sidecar serves
 * (contract/metrics.ts); a test compares them.
 */
import { createHash } from 'node:crypto';
import { ARCHIVER_METRICS } from '../contract';
import { databaseSelector } from './alert-rules';

export interface DashboardOptions {
  readonly namespace: string;
  readonly name: string;
  /**
   * The server presents a TLS certificate (ArchivedPostgres `tls`): a row shows whether every
   * member serves the Secret's certificate, and when it expires.
   * @default false
   */
  readonly tls?: boolean;
}

type Unit = 'bytes' | 's' | 'short' | 'percent' | 'dateTimeFromNow' | 'ops' | 'dtdurations';

interface Target {
  readonly expr: string;
  readonly legend: string;
}

/** A Grafana dashboard's uid for a database: at most 40 characters, stable. */
export function dashboardUid(namespace: string, name: string): string {
  return `archived-pg-${createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 20)}`;
}

/** The dashboard's JSON model (Grafana 10 and later). */
export function archiveDashboard(options: DashboardOptions): Record<string, unknown> {
  const sel = databaseSelector(options.namespace, options.name);
  const m = (key: keyof typeof ARCHIVER_METRICS, suffix = '') => `${ARCHIVER_METRICS[key].name}${suffix}{${sel}}`;
  const datasource = { type: 'prometheus', uid: '${datasource}' };
  const panels: Record<string, unknown>[] = [];
  let id = 0;
  let y = 0;
  const row = (title: string) => {
    panels.push({ type: 'row', title, id: ++id, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
  };
  const targets = (list: readonly Target[]) => list.map((t, i) => ({ refId: String.fromCharCode(65 + i), expr: t.expr, legendFormat: t.legend, datasource }));
  const stats = (list: { title: string; description: string; unit: Unit; target: Target; thresholds?: number[] }[]) => {
    const w = 24 / list.length;
    list.forEach((s, i) =>
      panels.push({
        type: 'stat',
        id: ++id,
        title: s.title,
        description: s.description,
        datasource,
        gridPos: { h: 4, w, x: i * w, y },
        targets: targets([s.target]),
        options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', textMode: 'auto' },
        fieldConfig: {
          defaults: {
            unit: s.unit,
            thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, ...(s.thresholds ?? []).map((value, k) => ({ color: k === 0 ? 'orange' : 'red', value }))] },
          },
          overrides: [],
        },
      }),
    );
    y += 4;
  };
  const graphs = (list: { title: string; description: string; unit: Unit; targets: Target[] }[]) => {
    const w = 24 / list.length;
    list.forEach((g, i) =>
      panels.push({
        type: 'timeseries',
        id: ++id,
        title: g.title,
        description: g.description,
        datasource,
        gridPos: { h: 8, w, x: i * w, y },
        targets: targets(g.targets),
        options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'none' } },
        fieldConfig: { defaults: { unit: g.unit, min: 0, custom: { lineWidth: 1, fillOpacity: 10 } }, overrides: [] },
      }),
    );
    y += 8;
  };

  row('Now');
  stats([
    { title: 'Archive lag', description: 'WAL written and not yet archived (the primary).', unit: 'bytes', target: { expr: `max(${m('archiveLagBytes')})`, legend: 'lag' }, thresholds: [64 * 1024 * 1024, 256 * 1024 * 1024] },
    { title: 'Archive lag (time)', description: 'How long ago the oldest WAL not yet archived was written.', unit: 's', target: { expr: `max(${m('archiveLagSeconds')})`, legend: 'lag' }, thresholds: [300, 900] },
    { title: 'Last archived', description: 'When PostgreSQL last archived a WAL file.', unit: 'dateTimeFromNow', target: { expr: `max(${m('lastArchived')}) * 1000`, legend: 'last archived' } },
    { title: 'Last base backup', description: 'When the newest complete base backup finished.', unit: 'dateTimeFromNow', target: { expr: `max(${m('backupLastCompletion')}) * 1000`, legend: 'last backup' } },
    { title: 'Recovery window', description: 'How far back the database can be recovered: from its oldest backup\'s end to its last archived WAL.', unit: 'dtdurations', target: { expr: `max(${m('recoveryWindowEnd')}) - max(${m('recoveryWindowStart')})`, legend: 'window' } },
    { title: 'Data volume used', description: 'The fullest member\'s data volume.', unit: 'percent', target: { expr: `max((1 - ${m('volumeAvailable')} / ${m('volumeSize')}) * 100)`, legend: 'used' }, thresholds: [80, 90] },
  ]);

  row('Archiving');
  graphs([
    { title: 'Archive lag (bytes)', description: 'pg_current_wal_insert_lsn() minus the end of the archived WAL. Up to a segment (16 MiB) between switches is normal.', unit: 'bytes', targets: [{ expr: m('archiveLagBytes'), legend: '{{pod}}' }] },
    { title: 'Archive lag (time)', description: 'How long ago the oldest WAL not yet archived was written: up to archive_timeout is normal.', unit: 's', targets: [{ expr: m('archiveLagSeconds'), legend: '{{pod}}' }] },
  ]);
  graphs([
    { title: 'WAL waiting to be archived', description: 'Files PostgreSQL marked ready and not yet archived: grows while archiving fails.', unit: 'short', targets: [{ expr: m('walReadyFiles'), legend: '{{pod}} files' }] },
    { title: 'WAL waiting (bytes)', description: 'Bytes of the files waiting to be archived.', unit: 'bytes', targets: [{ expr: m('walReadyBytes'), legend: '{{pod}} bytes' }] },
    { title: 'Oldest waiting file', description: 'How long the next WAL file to archive has waited.', unit: 's', targets: [{ expr: m('walOldestReadyAge'), legend: '{{pod}}' }] },
  ]);
  graphs([
    { title: 'Archived and failed per second', description: 'archive_command results (pg_stat_archiver) and the sidecar\'s failed pushes by reason.', unit: 'ops', targets: [
      { expr: `rate(${m('postgresArchivedFiles')}[5m])`, legend: '{{pod}} archived' },
      { expr: `rate(${m('postgresArchiveFailures')}[5m])`, legend: '{{pod}} archive_command failed' },
      { expr: `sum by (pod, reason) (rate(${m('walPushFailures')}[5m]))`, legend: '{{pod}} push failed: {{reason}}' },
    ] },
    { title: 'Push latency', description: 'One WAL file compressed, uploaded and confirmed; calls the sidecar answered.', unit: 's', targets: [
      { expr: `histogram_quantile(0.5, sum by (le) (rate(${m('walPushDuration', '_bucket')}[5m])))`, legend: 'push p50' },
      { expr: `histogram_quantile(0.99, sum by (le) (rate(${m('walPushDuration', '_bucket')}[5m])))`, legend: 'push p99' },
      { expr: `histogram_quantile(0.99, sum by (le, operation) (rate(${m('walCallDuration', '_bucket')}[5m])))`, legend: '{{operation}} call p99' },
    ] },
    { title: 'Pushed ahead', description: 'Files pushed before PostgreSQL asked, and calls answered at once because of it.', unit: 'ops', targets: [
      { expr: `sum by (ahead) (rate(${m('walPushedFiles')}[5m]))`, legend: 'pushed, ahead={{ahead}}' },
      { expr: `sum(rate(${m('walPushAheadHits')}[5m]))`, legend: 'calls answered from the spool' },
    ] },
  ]);

  row('Base backups and recovery');
  graphs([
    { title: 'Time since the last base backup', description: 'Resets at each complete backup.', unit: 's', targets: [{ expr: `time() - max(${m('backupLastCompletion')}) > 0`, legend: 'since last backup' }] },
    { title: 'Recovery window', description: 'From the oldest backup\'s end to the last archived WAL: how far back a recovery can go.', unit: 's', targets: [{ expr: `max(${m('recoveryWindowEnd')}) - max(${m('recoveryWindowStart')})`, legend: 'window' }] },
    { title: 'Backups', description: 'Complete backups in the archive; backups taken and failed by this database\'s sidecars.', unit: 'short', targets: [
      { expr: `max(${m('backups')})`, legend: 'in the archive' },
      { expr: `sum by (reason) (increase(${m('backupsTaken')}[1h]))`, legend: 'taken ({{reason}}) per hour' },
      { expr: `sum by (reason) (increase(${m('backupFailures')}[1h]))`, legend: 'failed ({{reason}}) per hour' },
    ] },
  ]);
  graphs([
    { title: 'Last backup: size', description: 'The data directory in the newest backup, before compression.', unit: 'bytes', targets: [{ expr: `max(${m('backupLastSize')})`, legend: 'size' }] },
    { title: 'Last backup: duration', description: 'From its start to its stop.', unit: 's', targets: [{ expr: `max(${m('backupLastDuration')})`, legend: 'duration' }] },
    { title: 'Restore: WAL fetched', description: 'restore_command: from the spool (prefetch hits), from the archive when asked (misses), not in the archive.', unit: 'ops', targets: [
      { expr: `sum by (pod, source) (rate(${m('walFetchedFiles')}[5m]))`, legend: '{{pod}} {{source}}' },
      { expr: `sum by (pod) (rate(${m('walFetchNotFound')}[5m]))`, legend: '{{pod}} not found' },
      { expr: `sum by (pod) (rate(${m('walPrefetchedFiles')}[5m]))`, legend: '{{pod}} prefetched' },
    ] },
  ]);

  row('Volume and members');
  graphs([
    { title: 'Data volume', description: 'Used and available bytes of each member\'s data volume.', unit: 'bytes', targets: [
      { expr: m('volumeUsed'), legend: '{{pod}} used' },
      { expr: m('volumeAvailable'), legend: '{{pod}} available' },
    ] },
    { title: 'WAL written per second', description: 'The primary\'s WAL rate: what fills the volume while archiving is stalled.', unit: 'bytes', targets: [{ expr: `rate(${m('walInsertPosition')}[5m])`, legend: '{{pod}}' }] },
    { title: 'Members', description: 'Sidecars that reach their server, standbys streaming (seen from the primary and from each standby).', unit: 'short', targets: [
      { expr: `sum(${m('postgresUp')})`, legend: 'servers up' },
      { expr: `max(${m('streamingStandbys')})`, legend: 'standbys streaming (primary)' },
      { expr: m('standbyStreaming'), legend: '{{pod}} streaming' },
    ] },
  ]);

  if (options.tls) {
    row('TLS');
    stats([
      { title: 'Members presenting an earlier certificate', description: 'Members whose server still presents a certificate other than the TLS Secret\'s, because it could not use the Secret\'s files (the archiver sidecar\'s log says why). 0 is right.', unit: 'short', target: { expr: `count(${m('tlsCertificateCurrent')} == 0) or vector(0)`, legend: 'members' }, thresholds: [0.5, 1] },
      { title: 'Certificate expires', description: 'The earliest expiry (notAfter) of the certificates the members present.', unit: 'dateTimeFromNow', target: { expr: `min(${m('tlsCertificateExpiry')}) * 1000`, legend: 'expires' } },
    ]);
  }

  return {
    uid: dashboardUid(options.namespace, options.name),
    title: `PostgreSQL archive: ${options.namespace}/${options.name}`,
    description: `WAL archive lag, backups and recoverability of ${options.namespace}/${options.name} (ArchivedPostgres)`,
    tags: ['postgresql', 'wal-archive'],
    timezone: 'utc',
    editable: false,
    schemaVersion: 39,
    version: 1,
    refresh: '1m',
    time: { from: 'now-24h', to: 'now' },
    templating: { list: [{ name: 'datasource', label: 'Prometheus', type: 'datasource', query: 'prometheus', current: {}, hide: 0 }] },
    annotations: { list: [] },
    panels,
  };
}

/**
 * The dashboard as the ConfigMap holds it: JSON, one panel a line, so that a change to the
 * dashboard reads as a change to its panels in a review of dist/.
 */
export function formatDashboard(dashboard: Record<string, unknown>): string {
  const { panels, ...rest } = dashboard as { panels: unknown[] };
  const head = JSON.stringify(rest, null, 2);
  return `${head.slice(0, -2)},\n  "panels": [\n${panels.map((panel) => `    ${JSON.stringify(panel)}`).join(',\n')}\n  ]\n}\n`;
}
