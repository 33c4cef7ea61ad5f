/**
 * The read-only Service never reaches a server that accepts writes, at the level of the rendered
 * pods: pod 0 and pod 1 of the seed example run their RENDERED start.sh and `archiver` sidecar
 * (rendered-pod.ts) on real PostgreSQL 15, the archive in s3rver; the sidecars label their pods
 * through a MOCK of the Kubernetes API (testkit/mock-kubernetes-api.ts: no API server runs here)
 * that authorizes with the RENDERED Role and RoleBinding, as the database's ServiceAccount. Which
 * pods each rendered Service selects is then read from the pods' labels, as the endpoints
 * controller reads them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ROLE_LABEL } from '../../contract';
import { ArchiveStorage } from '../../constructs';
import { waitUntil } from '../../testkit/doubles';
import { MockKubernetesApi, startMockKubernetesApi } from '../../testkit/mock-kubernetes-api';
import { freePort } from '../../testkit/ports';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { testScratch } from '../../testkit/scratch';
import { KubeObject, find, seedProps, synthDatabase } from './fixtures';
import { RenderedPod, secretsFor } from './rendered-pod';

const scratch = testScratch('pod-role-');
const BUCKET = 'kubedb';
const NAME = 'wal-postgres';

/** The pods (of `pods`) whose labels match every label of the Service's selector: its endpoints, readiness aside. */
function selectedBy(service: KubeObject, pods: readonly string[], api: MockKubernetesApi): string[] {
  return pods.filter((pod) => {
    const labels = api.podLabels('demo', pod) ?? {};
    return Object.entries(service.spec.selector as Record<string, string>).every(([key, value]) => labels[key] === value);
  });
}

describe('the rendered pods label themselves; the read-only Service selects the standby only (rendered pods, PostgreSQL 15, mock Kubernetes API)', () => {
  // No backup at ready (a schedule that does not fire while the test runs): pod 1 clones pod 0 with pg_basebackup, the default.
  const { objects } = synthDatabase(seedProps({ archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: BUCKET }) }, backups: { atReady: false, schedule: '0 0 1 1 *' } }));
  let s3: S3Server | undefined;
  let api: MockKubernetesApi | undefined;
  const pods: RenderedPod[] = [];

  beforeAll(async () => {
    s3 = await startS3Server({ buckets: [BUCKET] });
    api = await startMockKubernetesApi(scratch.dir, { serviceAccount: { namespace: 'demo', name: NAME }, rbac: [find(objects, 'Role', NAME), find(objects, 'RoleBinding', NAME)] });
    // The kubelet's token files are readable by the pod's uid (the projected volume's mode 0644).
    fs.chmodSync(path.dirname(api.serviceAccountDir), 0o755);
    for (const ordinal of [0, 1]) {
      const port = await freePort();
      pods.push(
        new RenderedPod({
          objects,
          name: NAME,
          ordinal,
          secrets: secretsFor(s3, NAME),
          s3,
          dir: path.join(scratch.dir, `${NAME}-${ordinal}`),
          port,
          primaryPort: pods[0]?.port ?? port,
          kubernetesApi: api,
        }),
      );
    }
  }, 60_000);

  afterAll(async () => {
    // The standby first: it would otherwise retry the primary while it stops.
    for (const pod of pods.slice().reverse()) await pod.remove();
    await api?.stop();
    await s3?.stop();
  });

  it('gives the token to the sidecar only: PostgreSQL (and whatever a superuser makes it run) has none', () => {
    const [pod0] = pods;
    expect(pod0.sidecarEnv[ARCHIVER_ENV.serviceAccountDir]).toBe(api!.serviceAccountDir);
    expect(pod0.postgresEnv).not.toHaveProperty([ARCHIVER_ENV.serviceAccountDir]);
    expect(pod0.sidecarEnv[ARCHIVER_ENV.roleLabel]).toBe('on');
  });

  it('pod 0 is labelled primary and pod 1 standby; the read-only Service selects pod 1 only, where a write fails; the read-write Service pod 0', async () => {
    const [pod0, pod1] = pods;
    await pod0.start();
    await pod0.waitReady({ primary: true, timeoutMs: 120_000 });
    await pod1.start();
    await waitUntil(() => pod1.tryPsql('select pg_is_in_recovery()') === 't', 'pod 1 runs as a standby', 120_000);
    // Each sidecar looks every 10 s; its first look may come before its server accepts connections.
    await waitUntil(
      () => api!.podLabels('demo', `${NAME}-0`)?.[ROLE_LABEL] === 'primary' && api!.podLabels('demo', `${NAME}-1`)?.[ROLE_LABEL] === 'standby',
      'both pods labelled',
      30_000,
    );

    const names = pods.map((p) => p.podName);
    expect(selectedBy(find(objects, 'Service', `${NAME}-standby`), names, api!)).toStrictEqual([`${NAME}-1`]);
    expect(selectedBy(find(objects, 'Service', NAME), names, api!)).toStrictEqual([`${NAME}-0`]);
    expect(selectedBy(find(objects, 'Service', `${NAME}-pods`), names, api!)).toStrictEqual(names);
    // A client of the read-only Service cannot write.
    expect(() => pod1.sql('create table written_through_the_standby_service (id int)')).toThrow(/read-only transaction/);

    for (const pod of pods) {
      const log = pod.archiverLog();
      expect(log).toContain('the pod is labelled with its role');
      expect(log).not.toContain(api!.token);
    }
    // Only the pods' own names, and only get and patch.
    expect(new Set(api!.requests.map((r) => `${r.method} ${r.path} ${r.status}`))).toStrictEqual(
      new Set([`GET /api/v1/namespaces/demo/pods/${NAME}-0 200`, `PATCH /api/v1/namespaces/demo/pods/${NAME}-0 200`, `GET /api/v1/namespaces/demo/pods/${NAME}-1 200`, `PATCH /api/v1/namespaces/demo/pods/${NAME}-1 200`]),
    );
  }, 240_000);
});
