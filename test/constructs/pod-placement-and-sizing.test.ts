/**
 * What a reviewer checks on the pod besides its containers' commands: where the members run
 * (pod-placement.ts), what PostgreSQL's memory is sized from (memory-settings.ts), how much of the
 * node's disk the pod may fill, and when the kubelet pulls the images (image-pull.ts).
 */
import { describe, expect, it } from 'vitest';
import { MemberSpread, memorySettingsFor } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { container, databaseChart, find, postgresContainer, seedProps, synthDatabase } from './fixtures';

const MEMBERS = { matchLabels: { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' } };

function podSpec(props = seedProps()): any {
  return find(synthDatabase(props).objects, 'StatefulSet', 'wal-postgres').spec.template.spec;
}

function conf(props = seedProps()): string {
  return find(synthDatabase(props).objects, 'ConfigMap', 'wal-postgres-config').data!['postgresql.conf'];
}

describe('where the members run', () => {
  it('by default prefers a node without another member, and spreads over zones as a preference', () => {
    const spec = podSpec();
    expect(spec.affinity).toStrictEqual({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { labelSelector: MEMBERS, topologyKey: 'kubernetes.io/hostname' } }],
      },
    });
    expect(spec.topologySpreadConstraints).toStrictEqual([
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: MEMBERS },
    ]);
    expect(spec.nodeSelector).toBeUndefined();
  });

  it('never puts two members on one node with MemberSpread.REQUIRED', () => {
    expect(podSpec(seedProps({ placement: { spread: MemberSpread.REQUIRED } })).affinity).toStrictEqual({
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: MEMBERS, topologyKey: 'kubernetes.io/hostname' }] },
    });
  });

  it('leaves scheduling to the cluster with MemberSpread.NONE, and takes a node selector and tolerations', () => {
    const tolerations = [{ key: 'dedicated', operator: 'Equal', value: 'database', effect: 'NoSchedule' }];
    const spec = podSpec(seedProps({ placement: { spread: MemberSpread.NONE, nodeSelector: { 'node-role.example.com/database': 'true' }, tolerations } }));
    expect(spec.affinity).toBeUndefined();
    expect(spec.topologySpreadConstraints).toBeUndefined();
    expect(spec.nodeSelector).toStrictEqual({ 'node-role.example.com/database': 'true' });
    expect(spec.tolerations).toStrictEqual(tolerations);
  });

  it('reports an unknown spread and malformed node labels, with the fix', () => {
    const { app } = databaseChart(seedProps({ placement: { spread: 'anywhere' as MemberSpread, nodeSelector: { 'bad key!': 'x', zone: 'not a value' } } }));
    expect(collectValidationErrors(app)).toStrictEqual([
      '[test/wal-postgres] placement.spread: "anywhere" is not a spread: use MemberSpread.PREFERRED (the default), MemberSpread.REQUIRED or MemberSpread.NONE',
      '[test/wal-postgres] placement.nodeSelector: "bad key!" is not a label key: write [prefix/]name, e.g. "node-role.example.com/database"',
      '[test/wal-postgres] placement.nodeSelector["zone"]: "not a value" is not a label value: at most 63 letters, digits, \'-\', \'_\' and \'.\', e.g. "true"',
    ]);
  });
});

describe('PostgreSQL\'s memory, sized from the container\'s', () => {
  it('gives shared_buffers a quarter, effective_cache_size half, maintenance_work_mem a sixteenth (64MB to 2GB)', () => {
    expect(memorySettingsFor(2 ** 30)).toStrictEqual({ sharedBuffersMb: 256, effectiveCacheSizeMb: 512, maintenanceWorkMemMb: 64, sharedMemoryVolumeMib: 128 });
    expect(memorySettingsFor(16 * 2 ** 30)).toStrictEqual({ sharedBuffersMb: 4096, effectiveCacheSizeMb: 8192, maintenanceWorkMemMb: 1024, sharedMemoryVolumeMib: 1024 });
    expect(memorySettingsFor(64 * 2 ** 30).maintenanceWorkMemMb).toBe(2048);
    expect(memorySettingsFor(256 * 2 ** 20)).toStrictEqual({ sharedBuffersMb: 64, effectiveCacheSizeMb: 128, maintenanceWorkMemMb: 64, sharedMemoryVolumeMib: 64 });
  });

  it('renders them from the memory limit (which the request is unless given), and the /dev/shm volume beside', () => {
    expect(conf()).toContain("shared_buffers = '256MB'\neffective_cache_size = '512MB'\nmaintenance_work_mem = '64MB'\n");
    const big = seedProps({ resources: { requests: { memory: '4Gi' }, limits: { memory: '8Gi' } } });
    expect(conf(big)).toContain("shared_buffers = '2048MB'\neffective_cache_size = '4096MB'\nmaintenance_work_mem = '512MB'\n");
    const spec = podSpec(big);
    expect(spec.volumes.find((v: any) => v.name === 'shm')).toStrictEqual({ name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '1024Mi' } });
    expect(spec.containers[0].volumeMounts).toContainEqual({ name: 'shm', mountPath: '/dev/shm' });
  });

  it('lets config.addSetting() replace them (the later line wins), unlike the settings archiving depends on', () => {
    const { app, db } = databaseChart(seedProps());
    db.config.addSetting('shared_buffers', '3GB');
    expect(collectValidationErrors(app)).toStrictEqual([]);
    expect(db.config.files['postgresql.conf']).toMatch(/shared_buffers = '256MB'[\s\S]*shared_buffers = '3GB'/);
    expect(db.config.managedSettings).not.toContain('shared_buffers');
    expect(db.config.managedSettings).toContain('archive_command');
  });

  it('refuses less memory than PostgreSQL needs, naming the field given', () => {
    const { app } = databaseChart(seedProps({ resources: { limits: { memory: '128Mi' } } }));
    expect(collectValidationErrors(app)).toStrictEqual([
      '[test/wal-postgres] resources.limits.memory: "128Mi" is less than the 256Mi PostgreSQL needs here (32 MB of shared_buffers at the least, a few MB per connection, the memory-backed /dev/shm of parallel queries): the server would be killed for memory under load; give at least "256Mi", e.g. "1Gi"',
    ]);
  });
});

describe('the node\'s disk and the images', () => {
  const { objects } = synthDatabase(seedProps());
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
  const spec = statefulSet.spec.template.spec;

  it('bounds every emptyDir and every container\'s ephemeral storage, so that a runaway file evicts the pod, not the node', () => {
    expect(Object.fromEntries(spec.volumes.filter((v: any) => v.emptyDir).map((v: any) => [v.name, v.emptyDir.sizeLimit]))).toStrictEqual({
      run: '16Mi', tmp: '256Mi', shm: '128Mi', archiver: '256Mi',
    });
    expect(postgresContainer(statefulSet).resources.limits['ephemeral-storage']).toBe('1Gi');
    expect(container(statefulSet, 'archiver').resources.limits['ephemeral-storage']).toBe('512Mi');
  });

  it('says when every image is pulled: IfNotPresent, so that a registry outage never stops a restart', () => {
    const containers = [...spec.initContainers, ...spec.containers];
    expect(containers.map((c: any) => `${c.name} ${c.imagePullPolicy}`)).toStrictEqual([
      'install-archiver IfNotPresent', 'postgres IfNotPresent', 'archiver IfNotPresent',
    ]);
  });

  it('shows a start that stops with a reason in kubectl describe: the log\'s end is the termination message', () => {
    expect(postgresContainer(statefulSet).terminationMessagePolicy).toBe('FallbackToLogsOnError');
  });
});
