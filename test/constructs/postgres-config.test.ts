/**
 * PostgresConfig (constructs/postgres-config.ts): postgresql.conf and pg_hba.conf in the
 * ConfigMap, settings added after construction, and their validation. The files run on a real
 * PostgreSQL in postgres-config.real-postgres.test.ts; start.sh is specified in start-script.test.ts.
 */
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { renderArchiveCommand, renderRestoreCommand } from '../../contract';
import { MAX_REPLICAS, MAX_WAL_SENDERS } from '../../constructs';
import { parseQuantity } from '../../constructs/validation';
import { collectValidationErrors } from '../../scripts/synthesize';
import { databaseChart, find, seedProps, synth, synthDatabase } from './fixtures';

const postgresqlConf = (objects: ReturnType<typeof synth>) => find(objects, 'ConfigMap', 'wal-postgres-config').data!['postgresql.conf'];
const checksum = (objects: ReturnType<typeof synth>) =>
  find(objects, 'StatefulSet', 'wal-postgres').spec.template.metadata.annotations['archived-postgres/config-sha256'];

describe('PostgresConfig, given the seed example', () => {
  const { db, objects } = synthDatabase(seedProps());
  const config = find(objects, 'ConfigMap', 'wal-postgres-config');

  it('holds postgresql.conf, pg_hba.conf, start.sh and probe.sh in the ConfigMap {name}-config', () => {
    expect(Object.keys(config.data!)).toStrictEqual(['pg_hba.conf', 'postgresql.conf', 'probe.sh', 'start.sh']);
    expect(config.data).toStrictEqual(db.config.files);
    expect(db.config.configMapName).toBe('wal-postgres-config');
  });

  it('archives with the archiver every 60 s at most, from the primary', () => {
    const conf = config.data!['postgresql.conf'];
    expect(conf).toContain("archive_mode = on\n");
    expect(conf).toContain(`archive_command = '${renderArchiveCommand()}'\n`);
    expect(renderArchiveCommand()).toBe('/opt/archiver/bin/archiver wal-push %p');
    expect(conf).toContain('archive_timeout = 60\n');
    expect(conf).toContain('wal_level = replica\n');
    expect(conf).toContain(`restore_command = '${renderRestoreCommand()}'\n`);
    expect(renderRestoreCommand()).toBe('/opt/archiver/bin/archiver wal-fetch %f %p');
  });

  it('ends postgresql.conf with restore_command when no setting was added', () => {
    expect(config.data!['postgresql.conf'].endsWith(`restore_command = '${renderRestoreCommand()}'\n`)).toBe(true);
  });

  /** The rules of a pg_hba.conf, without comments. */
  const rules = (hba: string) => hba.split('\n').filter((line) => line && !line.startsWith('#')).map((line) => line.split(/\s+/));

  it('authenticates by peer inside the container; over the network by SCRAM, the replication role to replication and the database postgres only, the superuser never', () => {
    expect(rules(config.data!['pg_hba.conf'])).toStrictEqual([
      ['local', 'all', 'all', 'peer'],
      ['local', 'replication', 'all', 'peer'],
      ['host', 'all', 'postgres', 'all', 'reject'],
      ['host', 'replication', 'postgres', 'all', 'reject'],
      ['host', 'replication', 'replication', 'all', 'scram-sha-256'],
      ['host', 'postgres', 'replication', 'all', 'scram-sha-256'],
      ['host', 'all', 'replication', 'all', 'reject'],
      ['host', 'all', 'all', 'all', 'scram-sha-256'],
    ]);
  });

  it('with tls: ssl = on with the mounted Secret\'s certificate and key, and every accepting network line hostssl', () => {
    const { objects } = synthDatabase(seedProps({ tls: { secretName: 'wal-postgres-tls' } }));
    const files = find(objects, 'ConfigMap', 'wal-postgres-config').data!;
    expect(files['postgresql.conf']).toContain("ssl = on\nssl_cert_file = '/etc/postgresql-tls/tls.crt'\nssl_key_file = '/etc/postgresql-tls/tls.key'\n");
    expect(rules(files['pg_hba.conf'])).toStrictEqual([
      ['local', 'all', 'all', 'peer'],
      ['local', 'replication', 'all', 'peer'],
      ['host', 'all', 'postgres', 'all', 'reject'],
      ['host', 'replication', 'postgres', 'all', 'reject'],
      ['hostssl', 'replication', 'replication', 'all', 'scram-sha-256'],
      ['hostssl', 'postgres', 'replication', 'all', 'scram-sha-256'],
      ['host', 'all', 'replication', 'all', 'reject'],
      ['hostssl', 'all', 'all', 'all', 'scram-sha-256'],
    ]);
    // The standbys' connections to pod 0: verified against ca.crt when the Secret has one.
    for (const script of [files['start.sh'], files['probe.sh']]) {
      expect(script).toContain('if [ -s /etc/postgresql-tls/ca.crt ]; then\n  export PGSSLMODE=verify-ca PGSSLROOTCERT=/etc/postgresql-tls/ca.crt\nelse\n  export PGSSLMODE=require\nfi\n');
    }
    const pod = find(objects, 'StatefulSet', 'wal-postgres').spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'wal-postgres-tls', defaultMode: 0o440 } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/postgresql-tls', readOnly: true });
    expect(pod.securityContext.fsGroup).toBe(999);
    // The sidecar watches the same volume (one kubelet swap for both containers) and reloads the
    // server when cert-manager renews the certificate in place.
    const sidecar = pod.containers.find((c: { name: string }) => c.name === 'archiver');
    expect(sidecar.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/postgresql-tls', readOnly: true });
    expect(sidecar.env).toContainEqual({ name: 'ARCHIVER_TLS_DIR', value: '/etc/postgresql-tls' });
  });

  it('without tls: no ssl setting, no hostssl line, no TLS volume', () => {
    const pod = find(synthDatabase(seedProps({})).objects, 'StatefulSet', 'wal-postgres').spec.template.spec;
    expect(pod.volumes.map((v: { name: string }) => v.name)).not.toContain('tls');
    expect(pod.containers.flatMap((c: { env?: { name: string }[] }) => (c.env ?? []).map((e) => e.name))).not.toContain('ARCHIVER_TLS_DIR');
    expect(config.data!['postgresql.conf']).not.toMatch(/^ssl/m);
    expect(config.data!['pg_hba.conf']).not.toContain('hostssl');
    expect(config.data!['start.sh']).not.toContain('PGSSLMODE');
  });

  it('lets the superuser log in over the network with its password only when superuserNetworkLogin is set', () => {
    const hba = rules(find(synthDatabase(seedProps({ superuserNetworkLogin: true })).objects, 'ConfigMap', 'wal-postgres-config').data!['pg_hba.conf']);
    expect(hba.slice(2, 4)).toStrictEqual([
      ['host', 'all', 'postgres', 'all', 'scram-sha-256'],
      ['host', 'replication', 'postgres', 'all', 'reject'],
    ]);
  });

  it('names the parameters it manages', () => {
    expect(db.config.managedSettings).toStrictEqual([
      'listen_addresses', 'port', 'unix_socket_directories', 'hba_file', 'password_encryption',
      'wal_level', 'max_wal_senders', 'hot_standby', 'primary_conninfo', 'wal_keep_size', 'max_wal_size', 'min_wal_size', 'wal_log_hints',
      'archive_mode', 'archive_command', 'archive_timeout', 'restore_command',
    ]);
  });
});

describe('PostgresConfig options', () => {
  it('renders archiveTimeout in seconds', () => {
    const { objects } = synthDatabase(seedProps({ archiver: { ...seedProps().archiver, archiveTimeout: Duration.minutes(5) } }));
    expect(postgresqlConf(objects)).toContain('archive_timeout = 300\n');
  });

  it.each([
    // volume, max_wal_size, min_wal_size, wal_keep_size (MB): WAL at most 3/8 of the volume, PostgreSQL's defaults at most
    ['512Mi', 128, 64, 64],
    ['1Gi', 256, 80, 128],
    ['1G', 224, 80, 112],
    ['3Gi', 768, 80, 256],
    ['4Gi', 1024, 80, 256],
    ['100Gi', 1024, 80, 256],
  ])('sizes the WAL from a %s data volume so that it fits with room for the data', (size, max, min, keep) => {
    const conf = postgresqlConf(synthDatabase(seedProps({ storage: { size } })).objects);
    expect(conf).toContain(`wal_keep_size = '${keep}MB'\nmax_wal_size = '${max}MB'\nmin_wal_size = '${min}MB'\n`);
    const bytes = parseQuantity(size)!;
    expect((max + keep) * 2 ** 20).toBeLessThanOrEqual(bytes * 3 / 8);
    for (const mb of [max, min, keep]) expect(mb % 16).toBe(0);
  });

  it('gives the seed\'s 1Gi volume WAL settings that fit on it (PostgreSQL\'s 1 GB max_wal_size and a 256 MB wal_keep_size did not)', () => {
    const conf = postgresqlConf(synthDatabase(seedProps()).objects);
    expect(conf).not.toContain("wal_keep_size = '256MB'");
    expect(conf).toContain("max_wal_size = '256MB'");
  });

  it('allows as many WAL senders as 31 streaming standbys, one cloning, and a backup by hand need, whatever replicas is (a lower value on a standby than on its primary stops it)', () => {
    const confs = [1, 2, 11, MAX_REPLICAS].map((replicas) => postgresqlConf(synthDatabase(seedProps({ replicas })).objects));
    expect(MAX_REPLICAS).toBe(32);
    expect(MAX_WAL_SENDERS).toBe(64);
    expect(confs[0]).toContain('\nmax_wal_senders = 64\n');
    // Scaling never changes postgresql.conf, so it never restarts the primary nor lowers the limit.
    expect(new Set(confs).size).toBe(1);
  });
});

describe('PostgresConfig grows after construction', () => {
  it('appends settings added with addSetting() to postgresql.conf, quoted by type, and rolls the pods', () => {
    // GIVEN
    const { db, chart } = databaseChart(seedProps());
    const before = synth(chart);
    // WHEN
    db.config.addSetting('recovery_target_time', "2026-01-01 00:00:00+00");
    db.config.addSetting('recovery_target_inclusive', false);
    db.config.addSetting('max_connections', 200);
    db.config.addSetting('auto_explain.log_min_duration', '1s');
    // THEN
    const after = synth(chart);
    expect(postgresqlConf(after)).toBe(`${postgresqlConf(before)}
# Added with PostgresConfig.addSetting(); each is the last word on its parameter.
recovery_target_time = '2026-01-01 00:00:00+00'
recovery_target_inclusive = off
max_connections = 200
auto_explain.log_min_duration = '1s'
`);
    expect(checksum(after)).not.toBe(checksum(before));
    expect(checksum(after)).toBe(db.config.checksum);
  });

  it('replaces an added setting when it is added again, keeping its place', () => {
    const { db, chart } = databaseChart(seedProps());
    db.config.addSetting('work_mem', '4MB');
    db.config.addSetting('maintenance_work_mem', '64MB');
    db.config.addSetting('work_mem', "it's 8MB");
    expect(postgresqlConf(synth(chart))).toMatch(/\nwork_mem = 'it''s 8MB'\nmaintenance_work_mem = '64MB'\n$/);
  });

  it('fails on a parameter it manages, a malformed name and a value postgresql.conf cannot hold, all reported together', () => {
    const { app, db } = databaseChart(seedProps());
    db.config.addSetting('archive_timeout', 5);
    db.config.addSetting('archive_command', '/bin/true');
    db.config.addSetting('Work-Mem', '4MB');
    db.config.addSetting('application_name', 'a\nb');
    db.config.addSetting('max_connections', Number.POSITIVE_INFINITY);
    db.config.addSetting('max_wal_size', '4GB');
    expect(collectValidationErrors(app)).toStrictEqual([
      '[test/wal-postgres] config.addSetting("archive_timeout"): "archive_timeout" is written by ArchivedPostgres itself (set archiver.archiveTimeout instead) and cannot be replaced',
      '[test/wal-postgres] config.addSetting("archive_command"): "archive_command" is written by ArchivedPostgres itself (it is part of the replication and archiving set-up) and cannot be replaced',
      '[test/wal-postgres] config.addSetting("Work-Mem"): "Work-Mem" is not a parameter name: use lowercase letters, digits and \'_\' (a custom parameter has one \'.\'), e.g. "recovery_target_time"',
      '[test/wal-postgres] config.addSetting("application_name"): the value contains a line break or control character, which postgresql.conf cannot hold',
      '[test/wal-postgres] config.addSetting("max_connections"): Infinity is not a finite number',
      '[test/wal-postgres] config.addSetting("max_wal_size"): "max_wal_size" is written by ArchivedPostgres itself (it is sized from storage.size so that the WAL fits on the volume: give a larger volume) and cannot be replaced',
    ]);
  });
});

describe('the config checksum rolls the pods only for a change that needs a restart', () => {
  const seedChecksum = checksum(synthDatabase(seedProps()).objects);

  it('hashes the parameters that need a restart (restart-settings.ts), as rendered, and start.sh; nothing else', () => {
    const { db } = synthDatabase(seedProps());
    expect(db.config.restartInput).toStrictEqual({
      settings: {
        archive_mode: 'on',
        hba_file: "'/etc/postgresql-archived/pg_hba.conf'",
        hot_standby: 'on',
        listen_addresses: "'*'",
        max_wal_senders: '64',
        port: '5432',
        // Sized from the container's memory (memory-settings.ts).
        shared_buffers: "'256MB'",
        unix_socket_directories: "'/var/run/postgresql'",
        wal_level: 'replica',
        wal_log_hints: 'on',
      },
      startScript: db.config.files['start.sh'],
    });
    // pg_hba.conf and probe.sh are read again at a reload and at every probe: not in the hash.
    expect(seedChecksum).toBe(db.config.checksum);
  });

  it('keeps the pod template for reloadable changes: archive_timeout, the WAL sizes of a larger volume, added reloadable settings', () => {
    const { db, chart } = databaseChart(seedProps({ archiver: { ...seedProps().archiver, archiveTimeout: Duration.seconds(30) }, storage: { size: '4Gi' } }));
    db.config.addSetting('work_mem', '8MB');
    db.config.addSetting('log_min_duration_statement', 250);
    db.config.addSetting('ssl', true);
    const objects = synth(chart);
    expect(postgresqlConf(objects)).not.toBe(postgresqlConf(synthDatabase(seedProps()).objects));
    expect(checksum(objects)).toBe(seedChecksum);
  });

  it.each([
    // The seed renders 256MB (a quarter of 1Gi); another value replaces it.
    ['shared_buffers', '512MB'],
    ['max_connections', 200],
    ['shared_preload_libraries', 'pg_stat_statements'],
    ['recovery_target_time', '2026-01-01 00:00:00+00'],
    // Unknown to the table: a restart, to be safe.
    ['auto_explain.log_min_duration', '1s'],
  ])('rolls the pods for an added %s, which needs a restart', (name, value) => {
    const { db, chart } = databaseChart(seedProps());
    db.config.addSetting(name, value);
    expect(checksum(synth(chart))).not.toBe(seedChecksum);
    expect(Object.keys(db.config.restartInput.settings)).toContain(name);
  });

  it('rolls the pods when start.sh changes (it runs only when the container starts)', () => {
    // pg_rewind gets the configuration file and fetches WAL from 15 on: a change of start.sh alone.
    const v14 = synthDatabase(seedProps({ version: 14 })).db.config;
    const v15 = synthDatabase(seedProps({ version: 15 })).db.config;
    expect(v14.restartInput.settings).toStrictEqual(v15.restartInput.settings);
    expect(v14.restartInput.startScript).not.toBe(v15.restartInput.startScript);
    expect(v14.checksum).not.toBe(v15.checksum);
  });

  it('follows the version: restore_command needs a restart on PostgreSQL 13 only', () => {
    expect(Object.keys(synthDatabase(seedProps({ version: 13 })).db.config.restartInput.settings)).toContain('restore_command');
    expect(Object.keys(synthDatabase(seedProps({ version: 14 })).db.config.restartInput.settings)).not.toContain('restore_command');
  });

  it('says the rule in postgresql.conf\'s header', () => {
    expect(postgresqlConf(synthDatabase(seedProps()).objects)).toContain('changes the pod template\'s config checksum and rolls the pods. Any other change is\n# applied in place: the archiver sidecar sees the updated ConfigMap and reloads the server.');
  });
});
