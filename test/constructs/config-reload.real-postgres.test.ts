/**
 * A change of the database's configuration reaches a running pod without a restart, unless it
 * needs one (constructs/postgres-config.ts `checksum`, restart-settings.ts; the sidecar's
 * archiver/src/daemon/config-reload.ts). Pod 0 of the seed example runs as rendered (RenderedPod:
 * its start.sh, its sidecar, PostgreSQL 15, s3rver), its ConfigMap mounted as the kubelet mounts
 * it; the ConfigMap of the changed database is then swapped in as the kubelet swaps it (`..data`),
 * and nothing else happens: no pod is rolled, no command is run.
 */
import { spawnSync } from 'node:child_process';
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ARCHIVER_METRICS, METRICS_PATH } from '../../contract';
import { ArchiveStorage } from '../../constructs';
import { logLines } from '../../testkit/archiver';
import { waitUntil } from '../../testkit/doubles';
import { PG_BIN, postgresUser } from '../../testkit/postgres';
import { testScratch } from '../../testkit/scratch';
import { KubeObject, databaseChart, find, seedProps, synth } from './fixtures';
import { RenderedPod, s3ServerAndPods, sleep } from './rendered-pod';

const scratch = testScratch('config-reload-');

/** The seed database, archiving every `archiveTimeoutSeconds`, with `settings` added. */
function database(archiveTimeoutSeconds: number, settings: Record<string, number> = {}): KubeObject[] {
  const storage = ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: 'kubedb' });
  const { db, chart } = databaseChart(seedProps({ archiver: { storage, archiveTimeout: Duration.seconds(archiveTimeoutSeconds) } }));
  for (const [name, value] of Object.entries(settings)) db.config.addSetting(name, value);
  return synth(chart);
}

/** The database's ConfigMap, its pg_hba.conf with a line of the test's first (so that it matches first). */
function configMap(objects: KubeObject[]): Record<string, string> {
  const files = find(objects, 'ConfigMap', 'wal-postgres-config').data!;
  return { ...files, 'pg_hba.conf': files['pg_hba.conf'].replace('# TYPE', 'host all reload_check 127.0.0.1/32 trust\n# TYPE') };
}
const podTemplateChecksum = (objects: KubeObject[]) =>
  find(objects, 'StatefulSet', 'wal-postgres').spec.template.metadata.annotations['archived-postgres/config-sha256'];

/** The postmaster: its pid and start time. */
const postmaster = (pod: RenderedPod) => pod.sql("select pg_postmaster_start_time()::text || ' ' || (select pid from pg_stat_activity where backend_type = 'checkpointer')");

/** Whether role `user` may connect over TCP without a password (it has none: only a `trust` line of pg_hba.conf lets it in). */
function connectsWithoutPassword(pod: RenderedPod, user: string): boolean {
  const result = spawnSync(`${PG_BIN}/psql`, ['-h', '127.0.0.1', '-p', String(pod.port), '-U', user, '-d', 'postgres', '-w', '-qAtX', '-c', 'select 1'], {
    ...postgresUser(),
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH! },
  });
  return result.status === 0;
}

/** A metric's value as the sidecar serves it (its metrics port), or undefined when it serves none. */
async function metric(pod: RenderedPod, series: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${pod.sidecarEnv[ARCHIVER_ENV.metricsPort]}${METRICS_PATH}`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The sidecar's log lines about reloads. */
const reloads = (pod: RenderedPod) => logLines(pod.archiverLog()).filter((line) => line.msg?.startsWith('configuration reloaded'));

describe('a configuration change on a running pod 0 (rendered pod, kubelet-style ConfigMap mount, sidecar, PostgreSQL 15, s3rver)', () => {
  const { pods } = s3ServerAndPods(scratch.dir);
  let pod: RenderedPod | undefined;
  let started = '';
  const need = () => {
    if (!pod) throw new Error('pod 0 is missing: the first spec failed');
    return pod;
  };

  it('1. a reloadable change (archive_timeout 60 s → 30 s, a pg_hba.conf line) keeps the pod template, and the sidecar applies it with a reload: same postmaster', async () => {
    // GIVEN pod 0 running the rendered configuration
    const before = database(60);
    pod = await pods.make(before, 'wal-postgres', 0);
    await pod.start();
    await pod.waitReady({ primary: true });
    pod.sql("create role reload_check login");
    expect(pod.sql('show archive_timeout')).toBe('1min');
    expect(connectsWithoutPassword(pod, 'reload_check')).toBe(false);
    started = postmaster(pod);

    // WHEN the pull request shortens archive_timeout, and pg_hba.conf gets the test's line
    const after = database(30);
    expect(podTemplateChecksum(after)).toBe(podTemplateChecksum(before));
    const swapped = Date.now();
    pod.mountConfigMap(configMap(after));

    // THEN the server runs with both by the sidecar's next look (5 s apart), without a restart
    const running = need();
    await waitUntil(() => running.sql('show archive_timeout') === '30s', 'archive_timeout to be reloaded', 30_000);
    expect(Date.now() - swapped).toBeLessThan(5_000 + 3_000);
    expect(connectsWithoutPassword(running, 'reload_check')).toBe(true);
    expect(postmaster(running)).toBe(started);
    expect(running.postgresRunning).toBe(true);
    await waitUntil(() => reloads(running).some((line) => line.changed === 'archive_timeout'), 'the sidecar to log the reload', 10_000);
    const line = reloads(running).find((l) => l.changed === 'archive_timeout')!;
    expect(line).toMatchObject({ level: 'info', msg: 'configuration reloaded', changed: 'archive_timeout' });
    expect(line.files.split(',')).toEqual(expect.arrayContaining(['pg_hba.conf', 'postgresql.conf']));
    expect(line.pending_restart).toBeUndefined();
  }, 180_000);

  it('2. a change that needs a restart (max_connections) changes the pod template, so the pods roll; until then the sidecar reports it pending', async () => {
    const running = need();
    const after = database(30, { max_connections: 150 });
    expect(podTemplateChecksum(after)).not.toBe(podTemplateChecksum(database(30)));

    // WHEN the kubelet brings the new ConfigMap before the pod is replaced
    running.mountConfigMap(configMap(after));

    // THEN the server keeps its value and says so; the sidecar names it
    await waitUntil(() => reloads(running).some((line) => line.pending_restart !== undefined), 'the sidecar to report a pending restart', 30_000);
    expect(reloads(running).find((line) => line.pending_restart !== undefined)).toMatchObject({
      level: 'warn',
      msg: 'configuration reloaded; some settings take effect only at the next restart',
      pending_restart: 'max_connections',
      files: 'postgresql.conf',
    });
    expect(running.sql('show max_connections')).toBe('100');
    expect(running.sql("select pending_restart from pg_settings where name = 'max_connections'")).toBe('t');
    expect(postmaster(running)).toBe(started);
    expect(await metric(running, ARCHIVER_METRICS.pendingRestartSettings.name)).toBe(1);
    expect(await metric(running, `${ARCHIVER_METRICS.configReloads.name}{outcome="applied"}`)).toBeGreaterThanOrEqual(2);
    expect(await metric(running, `${ARCHIVER_METRICS.configReloads.name}{outcome="failed"}`)).toBe(0);
  }, 120_000);

  it('3. a server that is down when the ConfigMap changes costs the sidecar nothing: it says so once, and reloads once the server is back', async () => {
    const running = need();
    await running.stopPostgres();
    running.mountConfigMap(configMap(database(45, { max_connections: 150 })));
    await waitUntil(() => logLines(running.archiverLog()).some((line) => line.msg === 'the configuration changed and cannot be reloaded (trying again)'), 'the sidecar to log the failed reload', 30_000);
    // A few more looks: the same failure is not logged again.
    await sleep(11_000);
    expect(logLines(running.archiverLog()).filter((line) => line.msg === 'the configuration changed and cannot be reloaded (trying again)')).toHaveLength(1);

    running.startPostgres();
    await running.waitReady({ primary: true });
    // The restarted server read the files itself (max_connections included); the sidecar's reload finds them applied.
    expect(running.sql('show max_connections')).toBe('150');
    await waitUntil(() => reloads(running).some((line) => line.files === 'postgresql.conf' && line.pending_restart === undefined && line.level === 'info'), 'the sidecar to reload the restarted server', 30_000);
    expect(running.sql('show archive_timeout')).toBe('45s');
    expect(await metric(running, `${ARCHIVER_METRICS.configReloads.name}{outcome="failed"}`)).toBeGreaterThanOrEqual(1);
    expect(await metric(running, ARCHIVER_METRICS.pendingRestartSettings.name)).toBe(0);
  }, 180_000);
});
