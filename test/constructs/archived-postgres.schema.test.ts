/** Every object ArchivedPostgres (constructs/archived-postgres.ts) and the app render, against the Kubernetes 1.27 schemas. */
import { describe, expect, it } from 'vitest';
import { Testing } from 'cdk8s';
import { buildApp } from '../../app';
import { Duration } from 'cdk8s';
import { ArchiveStorage, Bootstrap, RecoveryTarget, TerminationPolicy } from '../../constructs';
import { KubernetesSchema } from '../../testkit/kubernetes-schema';
import { KubeObject, seedProps, synthDatabase, testOutdir } from './fixtures';

const schema = new KubernetesSchema();

function appObjects(): KubeObject[] {
  const app = buildApp(testOutdir());
  return app.charts.flatMap((chart) => Testing.synth(chart) as KubeObject[]);
}

describe('Every synthesized object validates against the Kubernetes 1.27 schemas (unknown fields are errors)', () => {
  it('the app in app.ts (its custom resources against their CRDs: test/constructs/gitops-delivery.schema.test.ts)', () => {
    const objects = appObjects().filter((o) => schema.knows(o));
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.flatMap((o) => schema.validate(o))).toStrictEqual([]);
  });

  it.each([
    ['S3, defaults', seedProps()],
    ['GCS, DoNotTerminate, custom resources', seedProps({
      archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' }) },
      terminationPolicy: TerminationPolicy.DO_NOT_TERMINATE,
      resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '2', memory: '2Gi' } },
    })],
    ['WipeOut (its Job, ServiceAccount, Role and RoleBinding), backups, a bootstrap from another archive', seedProps({
      terminationPolicy: TerminationPolicy.WIPE_OUT,
      backups: { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(30) }, from: 'standby' },
      bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.time('2026-11-30T10:00:00Z'), inclusive: false, timeline: 2 }),
    })],
    ['WipeOut with GCS', seedProps({
      terminationPolicy: TerminationPolicy.WIPE_OUT,
      archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' }) },
    })],
  ])('a database with %s', (_name, props) => {
    // Its custom resources (the monitoring's) against their CRDs: test/constructs/monitoring.schema.test.ts.
    const objects = synthDatabase(props).objects.filter((o) => schema.knows(o));
    expect(objects.flatMap((o) => schema.validate(o))).toStrictEqual([]);
    if (props.terminationPolicy === TerminationPolicy.WIPE_OUT) {
      expect(objects.filter((o) => o.metadata.name === 'wal-postgres-wipeout').map((o) => o.kind)).toStrictEqual(['ServiceAccount', 'Role', 'RoleBinding', 'Job']);
    }
  });
});

describe('The schema validator catches injected errors', () => {
  const statefulSet = () => structuredClone(synthDatabase(seedProps()).objects.find((o) => o.kind === 'StatefulSet')!);

  it('fails a misspelt field', () => {
    const object = statefulSet();
    object.spec.replcias = 2;
    expect(schema.validate(object)).toStrictEqual(['StatefulSet/wal-postgres: /spec must NOT have additional properties (replcias)']);
  });

  it('fails a wrong type', () => {
    const object = statefulSet();
    object.spec.replicas = 'two';
    expect(schema.validate(object)).toContain('StatefulSet/wal-postgres: /spec/replicas must be integer');
  });

  it('fails a missing required field', () => {
    const object = statefulSet();
    delete object.spec.template.spec.containers[0].name;
    expect(schema.validate(object)).toContain("StatefulSet/wal-postgres: /spec/template/spec/containers/0 must have required property 'name'");
  });

  it('fails an unknown kind', () => {
    expect(schema.validate({ apiVersion: 'apps/v1', kind: 'StatefulSets', metadata: { name: 'x' } })).toStrictEqual([
      'StatefulSets/x: no schema for apiVersion apps/v1 kind StatefulSets',
    ]);
  });
});
