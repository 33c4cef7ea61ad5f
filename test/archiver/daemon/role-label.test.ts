/**
 * The `archiver` sidecar labels its own pod with its server's role (archiver/src/daemon/role-label.ts):
 * `archived-postgres/role: primary` out of recovery, `standby` in recovery, so that the read-only
 * Service (which selects `standby`) never reaches a server that accepts writes.
 *
 * Against real PostgreSQL 15 (a primary and a streaming standby, which is then promoted) and a
 * MOCK of the Kubernetes API (testkit/mock-kubernetes-api.ts: no API server runs here) that
 * authorizes with the Role and RoleBinding the constructs render for the database, as its
 * ServiceAccount demo/wal-postgres.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLE_LABEL, podPath, roleLabelPatch } from '../../../contract';
import { RoleLabeller } from '../../../archiver/src/daemon/role-label';
import { inClusterApi } from '../../../archiver/src/kubernetes-api';
import { NO_METRICS } from '../../../archiver/src/metrics/recorder';
import { LAUNCHER, type LogLine, logLines, startSidecar, stopSidecar } from '../../../testkit/archiver';
import { capturingLogger, waitUntil } from '../../../testkit/doubles';
import { MockKubernetesApi, RenderedObject, startMockKubernetesApi } from '../../../testkit/mock-kubernetes-api';
import { PostgresCluster, postgresUser } from '../../../testkit/postgres';
import { startStreamingStandby } from '../../../testkit/replication';
import { freePort } from '../../../testkit/ports';
import { testScratch } from '../../../testkit/scratch';
import { find, seedProps, synthDatabase } from '../../constructs/fixtures';

const scratch = testScratch('role-label-');

/** The Role and RoleBinding the constructs render for demo/wal-postgres with `replicas` members. */
function renderedRbac(replicas: number): RenderedObject[] {
  const { objects } = synthDatabase(seedProps({ replicas }));
  return [find(objects, 'Role', 'wal-postgres'), find(objects, 'RoleBinding', 'wal-postgres')];
}

/** The labels the StatefulSet controller gives a pod of the seed example: the template's and its name. */
function podLabels(name: string): Record<string, string> {
  const { objects } = synthDatabase(seedProps());
  return { ...find(objects, 'StatefulSet', 'wal-postgres').spec.template.metadata.labels, 'statefulset.kubernetes.io/pod-name': name };
}

let primary: PostgresCluster;
let standby: PostgresCluster;
let mock: MockKubernetesApi;
const labellers: RoleLabeller[] = [];

/** Pod `podName`'s labeller beside `server`, as the sidecar makes it, with the mock's API. */
function labeller(podName: string, server: PostgresCluster | { baseDir: string; port: number }, intervalMs?: number) {
  const { log, lines } = capturingLogger();
  const failures = { counted: 0 };
  const made = new RoleLabeller({
    api: inClusterApi(mock.env),
    podName,
    namespace: { file: path.join(mock.serviceAccountDir, 'namespace') },
    log,
    connection: { host: server.baseDir, port: server.port, user: 'postgres' },
    intervalMs,
    metrics: { ...NO_METRICS, roleLabelFailed: () => void failures.counted++ },
  });
  labellers.push(made);
  return { labeller: made, lines, failures };
}

const POD_0 = podPath('demo', 'wal-postgres-0');
const POD_1 = podPath('demo', 'wal-postgres-1');

beforeAll(async () => {
  primary = await PostgresCluster.create({ settings: { wal_level: 'replica' } });
  primary.start();
  standby = await startStreamingStandby(primary);
  mock = await startMockKubernetesApi(scratch.dir, { serviceAccount: { namespace: 'demo', name: 'wal-postgres' }, rbac: renderedRbac(2) });
  // The sidecar runs as postgres (uid 999 in the pod) and reads the token: the kubelet's files are readable by it.
  fs.chmodSync(path.dirname(mock.serviceAccountDir), 0o755);
}, 120_000);

afterAll(async () => {
  for (const made of labellers) await made.stop();
  await mock?.stop();
  await standby?.remove();
  await primary?.remove();
});

describe('each sidecar labels its own pod with its server\'s role', () => {
  it('labels pod 0 primary and pod 1 standby: one GET and one merge patch of that one label each, the pods\' other labels kept', async () => {
    mock.putPod('demo', 'wal-postgres-0', { labels: podLabels('wal-postgres-0') });
    mock.putPod('demo', 'wal-postgres-1', { labels: podLabels('wal-postgres-1') });

    expect(await labeller('wal-postgres-0', primary).labeller.look()).toStrictEqual({ kind: 'patched', role: 'primary', previous: undefined });
    expect(await labeller('wal-postgres-1', standby).labeller.look()).toStrictEqual({ kind: 'patched', role: 'standby', previous: undefined });

    expect(mock.podLabels('demo', 'wal-postgres-0')).toStrictEqual({ ...podLabels('wal-postgres-0'), [ROLE_LABEL]: 'primary' });
    expect(mock.podLabels('demo', 'wal-postgres-1')).toStrictEqual({ ...podLabels('wal-postgres-1'), [ROLE_LABEL]: 'standby' });
    expect(mock.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toStrictEqual([`GET ${POD_0} 200`, `PATCH ${POD_0} 200`, `GET ${POD_1} 200`, `PATCH ${POD_1} 200`]);
    expect(mock.requests.filter((r) => r.method === 'PATCH').map((r) => JSON.parse(r.body))).toStrictEqual([roleLabelPatch('primary'), roleLabelPatch('standby')]);
    expect(roleLabelPatch('standby')).toStrictEqual({ metadata: { labels: { 'archived-postgres/role': 'standby' } } });
    // As the ServiceAccount: the token in the Authorization header, and nowhere else.
    for (const request of mock.requests) expect(request.authorization).toBe(`Bearer ${mock.token}`);
  });

  it('asks its server again at every look and patches nothing while the role stays', async () => {
    mock.requests.length = 0;
    const { labeller: pod0, lines } = labeller('wal-postgres-0', primary);
    // A restarted sidecar reads the label it finds: right already, so no patch.
    expect(await pod0.look()).toStrictEqual({ kind: 'unchanged', role: 'primary' });
    expect(await pod0.look()).toStrictEqual({ kind: 'unchanged', role: 'primary' });
    expect(mock.requests.map((r) => `${r.method} ${r.path}`)).toStrictEqual([`GET ${POD_0}`]);
    expect(lines).toStrictEqual([]);
  });

  it('labels a promoted standby primary at its next look', async () => {
    const { labeller: pod1, lines } = labeller('wal-postgres-1', standby);
    expect(await pod1.look()).toStrictEqual({ kind: 'unchanged', role: 'standby' });
    standby.sql('select pg_promote()');
    await waitUntil(() => standby.sql('select pg_is_in_recovery()') === 'f', 'the standby is promoted', 30_000);
    mock.requests.length = 0;

    expect(await pod1.look()).toStrictEqual({ kind: 'patched', role: 'primary', previous: 'standby' });
    expect(mock.podLabels('demo', 'wal-postgres-1')?.[ROLE_LABEL]).toBe('primary');
    expect(mock.requests.map((r) => `${r.method} ${r.path}`)).toStrictEqual([`PATCH ${POD_1}`]);
    expect(lines.filter((l) => l.level === 'info').map((l) => [l.msg, l.pod, l.role, l.previous])).toStrictEqual([
      ['the pod is labelled with its role', 'wal-postgres-1', 'primary', 'standby'],
    ]);
  });

  it('leaves the label as it is, and asks the API nothing, while its server does not answer', async () => {
    mock.requests.length = 0;
    const { labeller: pod1, lines, failures } = labeller('wal-postgres-1', { baseDir: path.join(scratch.dir, 'no-socket-here'), port: standby.port });
    const outcome = await pod1.look();
    expect(outcome.kind).toBe('postgres-unreachable');
    expect(mock.requests).toStrictEqual([]);
    expect(mock.podLabels('demo', 'wal-postgres-1')?.[ROLE_LABEL]).toBe('primary');
    expect(lines.map((l) => [l.level, l.msg])).toStrictEqual([['warn', 'PostgreSQL does not answer; the pod keeps its role label']]);
    // Not a failure of the label: archiver_postgres_up says the server is down.
    expect(failures.counted).toBe(0);
  });
});

describe('a sidecar that cannot label its pod keeps running and retrying', () => {
  const looks = (lines: LogLine[]) => lines.filter((l) => l.msg === 'cannot label the pod with its role (trying again)');

  it('a pod the Role does not name (beyond replicas) gets 403 at every look, logged once, and is labelled once the Role names it', async () => {
    mock.putPod('demo', 'wal-postgres-2', { labels: podLabels('wal-postgres-2') });
    const { labeller: pod2, lines } = labeller('wal-postgres-2', primary, 50);
    pod2.start();
    // A look's line is written after its answer arrives: wait for both.
    await waitUntil(() => mock.requestsFor(podPath('demo', 'wal-postgres-2')).filter((r) => r.status === 403).length >= 3 && looks(lines).length >= 3, 'three refused looks');
    expect(mock.podLabels('demo', 'wal-postgres-2')).not.toHaveProperty([ROLE_LABEL]);
    const warned = lines.filter((l) => l.level === 'warn');
    expect(warned).toHaveLength(1);
    expect(warned[0].error).toBe(
      'GET of pod demo/wal-postgres-2 answered 403 Forbidden (pods "wal-postgres-2" is forbidden: User "system:serviceaccount:demo:wal-postgres" cannot get resource "pods" in API group "" in the namespace "demo"): the Role must grant get and patch on this pod (resourceNames)',
    );

    // The pull request that makes it a member: the Role rendered for 3 replicas.
    mock.rbac = renderedRbac(3);
    // The line is written once the patch has been answered: wait for both.
    await waitUntil(() => mock.podLabels('demo', 'wal-postgres-2')?.[ROLE_LABEL] === 'primary' && lines.some((l) => l.msg === 'the pod role label is up to date again'), 'pod 2 labelled, and said so');
    await pod2.stop();
  });

  it('an API server that answers 500 or cannot be reached: the sidecar keeps looking, logs each kind of failure once, and labels the pod once it answers', async () => {
    mock.rbac = renderedRbac(3);
    mock.putPod('demo', 'wal-postgres-2', { labels: podLabels('wal-postgres-2') });
    mock.forcedAnswer = { status: 500, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcdserver: request timed out', reason: 'InternalError', code: 500 }) };
    const { labeller: pod2, lines, failures } = labeller('wal-postgres-2', primary, 50);
    pod2.start();
    await waitUntil(() => looks(lines).length >= 3, 'three looks answered 500');
    mock.forcedAnswer = undefined;
    await mock.goOffline();
    const offlineFrom = looks(lines).length;
    await waitUntil(() => looks(lines).length >= offlineFrom + 3, 'three looks while the API server is down');
    await mock.goOnline();
    await waitUntil(() => mock.podLabels('demo', 'wal-postgres-2')?.[ROLE_LABEL] === 'primary', 'pod 2 labelled');
    await pod2.stop();

    const warned = lines.filter((l) => l.level === 'warn').map((l) => l.error);
    expect(warned).toHaveLength(2);
    expect(warned[0]).toBe('GET of pod demo/wal-postgres-2 answered 500 Internal Server Error (etcdserver: request timed out)');
    expect(warned[1]).toMatch(/^cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    for (const line of lines) expect(JSON.stringify(line)).not.toContain(mock.token);
    // archiver_role_label_failures_total counts every failed look, not only the logged ones.
    expect(failures.counted).toBe(looks(lines).length);
  });
});

describe('the sidecar as the pod runs it', () => {
  let sidecar: ChildProcess | undefined;
  afterAll(async () => {
    if (sidecar) await stopSidecar(sidecar);
  });

  it('with ARCHIVER_ROLE_LABEL=on, starts while the API server is down, keeps running, and labels its pod once the API answers; the token is never logged', async () => {
    const pod = 'wal-postgres-0';
    mock.putPod('demo', pod, { labels: podLabels(pod) });
    const base = scratch.postgresDirectory();
    const logFile = path.join(base, 'sidecar.log');
    const metricsPort = await freePort();
    await mock.goOffline();
    sidecar = await startSidecar(
      [LAUNCHER, 'daemon'],
      {
        ARCHIVER_REPOSITORY: `file://${path.join(base, 'archive')}`,
        ARCHIVER_SPOOL: path.join(base, 'spool'),
        ARCHIVER_DAEMON_IDLE_SECONDS: '0',
        ARCHIVER_BACKUP_AT_READY: 'off',
        ARCHIVER_ROLE_LABEL: 'on',
        POD_NAME: pod,
        PGHOST: primary.baseDir,
        PGPORT: String(primary.port),
        PGUSER: 'postgres',
        ARCHIVER_METRICS_PORT: String(metricsPort),
        ...mock.env,
      },
      { logFile, cwd: base, ...postgresUser() },
    );
    const log = () => logLines(fs.readFileSync(logFile, 'utf8'));
    await waitUntil(() => log().some((l) => l.msg === 'cannot label the pod with its role (trying again)'), 'a failed look', 20_000);
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(scraped).toMatch(/^archiver_role_label_failures_total [1-9]\d*$/m);
    await mock.goOnline();
    // The next look, ROLE_CHECK_SECONDS (10 s) later.
    // The log line follows the patch's answer: wait for both.
    await waitUntil(() => mock.podLabels('demo', pod)?.[ROLE_LABEL] === 'primary' && log().some((l) => l.msg === 'the pod is labelled with its role'), 'pod 0 labelled primary, and said so', 30_000);
    expect(sidecar.exitCode).toBeNull();
    expect(log().map((l) => l.msg)).toEqual(expect.arrayContaining(['labelling the pod with its role', 'the pod is labelled with its role']));
    expect(fs.readFileSync(logFile, 'utf8')).not.toContain(mock.token);
  }, 60_000);
});
