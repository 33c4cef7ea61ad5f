/**
 * Bootstrap (constructs/bootstrap.ts): what pod 0 does with an empty data volume, rendered as the
 * PostgreSQL container's environment (ARCHIVER_BOOTSTRAP*), and its synth-time checks.
 */
import { Chart, Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { ArchivedPostgres, ArchivedPostgresProps, ArchiveStorage, Bootstrap, RecoveryTarget } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { container, databaseChart, envOf, find, seedProps, synthDatabase, testApp } from './fixtures';

/** The ARCHIVER_BOOTSTRAP* variables of each container of the seed database's pod. */
function bootstrapEnv(props: Partial<ArchivedPostgresProps>, containerName = 'postgres'): Record<string, unknown> {
  const statefulSet = find(synthDatabase(seedProps(props)).objects, 'StatefulSet', 'wal-postgres');
  return Object.fromEntries(Object.entries(envOf(container(statefulSet, containerName))).filter(([name]) => name.startsWith('ARCHIVER_BOOTSTRAP')));
}

const s3WithPrefix = ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'http://minio.storage.svc:9000', bucket: 'pg-archive', prefix: 'team-a' });

describe('Bootstrap, rendered as the PostgreSQL container\'s environment', () => {
  it('restores from the database\'s own archive by default', () => {
    expect(bootstrapEnv({})).toStrictEqual({ ARCHIVER_BOOTSTRAP: 'restore' });
    expect(bootstrapEnv({ bootstrap: Bootstrap.restore() })).toStrictEqual({ ARCHIVER_BOOTSTRAP: 'restore' });
  });

  it('initdb: refuses a non-empty archive instead of restoring', () => {
    expect(bootstrapEnv({ bootstrap: Bootstrap.initdb() })).toStrictEqual({ ARCHIVER_BOOTSTRAP: 'initdb' });
  });

  it('fromArchive: another database\'s archive in the same bucket and prefix, to a point in time', () => {
    // GIVEN
    const bootstrap = Bootstrap.fromArchive({ namespace: 'prod', name: 'orders', target: RecoveryTarget.time('2026-11-30T10:00:00Z'), inclusive: false, timeline: 'current' });
    // THEN
    expect(bootstrapEnv({ archiver: { storage: s3WithPrefix }, bootstrap })).toStrictEqual({
      ARCHIVER_BOOTSTRAP: 'restore',
      ARCHIVER_BOOTSTRAP_SOURCE: 's3://pg-archive/team-a/kubedb/prod/orders/archive',
      ARCHIVER_BOOTSTRAP_TARGET: 'time:2026-11-30T10:00:00Z',
      ARCHIVER_BOOTSTRAP_TARGET_INCLUSIVE: 'false',
      ARCHIVER_BOOTSTRAP_TARGET_TIMELINE: 'current',
    });
  });

  it('fromArchive renders only what is set, and reads the source with the database\'s own credentials (GCS)', () => {
    // GIVEN
    const storage = ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' });
    // WHEN
    const { objects } = synthDatabase(seedProps({ archiver: { storage }, bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'orders' }) }));
    const postgres = envOf(container(find(objects, 'StatefulSet', 'wal-postgres'), 'postgres'));
    // THEN
    expect(Object.fromEntries(Object.entries(postgres).filter(([name]) => name.startsWith('ARCHIVER_BOOTSTRAP')))).toStrictEqual({
      ARCHIVER_BOOTSTRAP: 'restore',
      ARCHIVER_BOOTSTRAP_SOURCE: 'gs://kubedb/kubedb/demo/orders/archive',
    });
    // Its own archive stays its own: the source is read, never written.
    expect(postgres.ARCHIVER_REPOSITORY).toBe('gs://kubedb/kubedb/demo/wal-postgres/archive');
    expect(postgres.GOOGLE_PROJECT_ID).toStrictEqual({ secretKeyRef: { name: 'gcs-secret', key: 'GOOGLE_PROJECT_ID', optional: true } });
  });

  it.each([
    [RecoveryTarget.latest(), 'latest'],
    [RecoveryTarget.immediate(), 'immediate'],
    [RecoveryTarget.lsn('0/3000028'), 'lsn:0/3000028'],
    [RecoveryTarget.xid(1234), 'xid:1234'],
    [RecoveryTarget.restorePoint('before-migration'), 'name:before-migration'],
  ])('fromArchive renders the target %o as %j', (target, rendered) => {
    expect(bootstrapEnv({ bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target, timeline: 2 }) })).toMatchObject({
      ARCHIVER_BOOTSTRAP_TARGET: rendered,
      ARCHIVER_BOOTSTRAP_TARGET_TIMELINE: '2',
    });
  });

  it('gives the sidecar none of it: only the start script bootstraps', () => {
    expect(bootstrapEnv({ bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'orders' }) }, 'archiver')).toStrictEqual({});
  });

  it('exposes the resolved bootstrap and the source\'s location', () => {
    const { db } = synthDatabase(seedProps({ archiver: { storage: s3WithPrefix }, bootstrap: Bootstrap.fromArchive({ namespace: 'prod', name: 'orders' }) }));
    expect(db.bootstrap.mode).toBe('restore');
    expect(db.bootstrap.sourceArchivePath(db.archiveStorage)).toBe('team-a/kubedb/prod/orders/archive');
    expect(synthDatabase(seedProps()).db.bootstrap.source).toBeUndefined();
  });
});

describe('Bootstrap validation', () => {
  /** The validation errors of one database with `bootstrap`. */
  const errorsOf = (bootstrap: Bootstrap, props: Partial<ArchivedPostgresProps> = {}) => {
    const { app } = databaseChart(seedProps({ bootstrap, ...props }));
    return collectValidationErrors(app);
  };

  it('accepts every kind of bootstrap and target', () => {
    for (const bootstrap of [Bootstrap.restore(), Bootstrap.initdb(), Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.xid(1234), inclusive: true, timeline: 'latest' })]) {
      expect(errorsOf(bootstrap)).toStrictEqual([]);
    }
  });

  it('fails on a source that is the database\'s own archive', () => {
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'wal-postgres' }))).toStrictEqual([
      '[test/wal-postgres] bootstrap.fromArchive: the source s3://kubedb/kubedb/demo/wal-postgres/archive is this database\'s own archive: name another database\'s namespace and name, or use Bootstrap.restore() (the default) to restore from the own archive',
    ]);
  });

  it('fails on a time without a zone', () => {
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.time('2026-11-30T10:00:00') }))).toStrictEqual([
      '[test/wal-postgres] bootstrap.fromArchive.target: RecoveryTarget.time("2026-11-30T10:00:00") has no time zone: PostgreSQL would read it in the server\'s zone; add one, e.g. "2026-11-30T10:00:00Z"',
    ]);
  });

  it('fails on a time that does not parse', () => {
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.time('30.11.2026 10:00') }))).toStrictEqual([
      '[test/wal-postgres] bootstrap.fromArchive.target: RecoveryTarget.time("30.11.2026 10:00") does not parse: write an ISO 8601 time with a zone, e.g. "2026-11-30T10:00:00Z" or "2026-11-30T11:00:00+01:00"',
    ]);
  });

  it('fails on a malformed LSN and a malformed transaction id', () => {
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.lsn('3000028') }))).toStrictEqual([
      '[test/wal-postgres] bootstrap.fromArchive.target: RecoveryTarget.lsn("3000028") is not an LSN: write two hexadecimal numbers of up to 8 digits as PostgreSQL prints them (pg_current_wal_lsn()), e.g. "0/3000028"',
    ]);
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.xid(-1) }))).toStrictEqual([
      '[test/wal-postgres] bootstrap.fromArchive.target: RecoveryTarget.xid(-1) is not a transaction id: give a whole number of at least 3 as txid_current() returns it, e.g. 1234',
    ]);
  });

  it('fails on an empty restore point name', () => {
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.restorePoint('') }))).toStrictEqual([
      '[test/wal-postgres] bootstrap.fromArchive.target: RecoveryTarget.restorePoint("") has an empty name: give the name passed to pg_create_restore_point(), e.g. "before-migration"',
    ]);
  });

  it('fails on an invalid source namespace or name, inclusive without a target it applies to, and an invalid timeline', () => {
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'Prod', name: '1orders', inclusive: false, timeline: 0 }))).toStrictEqual([
      expect.stringContaining('[test/wal-postgres] bootstrap.fromArchive.namespace: "Prod" is not a valid namespace'),
      expect.stringContaining('[test/wal-postgres] bootstrap.fromArchive.name: "1orders" is not a valid name'),
      '[test/wal-postgres] bootstrap.fromArchive.inclusive: applies to a time, LSN or transaction target only, and the target is latest: remove inclusive, or give RecoveryTarget.time(...), .lsn(...) or .xid(...)',
      '[test/wal-postgres] bootstrap.fromArchive.timeline: 0 is not a timeline: use "latest" (the default), "current" (the backup\'s own) or a timeline\'s number of at least 1, e.g. 2',
    ]);
    expect(errorsOf(Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target: RecoveryTarget.restorePoint('p'), inclusive: true }))).toStrictEqual([
      expect.stringContaining('bootstrap.fromArchive.inclusive: applies to a time, LSN or transaction target only, and the target is name'),
    ]);
  });

  it('fails on a bootstrap that is not a Bootstrap (plain JavaScript)', () => {
    expect(errorsOf({ mode: 'restore' } as unknown as Bootstrap)).toStrictEqual([
      '[test/wal-postgres] bootstrap: [object Object] is not a Bootstrap: use Bootstrap.restore() (the default), Bootstrap.initdb() or Bootstrap.fromArchive({...})',
    ]);
  });
});

describe('every bad backup and bootstrap input of an app, reported by one synth', () => {
  it('fails with each problem, its construct path, field and fix', () => {
    // GIVEN
    const app = testApp();
    const chart = new Chart(app, 'test', { namespace: 'demo', disableResourceNameHashes: true });
    const source = (target: RecoveryTarget) => Bootstrap.fromArchive({ namespace: 'demo', name: 'orders', target });
    const databases: [string, Partial<ArchivedPostgresProps>][] = [
      ['bad-schedule', { backups: { schedule: '0 2 * * * *' } }],
      ['bad-retention', { backups: { schedule: '0 2 * * *', retention: { count: 0, window: Duration.minutes(5) } } }],
      ['bad-standby', { replicas: 1, backups: { from: 'standby' } }],
      ['zoneless', { bootstrap: source(RecoveryTarget.time('2026-11-30 10:00')) }],
      ['unparsable', { bootstrap: source(RecoveryTarget.time('2026-11-31T10:00:00Z')) }],
      ['bad-lsn', { bootstrap: source(RecoveryTarget.lsn('0-3000028')) }],
      ['bad-xid', { bootstrap: source(RecoveryTarget.xid(1.5)) }],
      ['empty-point', { bootstrap: source(RecoveryTarget.restorePoint('')) }],
      ['itself', { bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'itself' }) }],
    ];
    for (const [id, props] of databases) new ArchivedPostgres(chart, id, seedProps(props));
    // WHEN
    const errors = collectValidationErrors(app);
    // THEN
    expect(errors.map((e) => e.replace(/: .*$/, ''))).toStrictEqual([
      '[test/bad-schedule] backups.schedule',
      '[test/bad-retention] backups.retention.count',
      '[test/bad-retention] backups.retention.window',
      '[test/bad-standby] backups.from',
      '[test/zoneless] bootstrap.fromArchive.target',
      '[test/unparsable] bootstrap.fromArchive.target',
      '[test/bad-lsn] bootstrap.fromArchive.target',
      '[test/bad-xid] bootstrap.fromArchive.target',
      '[test/empty-point] bootstrap.fromArchive.target',
      '[test/itself] bootstrap.fromArchive',
    ]);
    expect(errors[4]).toContain('has no time zone');
    expect(errors[5]).toContain('its day 31 is outside 1-30');
    expect(errors[6]).toContain('is not an LSN');
    expect(errors[7]).toContain('RecoveryTarget.xid(1.5) is not a transaction id');
    expect(errors[8]).toContain('has an empty name');
    expect(errors[9]).toContain('is this database\'s own archive');
  });
});

