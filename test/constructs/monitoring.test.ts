/**
 * The monitoring of a database (constructs/monitoring.ts, alert-rules.ts, grafana-dashboard.ts):
 * the PodMonitor that scrapes the sidecars' metrics port, the PrometheusRule's alerts and their
 * thresholds, the Grafana dashboard, and that every expression names only metrics the sidecar
 * serves (contract/metrics.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ARCHIVER_METRICS, METRICS_PATH, METRICS_PORT, METRICS_PORT_NAME, PGDATA_ENV, servedSeriesNames } from '../../contract';
import { k8s } from 'cdk8s-plus-27';
import { ALERTS, GRAFANA_DASHBOARD_LABEL, PGDATA, dashboardUid, longestScheduleInterval, promDuration } from '../../constructs';
import { ROOT } from '../../testkit/archiver';
import { container, databaseChart, envOf, find, KubeObject, seedProps, synthDatabase } from './fixtures';

/** Every metric name an expression uses (`archiver_...`), histogram series included. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\barchiver_[a-z0-9_]+/g)].map((match) => match[0]);
}

function rulesOf(objects: KubeObject[]): any[] {
  return find(objects, 'PrometheusRule', 'wal-postgres').spec.groups.flatMap((g: any) => g.rules);
}

function dashboardOf(objects: KubeObject[]): any {
  const configMap = find(objects, 'ConfigMap', 'wal-postgres-dashboard');
  return JSON.parse(configMap.data!['demo-wal-postgres.json']);
}

const exprsOfDashboard = (dashboard: any): string[] => dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));

describe('the sidecar serves metrics on a named port', () => {
  it('renders the port, the port variable and PGDATA on the archiver sidecar only', () => {
    const statefulSet = find(synthDatabase(seedProps()).objects, 'StatefulSet', 'wal-postgres');
    const sidecar = container(statefulSet, 'archiver');
    expect(sidecar.ports).toStrictEqual([{ name: METRICS_PORT_NAME, containerPort: METRICS_PORT, protocol: 'TCP' }]);
    expect(envOf(sidecar)[ARCHIVER_ENV.metricsPort]).toBe(String(METRICS_PORT));
    expect(envOf(sidecar)[PGDATA_ENV]).toBe(PGDATA);
    expect(envOf(container(statefulSet, 'postgres'))[ARCHIVER_ENV.metricsPort]).toBeUndefined();
  });
});

describe('DatabaseMonitoring', () => {
  it('renders a PodMonitor, a PrometheusRule and a dashboard ConfigMap after the database\'s objects, with pinned construct ids', () => {
    const { objects, db } = synthDatabase(seedProps());
    expect(objects.slice(-3).map((o) => `${o.kind}/${o.metadata.name}`)).toStrictEqual(['PodMonitor/wal-postgres', 'PrometheusRule/wal-postgres', 'ConfigMap/wal-postgres-dashboard']);
    expect(db.monitoring.node.path).toBe('test/wal-postgres/Monitoring');
    expect(db.monitoring.apiObjects.map((o) => o.node.id)).toStrictEqual(['PodMonitor', 'Rules', 'Dashboard']);
  });

  it('the PodMonitor scrapes the metrics port of the database\'s pods, labelling each series with its database', () => {
    const { objects, db } = synthDatabase(seedProps());
    expect(find(objects, 'PodMonitor', 'wal-postgres')).toStrictEqual({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PodMonitor',
      metadata: { name: 'wal-postgres', namespace: 'demo', labels: { ...db.labels } },
      spec: {
        selector: { matchLabels: { ...db.selectorLabels } },
        namespaceSelector: { matchNames: ['demo'] },
        podMetricsEndpoints: [
          {
            port: METRICS_PORT_NAME,
            path: METRICS_PATH,
            interval: '30s',
            relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'], targetLabel: 'database' }],
          },
        ],
      },
    });
  });

  it('matches the snapshot (a database with a schedule, a retention window and two members)', () => {
    const { objects } = synthDatabase(seedProps({ backups: { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(14) } } }));
    expect(objects.filter((o) => ['PodMonitor', 'PrometheusRule'].includes(o.kind) || o.metadata.name === 'wal-postgres-dashboard')).toMatchSnapshot();
  });

  it('adds labels for the Prometheus object\'s selectors and sets the scrape interval', () => {
    const { objects } = synthDatabase(seedProps({ monitoring: { labels: { release: 'kube-prometheus-stack' }, scrapeInterval: Duration.seconds(15) } }));
    for (const [kind, name] of [['PodMonitor', 'wal-postgres'], ['PrometheusRule', 'wal-postgres'], ['ConfigMap', 'wal-postgres-dashboard']]) {
      expect(find(objects, kind, name).metadata.labels!.release).toBe('kube-prometheus-stack');
    }
    expect(find(objects, 'ConfigMap', 'wal-postgres-dashboard').metadata.labels![GRAFANA_DASHBOARD_LABEL]).toBe('1');
    expect(find(objects, 'PodMonitor', 'wal-postgres').spec.podMetricsEndpoints[0].interval).toBe('15s');
  });

  it('renders nothing with enabled: false, no rules with alerts.enabled: false, no dashboard with dashboard: false', () => {
    const kinds = (objects: KubeObject[]) => objects.filter((o) => ['PodMonitor', 'PrometheusRule'].includes(o.kind) || o.metadata.name.endsWith('-dashboard')).map((o) => o.kind);
    expect(kinds(synthDatabase(seedProps({ monitoring: { enabled: false } })).objects)).toStrictEqual([]);
    expect(kinds(synthDatabase(seedProps({ monitoring: { alerts: { enabled: false } } })).objects)).toStrictEqual(['PodMonitor', 'ConfigMap']);
    expect(kinds(synthDatabase(seedProps({ monitoring: { dashboard: false } })).objects)).toStrictEqual(['PodMonitor', 'PrometheusRule']);
    // The sidecar serves its metrics all the same.
    const statefulSet = find(synthDatabase(seedProps({ monitoring: { enabled: false } })).objects, 'StatefulSet', 'wal-postgres');
    expect(container(statefulSet, 'archiver').ports[0].name).toBe(METRICS_PORT_NAME);
  });
});

describe('the alerts', () => {
  it('each has a summary and a description that says what to do, a severity, and names only metrics the sidecar serves', () => {
    const rules = rulesOf(synthDatabase(seedProps({ tls: { secretName: 'wal-postgres-tls' }, backups: { schedule: '0 2 * * *', retention: { window: Duration.days(14) } } })).objects);
    expect(rules.map((r) => r.alert)).toStrictEqual(Object.values(ALERTS));
    const served = new Set(servedSeriesNames());
    for (const rule of rules) {
      expect(rule.annotations.summary).toMatch(/^PostgreSQL demo\/wal-postgres: /);
      expect(rule.annotations.description.length).toBeGreaterThan(150);
      expect(rule.annotations.description).toMatch(/kubectl|dashboard|storage\.size/);
      expect(['critical', 'warning']).toContain(rule.labels.severity);
      const names = metricNames(rule.expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) expect(served, `${rule.alert}: ${name}`).toContain(name);
      expect(rule.expr).toContain('namespace="demo",database="wal-postgres"');
    }
  });

  it('defaults: 10 files or 10 minutes of backlog, 80% and 4 hours of volume, the schedule\'s interval plus an hour, the retention window', () => {
    const rules = rulesOf(synthDatabase(seedProps({ backups: { schedule: '0 2 * * 1', retention: { window: Duration.days(30) } } })).objects);
    const rule = (alert: string) => rules.find((r) => r.alert === alert);
    expect(rule(ALERTS.archiveBacklog).expr).toMatch(/archiver_wal_ready_files\{[^}]*\} > 10 or archiver_wal_oldest_ready_age_seconds\{[^}]*\} > 600$/);
    expect(rule(ALERTS.volumeFillingUp).expr).toContain('* 100 > 80 and predict_linear(archiver_data_volume_available_bytes{namespace="demo",database="wal-postgres"}[1h], 14400) < 0');
    // Weekly on Mondays: 7 days, plus an hour.
    expect(rule(ALERTS.backupTooOld).expr).toContain(`> ${7 * 86_400 + 3600} and`);
    expect(rule(ALERTS.recoveryWindowShort).expr).toContain(`< ${30 * 86_400} and`);
    expect(rule(ALERTS.archivingFailing).for).toBe('5m');
    expect(rule(ALERTS.backupMissing).for).toBe('1h');
    expect(rule(ALERTS.standbyNotStreaming).for).toBe('5m');
  });

  it('takes thresholds from the props', () => {
    const rules = rulesOf(synthDatabase(seedProps({
      monitoring: {
        alerts: {
          backlogFiles: 64,
          backlogAge: Duration.minutes(30),
          volumeUsedPercent: 90,
          volumeFullWithin: Duration.hours(12),
          archiveFailingFor: Duration.minutes(15),
          backupMaxAge: Duration.hours(36),
          recoveryWindow: Duration.days(7),
          backupMissingFor: Duration.hours(2),
          standbyNotStreamingFor: Duration.minutes(20),
        },
      },
    })).objects);
    const rule = (alert: string) => rules.find((r) => r.alert === alert);
    expect(rule(ALERTS.archiveBacklog).expr).toMatch(/> 64 or .* > 1800$/);
    expect(rule(ALERTS.volumeFillingUp).expr).toMatch(/> 90 and predict_linear\(.*\[1h\], 43200\) < 0$/);
    expect(rule(ALERTS.archivingFailing).for).toBe('15m');
    expect(rule(ALERTS.backupTooOld).expr).toContain('> 129600 and');
    expect(rule(ALERTS.recoveryWindowShort).expr).toContain(`< ${7 * 86_400} and`);
    expect(rule(ALERTS.backupMissing).for).toBe('2h');
    expect(rule(ALERTS.standbyNotStreaming).for).toBe('20m');
  });

  it('leaves out the backup-age alert without a schedule, the recovery-window alert without a window, the standby alert with one member, and the certificate alerts without tls', () => {
    const rules = rulesOf(synthDatabase(seedProps({ replicas: 1 })).objects);
    expect(rules.map((r) => r.alert)).toStrictEqual([ALERTS.archivingFailing, ALERTS.archiveBacklog, ALERTS.volumeFillingUp, ALERTS.archiverCannotWork, ALERTS.roleLabelFailing, ALERTS.backupMissing]);
  });

  it('the certificate alerts: the served certificate kept after a reload, and its expiry within tlsCertificateExpiresWithin (7 days by default)', () => {
    const rules = (alerts?: { tlsCertificateExpiresWithin: Duration }) => rulesOf(synthDatabase(seedProps({ tls: { secretName: 'wal-postgres-tls' }, monitoring: { alerts } })).objects);
    const rule = (list: ReturnType<typeof rules>, alert: string) => list.find((r) => r.alert === alert)!;
    expect(rule(rules(), ALERTS.tlsCertificateNotLoaded).expr).toBe('archiver_tls_certificate_current{namespace="demo",database="wal-postgres"} == 0');
    expect(rule(rules(), ALERTS.tlsCertificateExpiring).expr).toBe(`archiver_tls_certificate_expiry_timestamp_seconds{namespace="demo",database="wal-postgres"} - time() < ${7 * 86_400}`);
    expect(rule(rules({ tlsCertificateExpiresWithin: Duration.days(20) }), ALERTS.tlsCertificateExpiring).expr).toMatch(/ < 1728000$/);
  });

  it('fails for thresholds that cannot work, naming each', () => {
    const { app } = databaseChart(seedProps({
      monitoring: {
        alerts: { backlogFiles: 0, volumeUsedPercent: 100, backlogAge: Duration.seconds(10), recoveryWindow: 'two weeks' as unknown as Duration },
        scrapeInterval: Duration.seconds(1),
        labels: { 'bad key!': 'x' },
      },
    }));
    expect(() => app.synth()).toThrow(
      /monitoring\.scrapeInterval: "1000 ms" is not whole seconds from 5 s to 5 min[\s\S]*monitoring\.labels: "bad key!": "x" is not a Kubernetes label[\s\S]*monitoring\.alerts\.backlogAge: 10000 ms is not a whole number of seconds of at least a minute[\s\S]*monitoring\.alerts\.recoveryWindow: "two weeks" is not a Duration[\s\S]*monitoring\.alerts\.backlogFiles: 0 is not a whole number of at least 1[\s\S]*monitoring\.alerts\.volumeUsedPercent: 100 is not a percentage between 0 and 100/,
    );
  });

  it('the longest interval of a schedule, and Prometheus durations', () => {
    expect(longestScheduleInterval('0 2 * * *')!.toHours()).toBe(24);
    expect(longestScheduleInterval('0 */6 * * *')!.toHours()).toBe(6);
    expect(longestScheduleInterval('0 2 * * 1,4')!.toHours()).toBe(4 * 24);
    expect(longestScheduleInterval('0 3 1 * *')!.toDays()).toBe(31);
    expect(longestScheduleInterval('61 2 * * *')).toBeUndefined();
    expect([60, 300, 3600, 5400, 86_400, 90].map(promDuration)).toStrictEqual(['1m', '5m', '1h', '90m', '1d', '90s']);
  });
});

describe('the Grafana dashboard', () => {
  it('is JSON in a ConfigMap labelled for Grafana\'s dashboard sidecar, one per database, with a stable uid', () => {
    const { objects } = synthDatabase(seedProps());
    const configMap = find(objects, 'ConfigMap', 'wal-postgres-dashboard');
    expect(configMap.metadata.labels![GRAFANA_DASHBOARD_LABEL]).toBe('1');
    const dashboard = dashboardOf(objects);
    expect(dashboard.title).toBe('PostgreSQL archive: demo/wal-postgres');
    expect(dashboard.uid).toMatch(/^archived-pg-[0-9a-f]{20}$/);
    expect(dashboard.uid.length).toBeLessThanOrEqual(40);
    expect(dashboardOf(synthDatabase(seedProps()).objects).uid).toBe(dashboard.uid);
    expect(dashboardUid('demo', 'orders')).not.toBe(dashboard.uid);
  });

  it('shows archive lag, backlog, backups and the recovery window over time, with expressions that name only metrics the sidecar serves', () => {
    const dashboard = dashboardOf(synthDatabase(seedProps()).objects);
    const titles = dashboard.panels.map((p: any) => p.title);
    for (const title of ['Archive lag (bytes)', 'Archive lag (time)', 'WAL waiting to be archived', 'Recovery window', 'Time since the last base backup', 'Data volume']) expect(titles).toContain(title);
    const served = new Set(servedSeriesNames());
    const used = new Set(exprsOfDashboard(dashboard).flatMap(metricNames));
    for (const name of used) expect(served, name).toContain(name);
    // Every gauge the sidecar serves is on it, but those only the alerts (or nobody) need.
    // (The certificate's gauges only with tls: the next spec.)
    const notShown = new Set(['buildInfo', 'archiveCreated', 'walArchivedPosition', 'postgresInRecovery', 'lastArchiveFailure', 'pendingRestartSettings', 'configurationOk', 'storageReachable', 'tlsCertificateCurrent', 'tlsCertificateExpiry']);
    for (const [key, metric] of Object.entries(ARCHIVER_METRICS)) {
      if (metric.type === 'gauge' && !notShown.has(key)) expect(used, metric.name).toContain(metric.name);
    }
    for (const expr of exprsOfDashboard(dashboard)) expect(expr).toContain('namespace="demo",database="wal-postgres"');
    // Panels do not overlap: each row of the 24-column grid is filled once.
    const cells = new Set<string>();
    for (const panel of dashboard.panels) {
      for (let x = panel.gridPos.x; x < panel.gridPos.x + panel.gridPos.w; x++) {
        const cell = `${x},${panel.gridPos.y}`;
        expect(cells.has(cell), `${panel.title} overlaps at ${cell}`).toBe(false);
        cells.add(cell);
      }
      expect(panel.gridPos.x + panel.gridPos.w).toBeLessThanOrEqual(24);
    }
  });

  it('shows, with tls only, how many members present an earlier certificate than the Secret\'s, and when the certificates expire', () => {
    const withTls = dashboardOf(synthDatabase(seedProps({ tls: { secretName: 'wal-postgres-tls' } })).objects);
    const without = dashboardOf(synthDatabase(seedProps()).objects);
    expect(without.panels.map((p: any) => p.title)).not.toContain('TLS');
    const row = withTls.panels.findIndex((p: any) => p.type === 'row' && p.title === 'TLS');
    expect(row).toBeGreaterThan(0);
    const [stale, expiry] = withTls.panels.slice(row + 1, row + 3);
    expect(stale.targets[0].expr).toBe('count(archiver_tls_certificate_current{namespace="demo",database="wal-postgres"} == 0) or vector(0)');
    expect(stale.fieldConfig.defaults.thresholds.steps.map((s: any) => s.color)).toStrictEqual(['green', 'orange', 'red']);
    expect(expiry.targets[0].expr).toBe('min(archiver_tls_certificate_expiry_timestamp_seconds{namespace="demo",database="wal-postgres"}) * 1000');
    expect(expiry.fieldConfig.defaults.unit).toBe('dateTimeFromNow');
    // The panels before the row are the same as without tls: nothing else moves.
    expect(withTls.panels.slice(0, row)).toStrictEqual(without.panels);
  });

  it('the contract\'s metrics follow Prometheus\'s naming: prefix, base units, _total counters', () => {
    for (const metric of Object.values(ARCHIVER_METRICS)) {
      expect(metric.name).toMatch(/^archiver_[a-z0-9_]+$/);
      if (metric.type === 'counter') expect(metric.name).toMatch(/_total$/);
      else expect(metric.name).not.toMatch(/_total$/);
      expect(metric.name).not.toMatch(/_(milliseconds|ms|kb|mb|minutes|hours)(_|$)/);
      expect(metric.help.length).toBeGreaterThan(10);
    }
    expect(new Set(Object.values(ARCHIVER_METRICS).map((m) => m.name)).size).toBe(Object.keys(ARCHIVER_METRICS).length);
  });
});

describe('the README', () => {
  it('lists every metric the sidecar serves and every alert', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Monitoring'), readme.indexOf('\n## ', readme.indexOf('## Monitoring') + 5));
    for (const metric of Object.values(ARCHIVER_METRICS)) expect(section, metric.name).toContain(`\`${metric.name}`);
    for (const alert of Object.values(ALERTS)) expect(section, alert).toContain(`| \`${alert}\` |`);
  });
});

describe('object names', () => {
  it('a database named so that its dashboard ConfigMap is another\'s object is a synth error', () => {
    const { app, chart } = databaseChart(seedProps(), 'orders');
    new k8s.KubeConfigMap(chart, 'other', { metadata: { name: 'orders-dashboard' } });
    expect(() => app.synth()).toThrow(/ConfigMap "orders-dashboard" in namespace "demo" .* is also rendered by test\/other/);
  });
});
