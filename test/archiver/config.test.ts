import { describe, expect, it } from 'vitest';
import { describeConfig, podOrdinal, readBackupSettings, readConfig } from '../../archiver/src/config';
import { ConfigError } from '../../archiver/src/errors';

const s3 = { ARCHIVER_REPOSITORY: 's3://kubedb/kubedb/demo/wal-postgres/archive', AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret/value+1' };

describe('archiver configuration from the environment', () => {
  it('reads the location the constructs render: bucket and prefix from ARCHIVER_REPOSITORY', () => {
    const config = readConfig({ ...s3, ARCHIVER_S3_ENDPOINT: 'http://minio.storage.svc:9000' }, '/var/lib/postgresql/data/pgdata', () => true);
    expect(config.storage).toMatchObject({
      kind: 's3',
      bucket: 'kubedb',
      prefix: 'kubedb/demo/wal-postgres/archive',
      endpoint: 'http://minio.storage.svc:9000',
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: 'AKIAEXAMPLE',
      requestChecksumCalculation: 'WHEN_SUPPORTED',
    });
    expect(config.spool).toBe('/var/lib/postgresql/data/archiver-spool');
    expect(config.compression).toBe('zstd');
  });

  it('uses virtual-hosted style for AWS endpoints and path style for others, unless told', () => {
    expect(readConfig({ ...s3, ARCHIVER_S3_ENDPOINT: 'https://s3.amazonaws.com' }).storage).toMatchObject({ forcePathStyle: false });
    expect(readConfig(s3).storage).toMatchObject({ forcePathStyle: false });
    expect(readConfig({ ...s3, ARCHIVER_S3_ENDPOINT: 'http://127.0.0.1:9000', ARCHIVER_S3_FORCE_PATH_STYLE: 'false' }).storage).toMatchObject({ forcePathStyle: false });
  });

  it('reads GCS and local locations', () => {
    expect(readConfig({ ARCHIVER_REPOSITORY: 'gs://kubedb/team/kubedb/demo/db/archive', GOOGLE_APPLICATION_CREDENTIALS: '/var/run/secrets/archiver/gcs/service-account.json', GOOGLE_PROJECT_ID: 'p' }).storage).toStrictEqual({
      kind: 'gcs',
      bucket: 'kubedb',
      prefix: 'team/kubedb/demo/db/archive',
      projectId: 'p',
      keyFilename: '/var/run/secrets/archiver/gcs/service-account.json',
      apiEndpoint: undefined,
      timeouts: { connectMs: 5000, requestMs: 60000 },
      maxAttempts: 3,
    });
    expect(readConfig({ ARCHIVER_REPOSITORY: 'file:///var/lib/archive' }).storage).toStrictEqual({ kind: 'local', root: '/var/lib/archive' });
    expect(readConfig({ ARCHIVER_REPOSITORY: '/var/lib/archive/' }).storage).toStrictEqual({ kind: 'local', root: '/var/lib/archive' });
  });

  describe('GCS\'s key as a variable (the postgres container\'s: it unsets it before it starts PostgreSQL)', () => {
    const privateKey = '-----BEGIN PRIVATE KEY-----\nMIIEv-not-a-real-key\n-----END PRIVATE KEY-----\n';
    const key = JSON.stringify({ type: 'service_account', project_id: 'from-key', client_email: 'archiver@from-key.iam.gserviceaccount.com', private_key: privateKey });
    const gcs = { ARCHIVER_REPOSITORY: 'gs://kubedb/a', GOOGLE_SERVICE_ACCOUNT_JSON_KEY: key };

    it('reads the key itself before any key file, and its project unless GOOGLE_PROJECT_ID names one', () => {
      const storage = readConfig({ ...gcs, GOOGLE_APPLICATION_CREDENTIALS: '/var/run/secrets/archiver/gcs/service-account.json' }).storage;
      expect(storage).toMatchObject({ kind: 'gcs', credentials: { client_email: 'archiver@from-key.iam.gserviceaccount.com', private_key: privateKey }, projectId: 'from-key' });
      expect(storage).not.toHaveProperty('keyFilename');
      expect(readConfig({ ...gcs, GOOGLE_PROJECT_ID: 'p' }).storage).toMatchObject({ projectId: 'p' });
    });

    it('never shows the key: check prints whose key it is', () => {
      const shown = JSON.stringify(describeConfig(readConfig(gcs)));
      expect(shown).not.toContain('PRIVATE KEY');
      expect(describeConfig(readConfig(gcs)).storage).toMatchObject({ credentials: '(the key of archiver@from-key.iam.gserviceaccount.com, from GOOGLE_SERVICE_ACCOUNT_JSON_KEY)' });
    });

    it.each([
      ['not JSON', `${key.slice(0, 40)}`, 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY: is not JSON (value not shown)'],
      ['JSON without a private key', JSON.stringify({ client_email: 'a@b' }), 'GOOGLE_SERVICE_ACCOUNT_JSON_KEY: is not a service-account key: it needs client_email and private_key (value not shown)'],
    ])('refuses %s, naming the variable and not quoting it', (_what, value, message) => {
      expect(() => readConfig({ ...gcs, GOOGLE_SERVICE_ACCOUNT_JSON_KEY: value })).toThrow(message);
      try {
        readConfig({ ...gcs, GOOGLE_SERVICE_ACCOUNT_JSON_KEY: value });
      } catch (error) {
        expect((error as Error).message).not.toContain(value.slice(2, 20));
      }
    });
  });

  it.each([
    [{}, 'ARCHIVER_REPOSITORY: is not set: give the archive location'],
    [{ ARCHIVER_REPOSITORY: 'ftp://host/x' }, 'ARCHIVER_REPOSITORY: "ftp://host/x" is not a supported location'],
    [{ ARCHIVER_REPOSITORY: 's3:///prefix' }, 'ARCHIVER_REPOSITORY: "s3:///prefix" has no bucket'],
    [{ ARCHIVER_REPOSITORY: 's3://b/a/../c' }, 'ARCHIVER_REPOSITORY: "s3://b/a/../c": its path "a/../c" contains a \'..\' or \'.\' segment'],
    [{ ...s3, AWS_SECRET_ACCESS_KEY: '' }, 'AWS_SECRET_ACCESS_KEY: is not set but AWS_ACCESS_KEY_ID is'],
    [{ ...s3, ARCHIVER_S3_ENDPOINT: 'minio:9000' }, 'ARCHIVER_S3_ENDPOINT: "minio:9000" uses minio:: give an absolute URL'],
    [{ ...s3, ARCHIVER_PUSH_CONCURRENCY: '0' }, 'ARCHIVER_PUSH_CONCURRENCY: "0" is not a whole number from 1 to 64'],
    [{ ...s3, ARCHIVER_DAEMON: 'maybe' }, 'ARCHIVER_DAEMON: "maybe" is not one of on, external, off'],
    [{ ...s3, ARCHIVER_COMPRESSION: 'lz4', ARCHIVER_COMPRESSION_LEVEL: '3' }, 'ARCHIVER_COMPRESSION_LEVEL: lz4 compression has no levels'],
    [{ ...s3, ARCHIVER_COMPRESSION: 'gzip', ARCHIVER_COMPRESSION_LEVEL: '12' }, 'ARCHIVER_COMPRESSION_LEVEL: "12" is not a whole number from 1 to 9'],
  ])('fails, naming the variable, on %j', (env, message) => {
    expect(() => readConfig(env)).toThrow(ConfigError);
    expect(() => readConfig(env)).toThrow(message);
  });

  it('needs the scheme in STORAGE_EMULATOR_HOST, which the GCS library reads itself', () => {
    expect(() => readConfig({ ARCHIVER_REPOSITORY: 'gs://b/p', STORAGE_EMULATOR_HOST: '127.0.0.1:9199' })).toThrow('STORAGE_EMULATOR_HOST: "127.0.0.1:9199" needs its scheme, e.g. http://127.0.0.1:9199');
  });

  it('names the variable of a bad compression', () => {
    expect(() => readConfig({ ...s3, ARCHIVER_COMPRESSION: 'xz' })).toThrow('ARCHIVER_COMPRESSION="xz" is not a compression');
  });

  it('never prints credentials', () => {
    const printed = JSON.stringify(describeConfig(readConfig(s3)));
    expect(printed).not.toContain('AKIAEXAMPLE');
    expect(printed).not.toContain('secret/value+1');
    expect(printed).toContain('"secretAccessKey":"(set)"');
  });

  it('puts the spool beside the data directory: the working directory when it is one, else $PGDATA; else there is none', () => {
    const dataDir = (dir: string) => dir === '/var/lib/postgresql/data/pgdata';
    expect(readConfig(s3, '/var/lib/postgresql/data/pgdata', dataDir).spool).toBe('/var/lib/postgresql/data/archiver-spool');
    expect(readConfig({ ...s3, PGDATA: '/srv/pg/data' }, '/home/me', dataDir).spool).toBe('/srv/pg/archiver-spool');
    expect(readConfig({ ...s3, ARCHIVER_SPOOL: 'spool' }, '/home/me', dataDir).spool).toBe('/home/me/spool');
    // A command run by hand elsewhere has no spool (it works alone) instead of failing on '/archiver-spool'.
    expect(readConfig(s3, '/', dataDir).spool).toBeUndefined();
  });

  it('refuses credentials written into a URL, without repeating them', () => {
    for (const env of [
      { ...s3, ARCHIVER_S3_ENDPOINT: 'http://user:hunter2@minio:9000' },
      { ...s3, ARCHIVER_REPOSITORY: 's3://user:hunter2@bucket/prefix' },
      { ARCHIVER_REPOSITORY: 'gs://user:hunter2@bucket/prefix' },
      { ARCHIVER_REPOSITORY: 'file://user:hunter2@host/var/archive' },
    ]) {
      expect(() => readConfig(env)).toThrow(ConfigError);
      expect(() => readConfig(env)).toThrow(/credentials/);
      try {
        readConfig(env);
      } catch (error) {
        expect((error as Error).message).not.toContain('hunter2');
      }
    }
  });

  it('knows three ways to run the background archiver and names the variable otherwise', () => {
    expect(readConfig(s3).daemon).toBe('on');
    expect(readConfig({ ...s3, ARCHIVER_DAEMON: 'off' }).daemon).toBe('off');
    expect(() => readConfig({ ...s3, ARCHIVER_DAEMON: 'sidecar' })).toThrow('ARCHIVER_DAEMON: "sidecar" is not one of on, external, off');
    expect(() => readConfig({ ...s3, ARCHIVER_DAEMON_IDLE_SECONDS: '-1' })).toThrow('ARCHIVER_DAEMON_IDLE_SECONDS: "-1" is not a whole number from 0 to 604800');
  });
});

describe("the sidecar's base backups from the environment (readBackupSettings)", () => {
  it('reads what the constructs render: the pod, at ready, the UTC schedule, the member, retention', () => {
    expect(
      readBackupSettings({
        POD_NAME: 'wal-postgres-2',
        ARCHIVER_BACKUP_AT_READY: 'off',
        ARCHIVER_BACKUP_SCHEDULE: ' 0  2 * * * ',
        ARCHIVER_BACKUP_FROM: 'standby',
        ARCHIVER_BACKUP_RETAIN: '7',
        ARCHIVER_BACKUP_WINDOW: '1d12h',
      }),
    ).toStrictEqual({ podName: 'wal-postgres-2', ordinal: 2, atReady: false, schedule: '0 2 * * *', from: 'standby', retain: 7, windowMs: 36 * 3_600_000 });
  });

  it('defaults: at ready on, from the primary, no schedule, no retention; no POD_NAME, no member', () => {
    expect(readBackupSettings({})).toStrictEqual({ podName: undefined, ordinal: undefined, atReady: true, schedule: undefined, from: 'primary', retain: undefined, windowMs: undefined });
    expect(readBackupSettings({ ARCHIVER_BACKUP_SCHEDULE: '', ARCHIVER_BACKUP_RETAIN: '', ARCHIVER_BACKUP_WINDOW: '' })).toMatchObject({ schedule: undefined, retain: undefined, windowMs: undefined });
  });

  it('takes the ordinal from the end of a StatefulSet pod name', () => {
    expect(podOrdinal('db-0')).toBe(0);
    expect(podOrdinal('my-db-12')).toBe(12);
    expect(podOrdinal('db')).toBeUndefined();
    expect(podOrdinal('db-01')).toBeUndefined();
    expect(podOrdinal('DB-1')).toBeUndefined();
  });

  it.each([
    [{ POD_NAME: 'db' }, 'POD_NAME: "db" is not a StatefulSet pod\'s name (<name>-<ordinal>, e.g. db-0): render it from the downward API'],
    [{ ARCHIVER_BACKUP_AT_READY: 'yes' }, 'ARCHIVER_BACKUP_AT_READY: "yes" is not one of on, off'],
    [{ ARCHIVER_BACKUP_FROM: 'replica' }, 'ARCHIVER_BACKUP_FROM: "replica" is not one of primary, standby'],
    [{ ARCHIVER_BACKUP_SCHEDULE: '0 0 2 * * *' }, 'ARCHIVER_BACKUP_SCHEDULE: "0 0 2 * * *" has 6 field(s) (a seconds field is not accepted): write five, minute hour day-of-month month day-of-week, in UTC (e.g. "0 2 * * *"'],
    [{ ARCHIVER_BACKUP_SCHEDULE: '@daily' }, 'ARCHIVER_BACKUP_SCHEDULE: "@daily" has 1 field(s): write five'],
    [{ ARCHIVER_BACKUP_RETAIN: '0' }, 'ARCHIVER_BACKUP_RETAIN: "0" is not a whole number of at least 1: the count of complete backups to keep (delete retain N), or unset'],
    [{ ARCHIVER_BACKUP_RETAIN: 'seven' }, 'ARCHIVER_BACKUP_RETAIN: "seven" is not a whole number of at least 1'],
    [{ ARCHIVER_BACKUP_RETAIN: '2.5' }, 'ARCHIVER_BACKUP_RETAIN: "2.5" is not a whole number of at least 1'],
    [{ ARCHIVER_BACKUP_WINDOW: '30 days' }, 'ARCHIVER_BACKUP_WINDOW: "30 days" is not a duration such as 30d, 12h, 1d12h or 90m (units s, m, h, d, w): the recovery window to keep (delete --window), or unset'],
    [{ ARCHIVER_BACKUP_WINDOW: '0d' }, 'ARCHIVER_BACKUP_WINDOW: "0d" is not longer than 0'],
  ])('fails, naming the variable and the fix, on %j', (env, message) => {
    expect(() => readBackupSettings(env)).toThrow(ConfigError);
    expect(() => readBackupSettings(env)).toThrow(message);
  });

  it('never fails a WAL call: readConfig does not read them', () => {
    expect(() => readConfig({ ...s3, POD_NAME: 'db', ARCHIVER_BACKUP_SCHEDULE: 'nonsense', ARCHIVER_BACKUP_RETAIN: '-1' })).not.toThrow();
  });
});
