/**
 * The WipeOut Job (constructs/wipe-out-job.ts) and the real archiver agree: its rendered command,
 * run from the build with its rendered environment (the storage Secret resolved to test values, as
 * the kubelet would) against s3rver, and a MOCK of the Kubernetes API server
 * (testkit/mock-kubernetes-api.ts) that authorizes it by the rendered Role and RoleBinding only:
 * - beside a live database (the YAML applied by a tool that ignores the hook annotation) it waits
 *   and deletes nothing;
 * - once the database is gone it leaves nothing of this database's archive, touches no other
 *   database's archive in the same bucket, and succeeds again on the emptied archive and on one
 *   never written (the hook is idempotent).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chart } from 'cdk8s';
import { openStorage } from '../../archiver/src/storage/open';
import type { Storage } from '../../archiver/src/storage/storage';
import { ArchivedPostgres, TerminationPolicy } from '../../constructs';
import { waitUntil } from '../../testkit/doubles';
import { MockKubernetesApi, startMockKubernetesApi } from '../../testkit/mock-kubernetes-api';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { KubeObject, containerEnvironment, find, fromBuild, seedProps, synth, testApp } from './fixtures';

/** Objects of one database's archive (and of a backup that never finished). */
const ARCHIVE_KEYS = ['archive.json', 'wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/00000002.history', 'basebackups/base_20261130T020000Z/parts/0001.tar'];

describe('the WipeOut Job and the archiver', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'wipeout-'));
  let server: S3Server;
  let bucket: Storage;
  let objects: KubeObject[];
  let api: MockKubernetesApi;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['kubedb'] });
    api = await startMockKubernetesApi(scratch);
    bucket = await openStorage({ kind: 's3', bucket: 'kubedb', endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const chart = new Chart(testApp(), 'test', { namespace: 'demo', disableResourceNameHashes: true });
    new ArchivedPostgres(chart, 'wal-postgres', seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }));
    new ArchivedPostgres(chart, 'never-written', seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }));
    new ArchivedPostgres(chart, 'orders', seedProps());
    objects = synth(chart);
    // The API allows the Jobs' ServiceAccount exactly what the rendered Roles and RoleBindings grant.
    api.rbac = objects.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding');
  });
  afterAll(async () => {
    await bucket?.close();
    await server?.stop();
    await api?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  interface JobRun {
    readonly child: ChildProcess;
    readonly done: Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  }

  /**
   * Starts the Job `name`'s container as the kubelet would, against the test's S3 server and the
   * mock API (asynchronously: the mock answers from this process).
   */
  function startJob(name: string): JobRun {
    const job = find(objects, 'Job', name);
    const container = job.spec.template.spec.containers[0];
    const env = containerEnvironment(container, { 's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey } }, `${name}-x7k2p`);
    // What differs from a cluster: the endpoint is the test's S3 server (which needs
    // WHEN_REQUIRED checksums); the spool's volume is a scratch directory; the API server is the
    // mock, its address and the ServiceAccount's token and CA given as the kubelet gives them to a
    // pod that mounts its token (the rendered pod does).
    expect(job.spec.template.spec.automountServiceAccountToken).toBe(true);
    api.serviceAccount = { namespace: job.metadata.namespace!, name: job.spec.template.spec.serviceAccountName };
    const local = { PATH: process.env.PATH!, ARCHIVER_S3_ENDPOINT: server.endpoint, ARCHIVER_S3_CHECKSUMS: 'when_required', ARCHIVER_SPOOL: path.join(scratch, name, 'spool'), ...api.env };
    const [node, bundle, ...args] = container.command;
    const child = spawn(fromBuild(node), [fromBuild(bundle), ...args], { env: { ...env, ...local } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr })),
    );
    return { child, done };
  }

  const runJob = (name: string) => startJob(name).done;

  const keys = async () => (await bucket.list('')).map((o) => o.key).sort();

  const ownKeys = ARCHIVE_KEYS.map((k) => `kubedb/demo/wal-postgres/archive/${k}`);

  it('deletes nothing beside its live database: it waits for the StatefulSet and its pod 0 to be gone', async () => {
    // GIVEN the database's archive, and the database running (the YAML applied by kubectl, say)
    for (const key of ownKeys) await bucket.put(key, Buffer.from(key));
    api.putStatefulSet('demo', 'wal-postgres');
    api.putPod('demo', 'wal-postgres-0');
    // WHEN the Job runs beside it for two rounds of questions
    const job = startJob('wal-postgres-wipeout');
    try {
      await waitUntil(() => api.requestsFor('/apis/apps/v1/namespaces/demo/statefulsets/wal-postgres').length >= 2, 'two questions about the StatefulSet', 20_000);
      // THEN it has asked, as allowed by its Role, and deleted nothing
      expect(api.requests.map((r) => `${r.path} ${r.status}`).slice(0, 2)).toStrictEqual([
        '/apis/apps/v1/namespaces/demo/statefulsets/wal-postgres 200',
        '/api/v1/namespaces/demo/pods/wal-postgres-0 200',
      ]);
      expect(await keys()).toStrictEqual(ownKeys.sort());
      expect(job.child.exitCode).toBeNull();
    } finally {
      job.child.kill('SIGKILL');
      await job.done;
    }
    expect(await keys()).toStrictEqual(ownKeys.sort());
  });

  it('deletes the archive once Argo CD has deleted the database: the StatefulSet gone, then its terminating pod 0', async () => {
    // GIVEN the StatefulSet deleted and its pod 0 terminating, as when Argo CD starts the hook
    api.reset();
    api.putPod('demo', 'wal-postgres-0', { deletionTimestamp: '2026-11-30T10:00:00Z' });
    const job = startJob('wal-postgres-wipeout');
    await waitUntil(() => api.requestsFor('/api/v1/namespaces/demo/pods/wal-postgres-0').length >= 1, 'a question about pod 0', 20_000);
    expect(await keys()).toStrictEqual(ownKeys.sort());
    // WHEN the pod is gone
    api.deletePod('demo', 'wal-postgres-0');
    const result = await job.done;
    // THEN
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(await keys()).toStrictEqual([]);
    // Never refused by RBAC: the rendered Role grants what the rendered command asks.
    expect(api.requests.map((r) => r.status).filter((status) => status !== 200 && status !== 404)).toStrictEqual([]);
  });

  it('deletes every object of this database\'s archive, and nothing of another database\'s in the same bucket', async () => {
    // GIVEN two archives, and objects whose keys start like this database's location (the database gone)
    api.reset();
    const others = [
      ...ARCHIVE_KEYS.map((key) => `kubedb/demo/orders/archive/${key}`),
      ...ARCHIVE_KEYS.map((key) => `kubedb/demo/wal-postgres-copy/archive/${key}`),
      'kubedb/demo/wal-postgres/archive.old/wal/000000010000000000000001',
      'kubedb/demo/wal-postgres/notes.txt',
    ];
    for (const key of [...ARCHIVE_KEYS.map((k) => `kubedb/demo/wal-postgres/archive/${k}`), ...others]) await bucket.put(key, Buffer.from(key));
    // WHEN
    const result = await runJob('wal-postgres-wipeout');
    // THEN
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('deleted');
    expect(await keys()).toStrictEqual(others.sort());
  });

  it('succeeds again on the emptied archive (Argo CD may run a hook twice)', async () => {
    const before = await keys();
    const result = await runJob('wal-postgres-wipeout');
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(await keys()).toStrictEqual(before);
  });

  it('succeeds on an archive that was never written', async () => {
    const before = await keys();
    const result = await runJob('never-written-wipeout');
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(await keys()).toStrictEqual(before);
  });
});
