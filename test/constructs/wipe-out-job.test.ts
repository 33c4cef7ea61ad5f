/**
 * WipeOutJob (constructs/wipe-out-job.ts): under TerminationPolicy.WIPE_OUT, the Argo CD
 * PostDelete hook that deletes the database's archive once its StatefulSet and pod 0 are gone,
 * with its ServiceAccount, and the Role and RoleBinding that let it ask the Kubernetes API. That
 * the archiver run with its command and environment empties exactly this archive, and only once
 * the database is gone, is specified in wipe-out-job.real-archiver.test.ts and
 * wipe-out-job.only-when-gone.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ArchiveStorage, TerminationPolicy, wipeOutCommand } from '../../constructs';
import { KubeObject, container, find, seedProps, synthDatabase } from './fixtures';

const wipeOutOf = (objects: KubeObject[], name = 'wal-postgres-wipeout') => ({
  serviceAccount: find(objects, 'ServiceAccount', name),
  role: find(objects, 'Role', name),
  roleBinding: find(objects, 'RoleBinding', name),
  job: find(objects, 'Job', name),
});

describe('WipeOutJob, given the seed example with TerminationPolicy.WIPE_OUT', () => {
  const { db, objects } = synthDatabase(seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }));
  const { job, serviceAccount, role, roleBinding } = wipeOutOf(objects);
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');

  it('synthesizes the same objects as the reviewed snapshot', () => {
    expect([serviceAccount, role, roleBinding, job]).toMatchSnapshot();
  });

  it('renders a ServiceAccount, Role, RoleBinding and Job named {name}-wipeout after the database\'s objects, with pinned construct ids', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).slice(-4)).toStrictEqual([
      'ServiceAccount/wal-postgres-wipeout',
      'Role/wal-postgres-wipeout',
      'RoleBinding/wal-postgres-wipeout',
      'Job/wal-postgres-wipeout',
    ]);
    expect(db.apiObjects.map((o) => o.node.path).slice(-4)).toStrictEqual([
      'test/wal-postgres/WipeOut/ServiceAccount',
      'test/wal-postgres/WipeOut/Role',
      'test/wal-postgres/WipeOut/RoleBinding',
      'test/wal-postgres/WipeOut/Job',
    ]);
    expect(db.wipeOut?.job.name).toBe('wal-postgres-wipeout');
  });

  it('makes all four Argo CD PostDelete hooks (the Role and RoleBinding exist when the Job runs), deleted once they succeed, that Flux never applies', () => {
    const annotations = {
      'argocd.argoproj.io/hook': 'PostDelete',
      'argocd.argoproj.io/hook-delete-policy': 'HookSucceeded',
      'kustomize.toolkit.fluxcd.io/reconcile': 'disabled',
    };
    for (const object of [serviceAccount, role, roleBinding, job]) expect(object.metadata.annotations).toStrictEqual(annotations);
    // The database's own objects are no hooks.
    for (const object of objects.slice(0, -4)) expect(object.metadata.annotations?.['argocd.argoproj.io/hook']).toBeUndefined();
  });

  it('runs `archiver delete everything --confirm --only-when-gone demo/wal-postgres` from the archiver image on this database\'s archive, with the storage Secret by reference', () => {
    const [wipeout] = job.spec.template.spec.containers;
    expect(job.spec.template.spec.containers).toHaveLength(1);
    expect(wipeout.command).toStrictEqual(['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'delete', 'everything', '--confirm', '--only-when-gone', 'demo/wal-postgres']);
    expect(wipeout.command).toStrictEqual(wipeOutCommand('demo', statefulSet.metadata.name));
    expect(wipeout.image).toBe(container(statefulSet, 'archiver').image);
    const env = Object.fromEntries(wipeout.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toStrictEqual({
      ARCHIVER_SPOOL: '/var/lib/postgresql/data/archiver-spool',
      ARCHIVER_REPOSITORY: 's3://kubedb/kubedb/demo/wal-postgres/archive',
      ARCHIVER_S3_ENDPOINT: 'https://s3.amazonaws.com',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: { secretKeyRef: { name: 's3-secret', key: 'AWS_ACCESS_KEY_ID', optional: true } },
      AWS_SECRET_ACCESS_KEY: { secretKeyRef: { name: 's3-secret', key: 'AWS_SECRET_ACCESS_KEY', optional: true } },
    });
  });

  it('may get the database\'s StatefulSet and its pod 0, by name, and nothing else', () => {
    expect(role.rules).toStrictEqual([
      { apiGroups: ['apps'], resources: ['statefulsets'], resourceNames: ['wal-postgres'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods'], resourceNames: ['wal-postgres-0'], verbs: ['get'] },
    ]);
    expect(roleBinding.roleRef).toStrictEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'wal-postgres-wipeout' });
    expect(roleBinding.subjects).toStrictEqual([{ kind: 'ServiceAccount', name: 'wal-postgres-wipeout', namespace: 'demo' }]);
    expect(role.metadata.namespace).toBe('demo');
    expect(roleBinding.metadata.namespace).toBe('demo');
  });

  it('runs with its own ServiceAccount, its token mounted in the Job\'s pod only, and the restricted security settings of the database\'s pods', () => {
    const pod = job.spec.template.spec;
    expect(serviceAccount.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe('wal-postgres-wipeout');
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.securityContext).toStrictEqual(statefulSet.spec.template.spec.securityContext);
    expect(pod.containers[0].securityContext).toStrictEqual(container(statefulSet, 'archiver').securityContext);
    // The sidecar's CPU and memory; the sidecar's ephemeral storage is for a long-running container's logs.
    const { 'ephemeral-storage': _r, ...sidecarRequests } = container(statefulSet, 'archiver').resources.requests;
    const { 'ephemeral-storage': _l, ...sidecarLimits } = container(statefulSet, 'archiver').resources.limits;
    expect(pod.containers[0].resources).toStrictEqual({ requests: sidecarRequests, limits: sidecarLimits });
    // The spool's directory on a volume of its own: the root filesystem is read-only.
    expect(pod.containers[0].volumeMounts).toStrictEqual([{ name: 'spool', mountPath: '/var/lib/postgresql/data' }]);
    expect(pod.volumes).toStrictEqual([{ name: 'spool', emptyDir: {} }]);
  });

  it('retries a few times, and is removed a day after it finished', () => {
    expect(job.spec.backoffLimit).toBe(4);
    expect(job.spec.ttlSecondsAfterFinished).toBe(86400);
  });

  it('has none of the database\'s selector labels on its pod: no Service or disruption budget selects it', () => {
    const podLabels = job.spec.template.metadata.labels;
    const selected = Object.entries(db.selectorLabels).every(([key, value]) => podLabels[key] === value);
    expect(selected).toBe(false);
    expect(podLabels).toStrictEqual({
      'app.kubernetes.io/name': 'postgres-wipeout',
      'app.kubernetes.io/instance': 'wal-postgres',
      'app.kubernetes.io/component': 'wipeout',
      'app.kubernetes.io/managed-by': 'cdk8s',
    });
    expect(job.metadata.labels).toStrictEqual(podLabels);
  });
});

describe('WipeOutJob options', () => {
  it('is rendered under WipeOut only', () => {
    for (const terminationPolicy of [undefined, TerminationPolicy.DELETE, TerminationPolicy.HALT, TerminationPolicy.DO_NOT_TERMINATE]) {
      const { db, objects } = synthDatabase(seedProps({ terminationPolicy }));
      expect(objects.filter((o) => o.kind === 'Job' || o.metadata.name.endsWith('-wipeout'))).toStrictEqual([]);
      expect(db.wipeOut).toBeUndefined();
    }
  });

  it('deletes this database\'s location only, and waits for this database only: the prefix, namespace and name of the database', () => {
    const { objects } = synthDatabase(seedProps({
      namespace: 'prod',
      terminationPolicy: TerminationPolicy.WIPE_OUT,
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', bucket: 'backups', prefix: 'eu/west' }) },
    }), 'orders');
    const { job, role, roleBinding } = wipeOutOf(objects, 'orders-wipeout');
    expect(job.metadata.namespace).toBe('prod');
    expect(job.spec.template.spec.containers[0].env).toContainEqual({ name: 'ARCHIVER_REPOSITORY', value: 's3://backups/eu/west/kubedb/prod/orders/archive' });
    expect(job.spec.template.spec.containers[0].command.slice(-2)).toStrictEqual(['--only-when-gone', 'prod/orders']);
    expect(role.rules.map((rule: any) => `${rule.resources[0]}/${rule.resourceNames[0]}`)).toStrictEqual(['statefulsets/orders', 'pods/orders-0']);
    expect(roleBinding.subjects).toStrictEqual([{ kind: 'ServiceAccount', name: 'orders-wipeout', namespace: 'prod' }]);
  });

  it('mounts the GCS key from the storage Secret, as the sidecar does', () => {
    const { objects } = synthDatabase(seedProps({
      terminationPolicy: TerminationPolicy.WIPE_OUT,
      archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' }) },
    }));
    const pod = find(objects, 'Job', 'wal-postgres-wipeout').spec.template.spec;
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    expect(pod.volumes).toContainEqual(statefulSet.spec.template.spec.volumes.find((v: any) => v.name === 'gcs-key'));
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'gcs-key', mountPath: '/var/run/secrets/archiver/gcs', readOnly: true });
  });

  it('is synthesized identically every time (stable names, deterministic YAML)', () => {
    const once = () => wipeOutOf(synthDatabase(seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT })).objects);
    expect(once()).toStrictEqual(once());
  });
});
