/**
 * The rendered alert rules (constructs/alert-rules.ts, in the PrometheusRule) through Prometheus's
 * own promtool (Debian's `prometheus` package): `promtool check rules` accepts them, and
 * `promtool test rules` runs each alert on series as the sidecars serve them, once where it must
 * fire (with its labels and its rendered summary and description) and once where it must stay
 * quiet.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duration } from 'cdk8s';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ARCHIVER_METRICS } from '../../contract';
import { ALERTS } from '../../constructs';
import { find, seedProps, synthDatabase } from './fixtures';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'promtool-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

// Small thresholds where the defaults are days, so that each test spans hours of minutes.
const { objects } = synthDatabase(seedProps({
  replicas: 2,
  tls: { secretName: 'wal-postgres-tls' },
  backups: { schedule: '0 2 * * *' },
  monitoring: { alerts: { backupMaxAge: Duration.hours(2), recoveryWindow: Duration.hours(3) } },
}));
const groups = find(objects, 'PrometheusRule', 'wal-postgres').spec.groups;
const rules: { alert: string; annotations: { summary: string; description: string }; labels: Record<string, string> }[] = groups.flatMap((g: any) => g.rules);
const rulesFile = path.join(scratch, 'rules.yaml');
fs.writeFileSync(rulesFile, stringify({ groups }));

/** The labels a series of pod `pod` gets from the PodMonitor (and Prometheus). */
const target = (pod = 'wal-postgres-0') => ({ namespace: 'demo', database: 'wal-postgres', pod, container: 'archiver', endpoint: 'metrics', job: 'demo/wal-postgres', instance: `10.0.0.${pod.slice(-1)}:9188` });
const series = (key: keyof typeof ARCHIVER_METRICS, values: string, pod?: string) => {
  const labels = Object.entries(target(pod)).map(([k, v]) => `${k}="${v}"`).join(',');
  return { series: `${ARCHIVER_METRICS[key].name}{${labels}}`, values };
};

/** The alert's annotations as Prometheus renders them for `labels` and `value`. */
function rendered(alert: string, labels: Record<string, string>, value: { plain?: string; duration?: string } = {}): Record<string, string> {
  const rule = rules.find((r) => r.alert === alert)!;
  const render = (text: string) =>
    text
      .replaceAll('{{ $labels.pod }}', labels.pod ?? '')
      .replaceAll('{{ $value | humanizeDuration }}', value.duration ?? '')
      .replaceAll('{{ $value }}', value.plain ?? '');
  return { summary: render(rule.annotations.summary), description: render(rule.annotations.description) };
}

interface AlertCase {
  readonly alert: string;
  readonly fires: { input: ReturnType<typeof series>[]; at: string; labels: Record<string, string>; value?: { plain?: string; duration?: string } };
  readonly quiet: { input: ReturnType<typeof series>[]; at: string };
}

const byDatabase = { namespace: 'demo', database: 'wal-postgres' };
const GB = 1_000_000_000;

const CASES: AlertCase[] = [
  {
    alert: ALERTS.archivingFailing,
    // The last failure is after the last success, for over 5 minutes.
    fires: { input: [series('lastArchiveFailure', '1000x20'), series('lastArchived', '900x20')], at: '10m', labels: target() },
    quiet: { input: [series('lastArchiveFailure', '1000x20'), series('lastArchived', '1100x20')], at: '10m' },
  },
  {
    alert: ALERTS.archiveBacklog,
    fires: { input: [series('walReadyFiles', '20x20'), series('walOldestReadyAge', '100+60x20')], at: '10m', labels: target(), value: { plain: '20' } },
    // A few files, each archived within minutes: a busy database, not a stalled archive.
    quiet: { input: [series('walReadyFiles', '3x20'), series('walOldestReadyAge', '60x20')], at: '10m' },
  },
  {
    alert: ALERTS.volumeFillingUp,
    // 85% used and losing 1 MB a minute: 150 MB left, full in 2.5 hours.
    fires: { input: [series('volumeSize', `${GB}x90`), series('volumeAvailable', `${0.15 * GB}-1000000x90`)], at: '80m', labels: target() },
    // 85% used but steady.
    quiet: { input: [series('volumeSize', `${GB}x90`), series('volumeAvailable', `${0.15 * GB}x90`)], at: '80m' },
  },
  {
    alert: ALERTS.backupMissing,
    fires: { input: [series('backups', '0x90'), series('backups', '0x90', 'wal-postgres-1')], at: '70m', labels: byDatabase },
    quiet: { input: [series('backups', '1x90'), series('backups', '1x90', 'wal-postgres-1')], at: '70m' },
  },
  {
    alert: ALERTS.backupTooOld,
    // Eval at 3h (time() = 10800): the backup finished at 60 s, over 2 hours ago.
    fires: { input: [series('backupLastCompletion', '60x200'), series('backups', '1x200')], at: '3h', labels: byDatabase },
    quiet: { input: [series('backupLastCompletion', '7200x200'), series('backups', '1x200')], at: '3h' },
  },
  {
    alert: ALERTS.recoveryWindowShort,
    // Eval at 5h: the archive is 5h old, the window 2h (3h promised).
    fires: {
      input: [series('recoveryWindowStart', '10800x320'), series('recoveryWindowEnd', '18000x320'), series('archiveCreated', '60x320')],
      at: '5h',
      labels: byDatabase,
      value: { duration: '2h 0m 0s' },
    },
    // The same window in an archive younger than the promise: nothing was ever deleted.
    quiet: { input: [series('recoveryWindowStart', '10800x320'), series('recoveryWindowEnd', '18000x320'), series('archiveCreated', '7200x320')], at: '5h' },
  },
  {
    alert: ALERTS.archiverCannotWork,
    fires: { input: [series('configurationOk', '0x20')], at: '10m', labels: target() },
    // A blip while a fixed Secret reaches the restarted sidecar.
    quiet: { input: [series('configurationOk', '0 0 1x20')], at: '10m' },
  },
  {
    alert: ALERTS.roleLabelFailing,
    fires: { input: [series('roleLabelFailures', '0+6x40', 'wal-postgres-1')], at: '30m', labels: target('wal-postgres-1') },
    // Failures that stopped 20 minutes ago (an API server restart).
    quiet: { input: [series('roleLabelFailures', '0+6x10 60x40', 'wal-postgres-1')], at: '40m' },
  },
  {
    alert: ALERTS.tlsCertificateNotLoaded,
    fires: { input: [series('tlsCertificateCurrent', '0x20')], at: '10m', labels: target() },
    quiet: { input: [series('tlsCertificateCurrent', '1x20')], at: '10m' },
  },
  {
    alert: ALERTS.tlsCertificateExpiring,
    // Eval at 1h (time() = 3600): the certificate expires 3 days later.
    fires: { input: [series('tlsCertificateExpiry', `${3600 + 3 * 86_400}x90`)], at: '1h', labels: target(), value: { duration: '3d 0h 0m 0s' } },
    // 40 days left: cert-manager renews a 90-day certificate 30 days before it expires.
    quiet: { input: [series('tlsCertificateExpiry', `${40 * 86_400}x90`)], at: '1h' },
  },
  {
    alert: ALERTS.standbyNotStreaming,
    fires: { input: [series('standbyStreaming', '0x20', 'wal-postgres-1')], at: '10m', labels: target('wal-postgres-1') },
    quiet: { input: [series('standbyStreaming', '1x20', 'wal-postgres-1')], at: '10m' },
  },
];

function promtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', timeout: 60_000 });
  if (result.error) throw new Error(`promtool: ${result.error.message} (it is in Debian's prometheus package: scripts/system-deps.sh installs it)`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('promtool', () => {
  it('check rules: the PrometheusRule\'s groups are a valid rule file', () => {
    const checked = promtool(['check', 'rules', rulesFile]);
    expect(checked.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(checked.status).toBe(0);
  });

  it('every alert has a case here', () => {
    expect(CASES.map((c) => c.alert).sort()).toStrictEqual(rules.map((r) => r.alert).sort());
  });

  it.each(CASES.map((c) => [c.alert, c] as const))('test rules: %s fires, and stays quiet where it must', (alert, c) => {
    const rule = rules.find((r) => r.alert === alert)!;
    const tests = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: c.fires.input,
          alert_rule_test: [{ eval_time: c.fires.at, alertname: alert, exp_alerts: [{ exp_labels: { ...c.fires.labels, ...rule.labels }, exp_annotations: rendered(alert, c.fires.labels, c.fires.value) }] }],
        },
        { interval: '1m', input_series: c.quiet.input, alert_rule_test: [{ eval_time: c.quiet.at, alertname: alert, exp_alerts: [] }] },
      ],
    };
    const file = path.join(scratch, `${alert}.test.yaml`);
    fs.writeFileSync(file, stringify(tests));
    const result = promtool(['test', 'rules', file]);
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});
