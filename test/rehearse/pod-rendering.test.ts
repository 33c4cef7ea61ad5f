/**
 * The rehearsal's StatefulSet controller and kubelet (rehearse/pod-rendering.ts), on the committed
 * dist/: each ordinal's Pod as podman can run it, every adaptation listed with its field, and a
 * field it does not know refused by name rather than dropped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { segmentRange } from '../../rehearse/bucket';
import { KubeObject, PodEnvironment, renderJobPod, renderStatefulSetPod, RenderingError } from '../../rehearse/pod-rendering';
import { ROOT } from '../../testkit/archiver';

function objectsOf(database: string): KubeObject[] {
  const dir = path.join(ROOT, 'dist', database);
  return fs.readdirSync(dir).flatMap((f) => parseAllDocuments(fs.readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as KubeObject));
}

const objects = objectsOf('dev/demo/wal-postgres');
const statefulSet = objects.find((o) => o.kind === 'StatefulSet')!;
const SECRETS = {
  's3-secret': { AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' },
  'wal-postgres-auth': { password: 'p1' },
  'wal-postgres-replication': { password: 'p2' },
  'wal-postgres-tls': { 'tls.crt': 'CRT', 'tls.key': 'KEY', 'ca.crt': 'CA' },
};
const ENV: PodEnvironment = {
  secrets: SECRETS,
  hosts: { 'wal-postgres-0.wal-postgres-pods': '10.89.1.10', 'wal-postgres-1.wal-postgres-pods': '10.89.1.11' },
  envOverrides: { ARCHIVER_S3_ENDPOINT: { value: 'http://10.89.1.2:9000', why: 'the S3 pod' } },
  archiverEnvAdditions: { ARCHIVER_S3_CHECKSUMS: { value: 'when_required', why: 's3rver' } },
  podDirectory: '/tmp/rehearse-x/pods/wal-postgres-1',
};

const container = (pod: KubeObject, name: string) => pod.spec.containers.find((c: any) => c.name === name) ?? pod.spec.initContainers.find((c: any) => c.name === name);
const envOf = (c: any) => Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));

describe('a StatefulSet ordinal as a Pod podman can run', () => {
  const rendered = renderStatefulSetPod(statefulSet, 1, objects, ENV);
  const pod = rendered.pod;

  it('is the Pod the StatefulSet controller would create: its name, hostname, labels and its own claim', () => {
    expect(pod.metadata.name).toBe('wal-postgres-1');
    expect(pod.spec.hostname).toBe('wal-postgres-1');
    expect(pod.metadata.labels).toMatchObject({ 'app.kubernetes.io/instance': 'wal-postgres', 'statefulset.kubernetes.io/pod-name': 'wal-postgres-1' });
    expect(rendered.claims).toStrictEqual(['data-wal-postgres-1']);
    expect(pod.spec.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: 'data-wal-postgres-1' } });
  });

  it('keeps what the security review cares about: the images, commands, users, read-only root, dropped capabilities, memory limits', () => {
    const postgres = container(pod, 'postgres');
    const template = statefulSet.spec.template.spec;
    expect(postgres.image).toBe(template.containers[0].image);
    expect(postgres.command).toStrictEqual(template.containers[0].command);
    expect(postgres.securityContext).toStrictEqual(template.containers[0].securityContext);
    expect(postgres.resources).toStrictEqual({ limits: { memory: template.containers[0].resources.limits.memory } });
    expect(pod.spec.securityContext).toMatchObject({ runAsUser: 999, runAsGroup: 999, runAsNonRoot: true, supplementalGroups: [999] });
    expect(container(pod, 'install-archiver').command).toStrictEqual(template.initContainers[0].command);
  });

  it('resolves Secret references from the fixture and points the archive at the rehearsal\'s S3 server', () => {
    const archiver = envOf(container(pod, 'archiver'));
    expect(archiver.AWS_SECRET_ACCESS_KEY).toBe('secret');
    expect(archiver.ARCHIVER_S3_ENDPOINT).toBe('http://10.89.1.2:9000');
    expect(archiver.ARCHIVER_S3_CHECKSUMS).toBe('when_required');
    expect(archiver.POD_NAME).toStrictEqual({ fieldRef: { fieldPath: 'metadata.name' } });
  });

  it('lays the ConfigMap and Secrets out as the kubelet projects them, with their modes and the fsGroup', () => {
    const config = rendered.directories.find((d) => d.volume === 'config')!;
    expect(config.kind).toBe('files');
    expect(Object.keys(config.files!).sort()).toStrictEqual(['pg_hba.conf', 'postgresql.conf', 'probe.sh', 'start.sh']);
    expect(config.files!['start.sh'].mode).toBe(0o444);
    const tls = rendered.directories.find((d) => d.volume === 'tls')!;
    expect(tls.files!['tls.key']).toStrictEqual({ content: 'KEY', mode: 0o440 });
    expect(tls.group).toBe(999);
    expect(rendered.directories.find((d) => d.volume === 'run')).toMatchObject({ kind: 'empty', group: 999 });
    expect(pod.spec.volumes.find((v: any) => v.name === 'config')).toStrictEqual({ name: 'config', hostPath: { path: '/tmp/rehearse-x/pods/wal-postgres-1/volumes/config', type: 'Directory' } });
  });

  it('leaves out what podman cannot take, and says so for each field: ports, long annotations, restartPolicy, probes (played instead)', () => {
    for (const c of [...pod.spec.containers, ...pod.spec.initContainers]) expect(c).not.toHaveProperty('ports');
    expect(pod.metadata.annotations).not.toHaveProperty('archived-postgres/config-sha256');
    expect(pod.spec.restartPolicy).toBe('OnFailure');
    expect(pod.spec.hostAliases).toStrictEqual([
      { ip: '10.89.1.10', hostnames: ['wal-postgres-0.wal-postgres-pods'] },
      { ip: '10.89.1.11', hostnames: ['wal-postgres-1.wal-postgres-pods'] },
    ]);
    const fields = rendered.adaptations.map((a) => a.field.replace(/^StatefulSet\/wal-postgres /, ''));
    expect(fields).toEqual(expect.arrayContaining([
      'spec.template.spec.containers[*].ports',
      'spec.template.metadata.annotations[archived-postgres/config-sha256]',
      'spec.template.spec.restartPolicy',
      'spec.template.spec.containers[*].readinessProbe',
      'spec.template.spec.containers[*].env[ARCHIVER_S3_ENDPOINT]',
      'spec.template.spec.affinity',
      'spec.template.spec.securityContext.fsGroup',
    ]));
    for (const a of rendered.adaptations) expect(a.what.length).toBeGreaterThan(20);
    expect(rendered.probes.map((p) => `${p.container} ${p.kind} ${p.periodSeconds}x${p.failureThreshold}`)).toStrictEqual(['postgres startup 10x360', 'postgres readiness 10x3', 'postgres liveness 10x6']);
  });

  it('refuses a field it does not know, naming it, rather than dropping it', () => {
    const changed = structuredClone(statefulSet);
    changed.spec.template.spec.containers[0].lifecycle = { preStop: { exec: { command: ['true'] } } };
    expect(() => renderStatefulSetPod(changed, 0, objects, ENV)).toThrow(RenderingError);
    expect(() => renderStatefulSetPod(changed, 0, objects, ENV)).toThrow('StatefulSet/wal-postgres spec.template.spec.containers[postgres].lifecycle: a field the rehearsal does not understand');
    const volume = structuredClone(statefulSet);
    volume.spec.template.spec.volumes.push({ name: 'nfs', nfs: { server: 'x', path: '/' } });
    expect(() => renderStatefulSetPod(volume, 0, objects, ENV)).toThrow('spec.template.spec.volumes[nfs].nfs: a volume source the rehearsal does not understand');
  });

  it('refuses a Secret the fixture does not hold, naming it', () => {
    const { 'wal-postgres-tls': _tls, ...withoutTls } = SECRETS;
    expect(() => renderStatefulSetPod(statefulSet, 0, objects, { ...ENV, secrets: withoutTls })).toThrow("volumes[tls].secret.secretName: the rehearsal's fixture has no Secret wal-postgres-tls");
  });
});

describe("the WipeOut Job's Pod", () => {
  const copy = objectsOf('dev/demo/wal-postgres-pitr');
  const job = copy.find((o) => o.kind === 'Job')!;

  it('needs a Kubernetes API: it mounts the token there and reaches it on the host network', () => {
    expect(() => renderJobPod(job, copy, ENV)).toThrow('automountServiceAccountToken: the pod needs a Kubernetes API');
    const rendered = renderJobPod(job, copy, { ...ENV, hosts: {}, api: { host: '127.0.0.1', port: 6443, serviceAccountDir: '/tmp/sa' } });
    const wipeout = rendered.pod.spec.containers[0];
    expect(rendered.pod.spec.hostNetwork).toBe(true);
    expect(rendered.pod.spec.restartPolicy).toBe('Never');
    expect(wipeout.command).toStrictEqual(job.spec.template.spec.containers[0].command);
    expect(envOf(wipeout)).toMatchObject({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '6443' });
    expect(wipeout.volumeMounts).toContainEqual({ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true });
  });
});

describe('segmentRange', () => {
  it('lists the segments between two names, across a log file boundary', () => {
    expect(segmentRange('0000000100000000000000FE', '000000010000000100000001')).toStrictEqual([
      '0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000', '000000010000000100000001',
    ]);
  });
});
