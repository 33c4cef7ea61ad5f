/**
 * PodRoleLabel (constructs/pod-role.ts): what lets each database pod's `archiver` sidecar label
 * its own pod `archived-postgres/role: primary|standby` — a Role limited to the StatefulSet's pods
 * by name, bound to the database's ServiceAccount, and the token mounted in the sidecar only. That
 * the sidecar, with this Role, labels the right pod is specified in
 * test/archiver/daemon/role-label.test.ts (real PostgreSQL, a mock of the Kubernetes API).
 */
import { describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ROLE_LABEL_VERBS, SERVICE_ACCOUNT_DIR } from '../../contract';
import { SIDECAR_TOKEN_VOLUME, podRoleRules } from '../../constructs/pod-role';
import { container, envOf, find, seedProps, synthDatabase } from './fixtures';

describe('PodRoleLabel, given the seed example (2 members)', () => {
  const { db, objects } = synthDatabase(seedProps());
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
  const pod = statefulSet.spec.template.spec;

  it('renders a Role that may only get and patch the StatefulSet\'s own pods, by name', () => {
    expect(find(objects, 'Role', 'wal-postgres')).toStrictEqual({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'wal-postgres', namespace: 'demo', labels: db.labels },
      rules: [{ apiGroups: [''], resources: ['pods'], resourceNames: ['wal-postgres-0', 'wal-postgres-1'], verbs: ['get', 'patch'] }],
    });
    expect(ROLE_LABEL_VERBS).toStrictEqual(['get', 'patch']);
  });

  it('binds it to the database\'s ServiceAccount, which still mounts no token by itself', () => {
    expect(find(objects, 'RoleBinding', 'wal-postgres')).toStrictEqual({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'wal-postgres', namespace: 'demo', labels: db.labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'wal-postgres' },
      subjects: [{ kind: 'ServiceAccount', name: 'wal-postgres', namespace: 'demo' }],
    });
    expect(pod.serviceAccountName).toBe('wal-postgres');
    expect(find(objects, 'ServiceAccount', 'wal-postgres').automountServiceAccountToken).toBe(false);
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('gives the token to the archiver sidecar only, where the kubelet would mount it: token, CA, namespace', () => {
    expect(pod.volumes.find((v: any) => v.name === SIDECAR_TOKEN_VOLUME)).toStrictEqual({
      name: 'archiver-api-token',
      projected: {
        defaultMode: 0o644,
        sources: [
          { serviceAccountToken: { path: 'token', expirationSeconds: 3600 } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
        ],
      },
    });
    const mounting = [...pod.initContainers, ...pod.containers].filter((c: any) => (c.volumeMounts ?? []).some((m: any) => m.name === SIDECAR_TOKEN_VOLUME));
    expect(mounting.map((c: any) => c.name)).toStrictEqual(['archiver']);
    expect(container(statefulSet, 'archiver').volumeMounts).toContainEqual({ name: 'archiver-api-token', mountPath: SERVICE_ACCOUNT_DIR, readOnly: true });
    expect(envOf(container(statefulSet, 'archiver'))[ARCHIVER_ENV.roleLabel]).toBe('on');
    expect(envOf(container(statefulSet, 'postgres'))).not.toHaveProperty([ARCHIVER_ENV.roleLabel]);
  });

  it('pins the construct ids of the Role and RoleBinding', () => {
    expect(db.podRole.role.node.path).toBe('test/wal-postgres/PodRole/Role');
    expect(db.podRole.roleBinding.node.path).toBe('test/wal-postgres/PodRole/RoleBinding');
  });
});

describe('the Role\'s pod names follow replicas', () => {
  it.each([
    [1, ['orders-0']],
    [3, ['orders-0', 'orders-1', 'orders-2']],
  ])('replicas %i: %j', (replicas, names) => {
    const { objects } = synthDatabase(seedProps({ replicas }), 'orders');
    expect(find(objects, 'Role', 'orders').rules[0].resourceNames).toStrictEqual(names);
  });

  it('never renders an empty resourceNames, which RBAC would read as every pod of the namespace', () => {
    for (const replicas of [0, -1, 1.5, Number.NaN]) expect(podRoleRules('orders', replicas)[0].resourceNames).toStrictEqual(['orders-0']);
  });
});
