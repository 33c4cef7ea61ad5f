/**
 * The checks of validation.ts as ArchivedPostgres reports them: collected through
 * node.addValidation, every problem of the app at once, each with construct path, field, value and
 * what is expected; suspected credentials never echoed.
 */
import { ApiObject, Chart, Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { ArchivedPostgres, ArchivedPostgresProps, ArchiverImage, ArchiveStorage, CloneSource, TerminationPolicy } from '../../constructs';
import { collectValidationErrors } from '../../scripts/synthesize';
import { TEST_ARCHIVER_IMAGE, seedProps, testApp } from './fixtures';

/** The validation errors of one database `id` in namespace demo. */
function errorsOf(props: ArchivedPostgresProps, id = 'wal-postgres', namespace = 'demo'): string[] {
  const app = testApp();
  const chart = new Chart(app, 'test', { namespace, disableResourceNameHashes: true });
  new ArchivedPostgres(chart, id, props);
  return collectValidationErrors(app);
}

const s3 = (options: Partial<Parameters<typeof ArchiveStorage.s3>[0]>) =>
  ({ storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', bucket: 'kubedb', ...options }) });

describe('ArchivedPostgres validation', () => {
  it('accepts the seed example', () => {
    expect(errorsOf(seedProps())).toStrictEqual([]);
  });

  it('fails when both s3 and gcs are set', () => {
    const storage = ArchiveStorage.fromSpec({ storageSecretName: 's3-secret', s3: { bucket: 'kubedb' }, gcs: { bucket: 'kubedb' } });
    expect(errorsOf(seedProps({ archiver: { storage } }))).toStrictEqual([
      '[test/wal-postgres] archiver.storage.s3/gcs: both are set: choose exactly one storage backend, ArchiveStorage.s3({...}) or ArchiveStorage.gcs({...})',
    ]);
  });

  it('fails when neither s3 nor gcs is set', () => {
    const storage = ArchiveStorage.fromSpec({ storageSecretName: 's3-secret' });
    expect(errorsOf(seedProps({ archiver: { storage } }))).toStrictEqual([
      '[test/wal-postgres] archiver.storage.s3/gcs: neither is set: choose exactly one storage backend, ArchiveStorage.s3({...}) or ArchiveStorage.gcs({...})',
    ]);
  });

  it.each([
    ['', 'archiver.storage.s3.bucket: is empty: S3 bucket names are 3-63 characters'],
    ['ab', 'archiver.storage.s3.bucket: "ab" has 2 characters'],
    ['My_Bucket', 'archiver.storage.s3.bucket: "My_Bucket" is not a valid bucket name'],
    ['kube..db', 'archiver.storage.s3.bucket: "kube..db" has two adjacent periods'],
    ['192.168.1.10', 'archiver.storage.s3.bucket: "192.168.1.10" is formatted as an IP address'],
    ['xn--kubedb', 'archiver.storage.s3.bucket: "xn--kubedb" starts with the reserved prefix "xn--"'],
    ['kubedb-s3alias', 'archiver.storage.s3.bucket: "kubedb-s3alias" ends with the reserved suffix "-s3alias"'],
  ])('fails on the S3 bucket name %j', (bucket, message) => {
    const errors = errorsOf(seedProps({ archiver: s3({ bucket }) }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`[test/wal-postgres] ${message}`);
  });

  it('fails on an invalid GCS bucket name', () => {
    const errors = errorsOf(seedProps({ archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'google-backups' }) } }));
    expect(errors).toStrictEqual([expect.stringContaining('archiver.storage.gcs.bucket: "google-backups" contains "goog"/"google", which GCS reserves')]);
  });

  it.each([
    ['/backups', 'starts with \'/\''],
    ['backups/../other', 'contains a \'..\' or \'.\' segment'],
    ['..', 'contains a \'..\' or \'.\' segment'],
    ['team//prod', 'contains \'//\''],
  ])('fails on the prefix %j', (prefix, problem) => {
    expect(errorsOf(seedProps({ archiver: s3({ prefix }) }))).toStrictEqual([
      `[test/wal-postgres] archiver.storage.s3.prefix: ${JSON.stringify(prefix)} ${problem}: use a relative path such as "team-a/prod" (no leading '/', no '..' or empty segments)`,
    ]);
  });

  it('fails on an archiveTimeout that is not a whole number of seconds', () => {
    expect(errorsOf(seedProps({ archiver: { ...s3({}), archiveTimeout: Duration.millis(1500) } }))).toStrictEqual([
      '[test/wal-postgres] archiver.archiveTimeout: 1500 ms is not a whole number of seconds: PostgreSQL\'s archive_timeout counts seconds; use Duration.seconds(60)',
    ]);
  });

  it.each([Duration.seconds(1), Duration.seconds(14), Duration.days(2)])('fails on an archiveTimeout outside 15 s to 24 h, explaining the archive growth (%#)', (archiveTimeout) => {
    const errors = errorsOf(seedProps({ archiver: { ...s3({}), archiveTimeout } }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/archiver\.archiveTimeout: \d+ s is outside 15 s to 86400 s: every timeout archives a whole 16 MiB segment even on an idle database/);
  });

  it('fails on an archiveTimeout of 0, saying that PostgreSQL reads 0 as disabled and what to give instead', () => {
    expect(errorsOf(seedProps({ archiver: { ...s3({}), archiveTimeout: Duration.seconds(0) } }))).toStrictEqual([
      '[test/wal-postgres] archiver.archiveTimeout: 0 s would turn archive_timeout off (in PostgreSQL 0 means disabled, not "at once"): a segment would be archived only when its 16 MiB are full, which on a quiet database can take days, and until then the committed work in it exists only on the volume; give 15 s to 86400 s: Duration.seconds(60) is the usual choice, Duration.hours(24) the fewest segments',
    ]);
  });

  it.each([0, -1, 1.5, Number.NaN])('fails on replicas %j', (replicas) => {
    expect(errorsOf(seedProps({ replicas }))).toStrictEqual([
      `[test/wal-postgres] replicas: ${replicas} is not a whole number of at least 1: pod 0 is the primary and every further replica a standby`,
    ]);
  });

  it.each(['1GB', 'ten', '-1Gi', '1 Gi', '', '100'])('fails on the storage size %j', (size) => {
    const errors = errorsOf(seedProps({ storage: { size } }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^\[test\/wal-postgres\] storage\.size: ".*" (is not a Kubernetes quantity: write e\.g\. "1Gi"|is smaller than 512Mi)/);
  });

  it.each(['1Mi', '64Mi', '511Mi', '0.5G'])('fails on a data volume of %s, too small for initdb, the WAL and the archiver\'s spool', (size) => {
    expect(errorsOf(seedProps({ storage: { size } }))).toStrictEqual([
      `[test/wal-postgres] storage.size: "${size}" is smaller than 512Mi, too small to run: each member's volume holds the data directory (about 40 MB after initdb), its WAL (max_wal_size and wal_keep_size, sized from the volume: at least 96 MB) and the archiver's spool (up to 128 MiB of prefetched WAL during a recovery); write e.g. "1Gi"`,
    ]);
  });

  it.each(['512Mi', '0.5Gi', '1Gi'])('accepts a data volume of %s', (size) => {
    expect(errorsOf(seedProps({ storage: { size } }))).toStrictEqual([]);
  });

  it.each([33, 100])('fails on replicas %j, citing the max_wal_senders the construct renders', (replicas) => {
    expect(errorsOf(seedProps({ replicas }))).toStrictEqual([
      `[test/wal-postgres] replicas: ${replicas} members are more than the 32 this construct supports: every standby streams from pod 0, whose max_wal_senders = 64 is sized for 31 standbys (two senders each while one clones or reconnects) and a pg_basebackup by hand; use at most 32`,
    ]);
  });

  it('fails on resource quantities of the PostgreSQL container and of the archiver sidecar, naming each field', () => {
    const errors = errorsOf(seedProps({
      resources: { requests: { memory: '1 GB' } },
      archiver: { ...seedProps().archiver, resources: { requests: { cpu: 'fast' }, limits: { memory: '512MB' } } },
    }));
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/^\[test\/wal-postgres\] resources\.requests\.memory: "1 GB" /);
    expect(errors[1]).toMatch(/^\[test\/wal-postgres\] archiver\.resources\.requests\.cpu: "fast" /);
    expect(errors[2]).toMatch(/^\[test\/wal-postgres\] archiver\.resources\.limits\.memory: "512MB" /);
  });

  it('fails on limits below requests of the PostgreSQL container and of the archiver sidecar (the API server would reject the StatefulSet)', () => {
    const errors = errorsOf(seedProps({
      resources: { requests: { memory: '2Gi' }, limits: { memory: '1Gi' } },
      archiver: { ...seedProps().archiver, resources: { requests: { cpu: '500m' }, limits: { cpu: '200m' } } },
    }));
    expect(errors).toStrictEqual([
      expect.stringMatching(/^\[test\/wal-postgres\] resources\.limits\.memory: "1Gi" is below requests\.memory "2Gi": the API server rejects a container whose limit is below its request/),
      expect.stringMatching(/^\[test\/wal-postgres\] archiver\.resources\.limits\.cpu: "200m" is below requests\.cpu "500m": /),
    ]);
  });

  it.each([12, 19, 15.2])('fails on the unsupported version %j', (version) => {
    expect(errorsOf(seedProps({ version }))).toStrictEqual([
      `[test/wal-postgres] version: ${version} is not a supported PostgreSQL major version: use one of 13, 14, 15, 16, 17, 18`,
    ]);
  });

  it.each([
    ['Wal_Postgres', 'is not a valid name'],
    ['1postgres', 'is not a valid name'],
    ['postgres-', 'is not a valid name'],
    ['a'.repeat(53), 'is 53 characters long; at most 52 are allowed because a StatefulSet\'s pods are labelled'],
  ])('fails on the database name %j', (name, problem) => {
    const errors = errorsOf(seedProps({ name }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`[test/wal-postgres] name: ${JSON.stringify(name)} ${problem}`);
  });

  it('names the construct id when the id is the (invalid) name', () => {
    expect(errorsOf(seedProps(), 'WalPostgres')[0]).toContain('[test/WalPostgres] name (the construct id): "WalPostgres" is not a valid name');
  });

  it.each(['Demo', 'demo_ns', 'a'.repeat(64)])('fails on the namespace %j', (namespace) => {
    const errors = errorsOf(seedProps({ namespace }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`namespace: ${JSON.stringify(namespace).slice(0, 60)}`);
    expect(errors[0]).toContain('is not a valid namespace');
  });

  it('fails on an empty storageSecretName', () => {
    expect(errorsOf(seedProps({ archiver: { storage: ArchiveStorage.s3({ storageSecretName: '', bucket: 'kubedb' }) } }))).toStrictEqual([
      '[test/wal-postgres] archiver.storage.storageSecretName: is empty: give the name of an existing Secret in the same namespace, e.g. "s3-secret"',
    ]);
  });

  it.each([
    ['an AWS access key id', 'AKIAIOSFODNN7EXAMPLE'],
    ['an AWS secret access key', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    ['a GCP service-account key', '{"type": "service_account", "private_key": "..."}'],
    ['a long token', 'ghp0123456789abcdefghijklmnopqrstuvwxyz'],
  ])('fails, without echoing it, on %s where a Secret name is expected', (_what, value) => {
    for (const errors of [
      errorsOf(seedProps({ archiver: { storage: ArchiveStorage.s3({ storageSecretName: value, bucket: 'kubedb' }) } })),
      errorsOf(seedProps({ authSecretName: value })),
      errorsOf(seedProps({ replication: { secretName: value } })),
      errorsOf(seedProps({ tls: { secretName: value } })),
    ]) {
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/(archiver\.storage\.storageSecretName|authSecretName|replication\.secretName|tls\.secretName): looks like a credential, not the name of a Secret \(value not shown\)/);
      expect(errors[0]).not.toContain(value);
    }
  });

  it('fails when the replication role would share the superuser\'s Secret, naming the path, field, value and fix', () => {
    expect(errorsOf(seedProps({ authSecretName: 'pg-auth', replication: { secretName: 'pg-auth' } }))).toStrictEqual([
      '[test/wal-postgres] replication.secretName: "pg-auth" is the superuser\'s Secret (authSecretName): give the replication role a Secret of its own, e.g. "wal-postgres-replication"',
    ]);
    expect(errorsOf(seedProps({ replication: { secretName: 'Bad_Name' } }))[0]).toMatch(/^\[test\/wal-postgres\] replication\.secretName: "Bad_Name" /);
  });

  it.each([
    'postgresqlarchivecredentialsprod1',
    'kubedbpostgresqlarchivestoragesecret',
    'ordersdbprodeuwest1s3archivecreds',
    'team-a.postgresqlarchivecredentials-prod',
  ])('accepts the Secret name %j: words run together are not a credential', (name) => {
    expect(errorsOf(seedProps({ authSecretName: name, archiver: { storage: ArchiveStorage.s3({ storageSecretName: name, bucket: 'kubedb' }) } }))).toStrictEqual([]);
  });

  it.each([
    ['a hexadecimal key', '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
    ['a random base-36 token', 'x7k2m9q4w8e1r5t3y6u0i2o4p7a9s1d3f5g8'],
    ['a token of letters without vowels', 'qwrtzpsdfghjklxcvbnmqwrtzpsdfghjkl'],
  ])('still fails, without echoing it, on %s where a Secret name is expected', (_what, value) => {
    const errors = errorsOf(seedProps({ archiver: { storage: ArchiveStorage.s3({ storageSecretName: value, bucket: 'kubedb' }) } }));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('archiver.storage.storageSecretName: looks like a credential, not the name of a Secret (value not shown)');
    expect(errors[0]).not.toContain(value);
  });

  it('fails on an S3 endpoint that is not an http(s) URL, without echoing embedded credentials', () => {
    expect(errorsOf(seedProps({ archiver: s3({ endpoint: 's3.amazonaws.com' }) }))[0]).toContain('archiver.storage.s3.endpoint: "s3.amazonaws.com" is not a URL');
    const withCredentials = errorsOf(seedProps({ archiver: s3({ endpoint: 'https://minio:s3cr3tpassw0rd@minio.local' }) }));
    expect(withCredentials).toStrictEqual(['[test/wal-postgres] archiver.storage.s3.endpoint: contains credentials (value not shown): keep credentials in the storage Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), not in the URL']);
  });

  it('fails on two databases with the same namespace and name, naming the first', () => {
    const app = testApp();
    const a = new Chart(app, 'team-a', { namespace: 'demo' });
    const b = new Chart(app, 'team-b', { namespace: 'demo' });
    new ArchivedPostgres(a, 'wal-postgres', seedProps());
    new ArchivedPostgres(b, 'wal-postgres', seedProps());
    new ArchivedPostgres(b, 'other', seedProps({ name: 'wal-postgres', namespace: 'elsewhere' }));
    expect(collectValidationErrors(app)).toStrictEqual([
      '[team-b/wal-postgres] name: "wal-postgres" in namespace "demo" is already used by team-a/wal-postgres: two databases would share their objects and their WAL archive; choose another name or namespace',
    ]);
  });

  describe('images', () => {
    /** The errors of an app whose archiver image is `archiverImage` (null: not set), with one seed database. */
    const appErrors = (archiverImage: string | null, options: { allowLocalImage?: boolean } = {}, props = seedProps()) => {
      const app = testApp({ archiverImage, ...options });
      new ArchivedPostgres(new Chart(app, 'test', { namespace: 'demo' }), 'wal-postgres', props);
      return collectValidationErrors(app);
    };

    it('fails on a PostgreSQL image that names no registry, naming the fully qualified one', () => {
      expect(errorsOf(seedProps({ version: 16, image: 'postgres:16' }))).toStrictEqual([
        '[test/wal-postgres] image: "postgres:16" names no registry: each node\'s runtime would choose one (containerd pulls docker.io/library/postgres; CRI-O asks its search registries, where a short name can be squatted); name the registry, e.g. "docker.io/library/postgres:16", or set allowLocalImage: true for an image loaded onto every node',
      ]);
    });

    it.each([
      ['localhost/postgres:15', 'names the node itself (localhost): no node pulls it from anywhere'],
      ['localhost:5000/postgres:15', 'names the node itself (localhost:5000)'],
      ['docker.io/library/postgres', 'has no tag: the runtime would pull ":latest"'],
      ['docker.io/library/postgres:15@sha256:abc', 'has the digest "sha256:abc": a digest is "sha256:" and 64 lowercase hexadecimal digits'],
      ['docker.io/library/Postgres:15', 'is not an image reference: write registry/repository:tag'],
      [' docker.io/library/postgres:15', 'is not an image reference'],
    ])('fails on the PostgreSQL image %j', (image, problem) => {
      const errors = errorsOf(seedProps({ image }));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`[test/wal-postgres] image: ${JSON.stringify(image)} ${problem}`);
    });

    it.each([
      'docker.io/library/postgres:15',
      'registry.example.com:5443/db/postgres:15.8-bookworm',
      `docker.io/library/postgres:15@sha256:${'ab'.repeat(32)}`,
      `quay.io/team/postgres@sha256:${'ab'.repeat(32)}`,
    ])('accepts the fully qualified PostgreSQL image %j', (image) => {
      expect(errorsOf(seedProps({ image }))).toStrictEqual([]);
    });

    it('accepts a bare or localhost PostgreSQL image when allowLocalImage says it is meant, but still wants a tag', () => {
      expect(errorsOf(seedProps({ image: 'postgres:15', allowLocalImage: true }))).toStrictEqual([]);
      expect(errorsOf(seedProps({ image: 'localhost/postgres:15', allowLocalImage: true }))).toStrictEqual([]);
      expect(errorsOf(seedProps({ image: 'localhost/postgres', allowLocalImage: true }))[0]).toContain('image: "localhost/postgres" has no tag');
    });

    it('fails on each database when the app sets no archiver image, saying where to set it', () => {
      const app = testApp({ archiverImage: null });
      const chart = new Chart(app, 'test', { namespace: 'demo' });
      new ArchivedPostgres(chart, 'one', seedProps());
      new ArchivedPostgres(chart, 'two', seedProps());
      const message = 'archiver image: is not set: name it once for the app, in app.ts before the charts: ArchiverImage.use(app, "ghcr.io/your-org/pg-wal-archiver:0.1.0") (build and push it with npm run archiver:image)';
      expect(collectValidationErrors(app)).toStrictEqual([`[test/one] ${message}`, `[test/two] ${message}`]);
    });

    it.each([
      ['pg-wal-archiver:0.1.0', 'names no registry: each node\'s runtime would choose one (containerd pulls docker.io/library/pg-wal-archiver;'],
      ['localhost/pg-wal-archiver:0.1.0', 'names the node itself (localhost)'],
    ])('fails once, under ArchiverImage, on the archiver image %j (as npm run archiver:image used to tag it)', (image, problem) => {
      const errors = appErrors(image);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`[ArchiverImage] reference: ${JSON.stringify(image)} ${problem}`);
      expect(errors[0]).toContain('e.g. "ghcr.io/your-org/pg-wal-archiver:0.1.0"');
    });

    it('accepts a local archiver image when allowLocalImage says it is meant (e.g. podman kube play)', () => {
      expect(appErrors('localhost/pg-wal-archiver:0.1.0', { allowLocalImage: true })).toStrictEqual([]);
    });

    it('fails eagerly when ArchiverImage.use comes after the charts (construct context is set before children)', () => {
      const app = testApp({ archiverImage: null });
      new Chart(app, 'demo');
      expect(() => ArchiverImage.use(app, TEST_ARCHIVER_IMAGE)).toThrow('ArchiverImage.use("registry.example.com/pg-wal-archiver:0.1.0") on "the app" comes after demo: call it before anything is added to it (first thing after new App())');
    });

    it('tells a plain JavaScript caller that still sets archiver.image where the image is set now', () => {
      const archiver = { ...seedProps().archiver, image: 'registry.example.com/pg-wal-archiver:0.0.9' } as ArchivedPostgresProps['archiver'];
      expect(errorsOf(seedProps({ archiver }))).toStrictEqual([
        '[test/wal-postgres] archiver.image: is no longer a database prop: the archiver image is set once per app, ArchiverImage.use(app, reference) in app.ts',
      ]);
    });
  });

  it('fails on databases whose objects share a name in one namespace (orders and orders-standby both render Service/orders-standby), naming both construct paths once', () => {
    const app = testApp();
    const chart = new Chart(app, 'test', { namespace: 'demo' });
    new ArchivedPostgres(chart, 'orders', seedProps());
    new ArchivedPostgres(chart, 'orders-standby', seedProps());
    new ArchivedPostgres(new Chart(app, 'other', { namespace: 'other' }), 'orders-standby', seedProps());
    expect(collectValidationErrors(app)).toStrictEqual([
      '[test/orders-standby] name: Service "orders-standby" in namespace "demo" (test/orders-standby/PrimaryService) is also rendered by test/orders/StandbyService: one would replace the other, and clients of one database would reach the other; choose a name whose objects ("orders-standby", "orders-standby-standby", "orders-standby-pods", "orders-standby-config", "orders-standby-dashboard", "orders-standby-wipeout") no other object of the namespace has',
    ]);
  });

  it('fails on a database whose object another object of the chart already renders', () => {
    const app = testApp();
    const chart = new Chart(app, 'test', { namespace: 'demo' });
    new ApiObject(chart, 'legacy', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'orders' } });
    new ArchivedPostgres(chart, 'orders', seedProps());
    const errors = collectValidationErrors(app);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('[test/orders] name: Service "orders" in namespace "demo" (test/orders/PrimaryService) is also rendered by test/legacy: ');
  });

  it('fails on an unknown terminationPolicy (e.g. from plain JavaScript)', () => {
    expect(errorsOf(seedProps({ terminationPolicy: 'Destroy' as TerminationPolicy }))).toStrictEqual([
      '[test/wal-postgres] terminationPolicy: "Destroy" is not a termination policy: use one of DoNotTerminate, Halt, Delete, WipeOut',
    ]);
  });

  it('fails on an unknown standbys.cloneFrom (e.g. from plain JavaScript)', () => {
    expect(errorsOf(seedProps({ standbys: { cloneFrom: 'backup' as CloneSource } }))).toStrictEqual([
      '[test/wal-postgres] standbys.cloneFrom: "backup" is not a clone source: use CloneSource.PRIMARY or CloneSource.ARCHIVE',
    ]);
  });

  it('reports every problem of the app together, each with its construct path', () => {
    const app = testApp();
    const chart = new Chart(app, 'demo', { namespace: 'demo' });
    new ArchivedPostgres(chart, 'one', seedProps({ replicas: 0, storage: { size: 'big' } }));
    new ArchivedPostgres(chart, 'two', seedProps({ version: 11, archiver: s3({ bucket: 'A' }) }));
    const errors = collectValidationErrors(app);
    expect(errors.map((e) => e.replace(/:.*/s, ''))).toStrictEqual([
      '[demo/one] replicas',
      '[demo/one] storage.size',
      '[demo/two] version',
      '[demo/two] archiver.storage.s3.bucket',
    ]);
  });
});
