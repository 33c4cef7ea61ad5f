/**
 * The stories of "the database restores itself from its archive" at the level of the rendered
 * pod: real PostgreSQL 15 started by the RENDERED start.sh (pod 0: `archiver bootstrap`, then the
 * official image's entrypoint — a stand-in that does what it does, see rendered-pod.ts), beside the
 * `archiver` sidecar with its rendered command and environment (at ready: the first base backup
 * without any command), the archive in s3rver on 127.0.0.1. Only what belongs to the container is
 * replaced (rendered-pod.ts).
 *
 * The first describe follows one database through its life, so its specs run in order and each
 * starts where the previous one left it (a failure of an early one fails the later ones):
 *   1. first start on an empty volume: initdb, archiving, a base backup at ready;
 *   2. its volume deleted: the newest backup restored, every archived segment replayed, promoted
 *      onto a new timeline, archiving on, the new timeline's backup at ready;
 *   2b. the standby that streamed from the old pod 0, past where the new timeline leaves the old
 *      one, is found by its rendered probes, restarted, rewound by start.sh, and streams again;
 *   4. a second database bootstrapped from its archive to a time: exactly the rows before it, its
 *      own archive location; then its volume deleted: it restores from its own archive;
 *   4b. a standby of a database bootstrapped to a time stays a standby (the bootstrap's recovery
 *      target, which its clone copies, made it promote itself at the first commit).
 * The second describe: 3. an archive with WAL but no backup: pod 0 refuses, the volume untouched.
 * The third: 5. standbys cloned from the archive, and from pod 0 when the archive has no backup.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../archiver/src/storage/open';
import { ArchiveStorage, Bootstrap, CloneSource, RecoveryTarget } from '../../constructs';
import { ROOT, logLines } from '../../testkit/archiver';
import { S3Server } from '../../testkit/s3-server';
import { container, containerEnvironment, find, seedProps, synthDatabase } from './fixtures';
import { BUCKET, RenderedPod, s3ServerAndPods, secretsFor, sleep } from './rendered-pod';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'restores-itself-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const storage = () => ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: BUCKET });

/** The keys under `under` (e.g. `wal/`) of the archive of demo/`database`, relative to the archive. */
async function archived(server: S3Server, database: string, under = ''): Promise<string[]> {
  const prefix = `kubedb/demo/${database}/archive`;
  const store = await openStorage({ kind: 's3', bucket: BUCKET, prefix, endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' });
  try {
    return (await store.list(under)).map((o) => o.key).sort();
  } finally {
    await store.close();
  }
}

/** A fingerprint of a table's rows. */
const ORDERS = "select count(*) || ' ' || md5(coalesce(string_agg(note, ',' order by id), '')) from orders";
/** The server's current timeline, from the name of the segment it writes. */
const TIMELINE = 'select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)';
const SYSTEM = 'select system_identifier from pg_control_system()';

describe('a database that loses its volume restores itself from its own archive (rendered start.sh and sidecar, PostgreSQL 15, s3rver)', () => {
  const { objects } = synthDatabase(seedProps({ archiver: { storage: storage() } }));
  const { pods, server: s3 } = s3ServerAndPods(scratch);

  // Set by each spec for the next.
  let pod0: RenderedPod | undefined;
  let standby: RenderedPod | undefined;
  let systemIdentifier = '';
  let pitrTarget: string | undefined;
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is missing: an earlier spec of this describe failed`);
    return value;
  };

  it('1. first start on an empty volume: bootstrap answers initdb, the entrypoint initialises, the server archives, and the sidecar takes the first base backup at ready, with no command', async () => {
    // The seed's default: a backup at ready, no schedule.
    const sidecarEnv = containerEnvironment(container(find(objects, 'StatefulSet', 'wal-postgres'), 'archiver'), secretsFor(s3(), 'wal-postgres'), 'wal-postgres-0');
    expect(sidecarEnv.ARCHIVER_BACKUP_AT_READY).toBe('on');
    expect(sidecarEnv.ARCHIVER_BACKUP_SCHEDULE).toBeUndefined();

    const pod = await pods.make(objects, 'wal-postgres', 0);
    await pod.start();
    await pod.waitReady({ primary: true });
    const log = pod.log();
    expect(log).toContain('start: wal-postgres-0 is the primary');
    expect(log).toMatch(/bootstrap: the archive at s3:\/\/kubedb\/kubedb\/demo\/wal-postgres\/archive \(endpoint \S+\) is empty: a new database/);
    expect(log).toContain('start: bootstrap: initdb');
    expect(log).toContain('PostgreSQL init process complete; ready for start up.');
    expect(pod.sql('show archive_command')).toMatch(/archiver\/dist\/bin\/archiver wal-push %p$/);
    systemIdentifier = pod.sql(SYSTEM);

    pod.sql('create table orders(id bigint primary key, note text)');
    pod.sql('insert into orders select g, md5(g::text) from generate_series(1, 1000) g');
    const segment = await pod.switchAndArchive();
    expect(await archived(s3(), 'wal-postgres', 'wal/')).toContain(`wal/${segment}`);

    const backup = await pod.waitForBackup(() => true);
    expect(backup).toMatchObject({ timeline: 1, systemIdentifier });
    expect(pod.backupList().map((b) => b.name)).toEqual([backup.name]);
    const lines = logLines(pod.archiverLog());
    expect(lines.filter((l) => l.msg === 'taking a base backup').map((l) => l.reason)).toEqual(['at-ready']);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    pod0 = pod;
  }, 120_000);

  it('2. pod 0\'s volume deleted: start.sh restores the newest backup, the server replays every archived segment and promotes onto a new timeline, archives on, and the sidecar backs the new timeline up at ready', async () => {
    const pod = need(pod0, 'pod 0');
    // A standby streaming from pod 0 before the loss (spec 2b looks at it after).
    standby = await pods.make(objects, 'wal-postgres', 1, pod);
    await standby.start();
    await waitStreaming(standby, 1);

    // Rows after the backup, in several archived segments: only WAL replay brings them back.
    pod.sql("insert into orders select g, repeat(md5(g::text), 4) from generate_series(1001, 60000) g");
    await pod.switchAndArchive();
    pod.sql("update orders set note = 'updated' where id % 7 = 0");
    pod.sql('delete from orders where id % 11 = 0');
    const lastArchived = await pod.switchAndArchive();
    const expected = pod.sql(ORDERS);
    expect(pod.sql(TIMELINE)).toBe('00000001');

    // The loss: the pod goes, and its volume with it; the archive stays.
    await pod.stop();
    pod.deleteVolume();
    const from = pod.log().length;
    await pod.start();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    const log = pod.log().slice(from);
    expect(log).toMatch(/bootstrap: the archive at s3:\/\/kubedb\/kubedb\/demo\/wal-postgres\/archive \(endpoint \S+\) holds a complete backup: restoring the newest/);
    expect(log).toContain('start: bootstrap: restored');
    expect(log).not.toContain('init process complete');
    expect(log).toContain(`restored log file "${lastArchived}" from archive`);
    expect(fs.existsSync(`${pod.pgdata}.restore`)).toBe(false);

    expect(pod.sql(ORDERS)).toBe(expected);
    expect(pod.sql(SYSTEM)).toBe(systemIdentifier);
    expect(pod.sql(TIMELINE)).toBe('00000002');

    // Archiving continues, on the new timeline.
    pod.sql("insert into orders select g, 'after the restore' from generate_series(60001, 61000) g");
    const next = await pod.switchAndArchive();
    expect(next.startsWith('00000002')).toBe(true);
    expect(await archived(s3(), 'wal-postgres', 'wal/')).toEqual(expect.arrayContaining([`wal/${next}`, 'wal/00000002.history']));

    // The new timeline's first backup, at ready, with no command.
    const backup = await pod.waitForBackup((b) => b.timeline === 2);
    expect(backup.systemIdentifier).toBe(systemIdentifier);
    expect(pod.backupList().map((b) => b.timeline)).toEqual([1, 2]);
    expect(logLines(pod.archiverLog()).filter((l) => l.level === 'error')).toEqual([]);
  }, 180_000);

  // The standby received the old pod 0's last, never archived WAL (its shutdown checkpoint): it is
  // past the point where timeline 2 leaves timeline 1, and PostgreSQL refuses to follow ("new
  // timeline 2 forked off current database system timeline 1 before current recovery point")
  // while pg_isready says ready. Its rendered probes see a standby that neither streams nor
  // replays while pod 0 is up: not ready, then not live; the kubelet restarts the container, and
  // start.sh finds the local data diverged from pod 0's history and rewinds it with pg_rewind.
  it('2b. the standby that streamed from the old pod 0 is found not to follow, restarted by its liveness probe and rewound: it streams timeline 2 and serves its rows', async () => {
    const pod = need(pod0, 'pod 0');
    const replica = need(standby, 'the standby');
    pod.sql("insert into orders values (0, 'for the standby')");
    const lsn = pod.sql('select pg_current_wal_lsn()');
    const from = replica.log().length;
    // Up to the stall time, then the liveness probe's failure threshold, then the rewind.
    const deadline = Date.now() + 360_000;
    let notReadySeen = false;
    while (replica.tryPsql(`select received_tli = 2 and status = 'streaming' from pg_stat_wal_receiver`) !== 't' || replica.tryPsql(`select pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`) !== 't') {
      if (replica.ready === false && replica.livenessRestarts === 0) notReadySeen = true;
      if (Date.now() > deadline) {
        throw new Error(`the standby does not follow timeline 2 (wal receiver: ${replica.tryPsql('select received_tli, status from pg_stat_wal_receiver') || 'none'}; in recovery: ${replica.tryPsql('select pg_is_in_recovery()')}):\n${withoutConnectionNoise(replica.log().slice(from)).slice(-6000)}`);
      }
      await sleep(250);
    }
    expect(replica.sql("select note from orders where id = 0")).toBe('for the standby');
    expect(replica.sql(ORDERS)).toBe(pod.sql(ORDERS));
    // Taken out of the Services before the restart, restarted once, rewound rather than cloned.
    expect(notReadySeen).toBe(true);
    expect(replica.livenessRestarts).toBe(1);
    const log = replica.log().slice(from);
    expect(log).toMatch(/kubelet: liveness: standby neither streamed nor replayed WAL for \d+ s .* while pod 0 is up \(6 failures\): restarting the postgres container/);
    expect(log).toMatch(/start: local data: system \d+, timeline 1, up to /);
    expect(log).toContain('start: the local data has WAL that the primary\'s history does not: rewinding it to the primary with pg_rewind');
    expect(log).toContain('Done!');
    expect(log).not.toContain('cloning the primary again');
    // Ready again.
    const readyBy = Date.now() + 30_000;
    while (replica.ready !== true && Date.now() < readyBy) await sleep(250);
    expect(replica.ready).toBe(true);
  }, 420_000);

  it('4. a second database bootstrapped from this one\'s archive to a time has exactly the rows before it, archives into its own location, and after losing its volume restores from its own archive', async () => {
    const source = need(pod0, 'pod 0');
    source.sql('create table ledger(id int primary key, note text)');
    source.sql("insert into ledger select g, 'before' from generate_series(1, 100) g");
    const target = source.sql(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);
    pitrTarget = target;
    await sleep(20);
    source.sql("insert into ledger select g, 'after' from generate_series(101, 200) g");
    // The WAL past the target reaches the archive: recovery stops at the first commit after it.
    await source.switchAndArchive();
    const sourceOrders = source.sql(ORDERS);
    const sourceWal = await archived(s3(), 'wal-postgres', 'wal/');

    const pitr = synthDatabase(
      seedProps({ archiver: { storage: storage() }, bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'wal-postgres', target: RecoveryTarget.time(target) }) }),
      'wal-postgres-pitr',
    ).objects;
    const env = containerEnvironment(container(find(pitr, 'StatefulSet', 'wal-postgres-pitr'), 'postgres'), secretsFor(s3(), 'wal-postgres-pitr'), 'wal-postgres-pitr-0');
    expect(env.ARCHIVER_BOOTSTRAP_SOURCE).toBe('s3://kubedb/kubedb/demo/wal-postgres/archive');
    expect(env.ARCHIVER_BOOTSTRAP_TARGET).toBe(`time:${target}`);
    expect(env.ARCHIVER_REPOSITORY).toBe('s3://kubedb/kubedb/demo/wal-postgres-pitr/archive');

    const pod = await pods.make(pitr, 'wal-postgres-pitr', 0);
    await pod.start();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    let log = pod.log();
    expect(log).toMatch(/bootstrap: the archive at s3:\/\/kubedb\/kubedb\/demo\/wal-postgres-pitr\/archive \(endpoint \S+\) is empty: initialising from s3:\/\/kubedb\/kubedb\/demo\/wal-postgres\/archive/);
    expect(log).toContain('start: bootstrap: restored');
    expect(log).toMatch(/recovery stopping before commit of transaction \d+, time /);
    expect(pod.sql("select note, count(*), min(id), max(id) from ledger group by note")).toBe('before|100|1|100');
    expect(pod.sql(ORDERS)).toBe(sourceOrders);
    expect(pod.sql(SYSTEM)).toBe(systemIdentifier);
    // The recovery's settings (the source's restore_command, the target) do not outlive it: the
    // sidecar resets them once the server is out of recovery, so no backup or clone carries them.
    const recoverySettings = "select count(*) from pg_file_settings where sourcefile like '%/postgresql.auto.conf' and (name = 'restore_command' or name like 'recovery\\_target%')";
    const cleanBy = Date.now() + 30_000;
    while (pod.sql(recoverySettings) !== '0' && Date.now() < cleanBy) await sleep(250);
    expect(pod.sql(recoverySettings)).toBe('0');
    expect(pod.sql('show restore_command')).toBe(`${path.join(ROOT, 'archiver/dist')}/bin/archiver wal-fetch %f %p`);
    expect(logLines(pod.archiverLog()).filter((l) => l.msg === 'the recovery is over: its settings are removed from postgresql.auto.conf and the configuration reloaded').map((l) => l.settings)).toEqual([
      'recovery_target,recovery_target_action,recovery_target_inclusive,recovery_target_lsn,recovery_target_name,recovery_target_time,recovery_target_timeline,recovery_target_xid,restore_command',
    ]);
    const timeline = pod.sql(TIMELINE);
    expect(Number.parseInt(timeline, 16)).toBeGreaterThan(2);

    // Its own archive: its WAL and its first backup there; nothing of it in the source's.
    pod.sql("insert into ledger select g, 'own' from generate_series(1001, 1050) g");
    const segment = await pod.switchAndArchive();
    expect(segment.startsWith(timeline)).toBe(true);
    expect(await archived(s3(), 'wal-postgres-pitr', 'wal/')).toContain(`wal/${segment}`);
    const backup = await pod.waitForBackup(() => true);
    expect(backup.timeline).toBe(Number.parseInt(timeline, 16));
    expect(pod.backupList()).toHaveLength(1);
    expect((await archived(s3(), 'wal-postgres', 'wal/')).filter((key) => !sourceWal.includes(key) && key.startsWith(`wal/${timeline}`))).toEqual([]);
    pod.sql("insert into ledger select g, 'own' from generate_series(1051, 1100) g");
    await pod.switchAndArchive();

    // Its volume lost: the bootstrap spec is still in Git, yet it restores its own archive, never
    // the source to the old time again.
    await pod.stop();
    pod.deleteVolume();
    const from = pod.log().length;
    await pod.start();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    log = pod.log().slice(from);
    expect(log).toMatch(/bootstrap: the archive at s3:\/\/kubedb\/kubedb\/demo\/wal-postgres-pitr\/archive \(endpoint \S+\) holds a complete backup: restoring the newest/);
    expect(log).toContain('start: bootstrap: restored');
    expect(pod.sql("select note, count(*), min(id), max(id) from ledger group by note order by note")).toBe('before|100|1|100\nown|100|1001|1100');
  }, 180_000);

  it('4b. a standby of a database bootstrapped to a time (pod 1, rendered start.sh: a clone of pod 0) stays a standby and streams: the bootstrap\'s recovery target does not reach it', async () => {
    const target = need(pitrTarget, 'the target time of spec 4');
    const objects2 = synthDatabase(
      seedProps({ archiver: { storage: storage() }, bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'wal-postgres', target: RecoveryTarget.time(target) }) }),
      'wal-postgres-pitr2',
    ).objects;
    const primary = await pods.make(objects2, 'wal-postgres-pitr2', 0);
    await primary.start();
    await primary.waitReady({ primary: true, timeoutMs: 120_000 });
    expect(primary.sql('select count(*) from ledger')).toBe('100');
    const replica = await pods.make(objects2, 'wal-postgres-pitr2', 1, primary);
    await replica.start();
    await waitStreaming(replica, Number.parseInt(primary.sql(TIMELINE), 16));

    // A commit on the primary, after the target time of the bootstrap: the standby replays it.
    primary.sql("insert into ledger values (5000, 'to the standby')");
    const lsn = primary.sql('select pg_current_wal_lsn()');
    const deadline = Date.now() + 20_000;
    for (;;) {
      const state = replica.tryPsql(`select pg_is_in_recovery(), pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`);
      if (state === 't|t') break;
      if (state?.startsWith('f') || Date.now() > deadline) {
        throw new Error(`the standby ${state?.startsWith('f') ? 'left recovery: it promoted itself, a second primary' : `did not replay to ${lsn}`}:\n${replica.log().slice(-2500)}`);
      }
      await sleep(100);
    }
    expect(replica.sql('select note from ledger where id = 5000')).toBe('to the standby');
  }, 120_000);
});

describe('3. an archive with WAL but no backup: pod 0 refuses to start on an empty volume (rendered start.sh and sidecar, PostgreSQL 15, s3rver)', () => {
  // A database that never took a backup: none at ready, a schedule that does not fire during the test.
  const { objects } = synthDatabase(seedProps({ archiver: { storage: storage() }, backups: { atReady: false, schedule: '0 0 1 1 *' } }));
  const { pods, server: s3 } = s3ServerAndPods(scratch);

  it('exits non-zero with the bootstrap\'s refusal in its log, the volume untouched, the server never started, the archive unchanged', async () => {
    const pod = await pods.make(objects, 'wal-postgres', 0);
    await pod.start();
    await pod.waitReady({ primary: true });
    // The sidecar's CREATE ROLE is WAL too: written before the archive is counted.
    await pod.waitForRoles();
    pod.sql('create table orders(id bigint primary key, note text)');
    pod.sql('insert into orders select g, md5(g::text) from generate_series(1, 1000) g');
    await pod.switchAndArchive();
    expect(pod.backupList()).toEqual([]);
    const before = await archived(s3(), 'wal-postgres');
    expect(before.filter((key) => key.startsWith('wal/')).length).toBeGreaterThan(0);

    await pod.stop();
    pod.deleteVolume();
    const from = pod.log().length;
    await pod.start();
    const code = await pod.postgresExitCode(60_000);
    const log = pod.log().slice(from);
    expect(code, log).not.toBe(0);
    expect(log).toContain('start: wal-postgres-0 is the primary');
    expect(log).toMatch(/level=error .*bootstrap refused: the archive at s3:\/\/kubedb\/kubedb\/demo\/wal-postgres\/archive \(endpoint \S+\) holds \d+ object\(s\) \(WAL\) but no complete backup/);
    expect(log).not.toContain('start: bootstrap:');
    expect(log).not.toContain('init process complete');
    expect(log).not.toContain('The files belonging to this database system');
    expect(log).not.toContain('database system is ready');
    // The volume: the sidecar's spool and nothing else.
    expect(fs.readdirSync(pod.volume)).toEqual(['archiver-spool']);
    expect(await archived(s3(), 'wal-postgres')).toEqual(before);
  }, 120_000);
});

describe('5. standbys cloned from the archive (standbys.cloneFrom: archive; rendered start.sh and sidecar, PostgreSQL 15, s3rver)', () => {
  const { pods } = s3ServerAndPods(scratch);

  it('a new standby restores the newest base backup of the archive, replays the archived WAL and streams the rest: pod 0 sends no base backup', async () => {
    const { objects } = synthDatabase(seedProps({ archiver: { storage: storage() }, standbys: { cloneFrom: CloneSource.ARCHIVE } }), 'wal-postgres-arc');
    const primary = await pods.make(objects, 'wal-postgres-arc', 0);
    await primary.start();
    await primary.waitReady({ primary: true });
    primary.sql('create table orders(id bigint primary key, note text)');
    primary.sql("insert into orders select g, 'before the backup' from generate_series(1, 1000) g");
    await primary.waitForBackup(() => true);
    // After the backup: archived WAL the standby replays, then WAL it can only stream.
    primary.sql("insert into orders select g, 'archived' from generate_series(1001, 20000) g");
    const archivedSegment = await primary.switchAndArchive();
    primary.sql("insert into orders select g, 'not archived yet' from generate_series(20001, 21000) g");
    const expected = primary.sql(ORDERS);

    const standby = await pods.make(objects, 'wal-postgres-arc', 1, primary);
    await standby.start();
    await waitStreaming(standby, 1);
    const lsn = primary.sql('select pg_current_wal_lsn()');
    const deadline = Date.now() + 30_000;
    while (standby.tryPsql(`select pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`) !== 't' && Date.now() < deadline) await sleep(100);
    expect(standby.sql(ORDERS)).toBe(expected);
    const log = standby.log();
    expect(log).toContain('start: copying the newest base backup of the archive');
    expect(log).toContain('start: copied from the archive; the standby replays the archived WAL, then streams');
    expect(log).toContain(`restored log file "${archivedSegment}" from archive`);
    expect(log).not.toContain('cloning the primary');
    // No base backup was sent by pod 0: its server log has no walsender of pg_basebackup.
    expect(primary.log()).not.toMatch(/pg_basebackup|BASE_BACKUP/);
  }, 180_000);

  it('with no backup in the archive yet (backups at ready off, the schedule not due), a new standby clones pod 0 instead', async () => {
    const { objects } = synthDatabase(
      seedProps({ archiver: { storage: storage() }, standbys: { cloneFrom: CloneSource.ARCHIVE }, backups: { atReady: false, schedule: '0 2 * * *' } }),
      'wal-postgres-arc2',
    );
    const primary = await pods.make(objects, 'wal-postgres-arc2', 0);
    await primary.start();
    await primary.waitReady({ primary: true });
    primary.sql('create table orders(id bigint primary key, note text)');
    primary.sql("insert into orders select g, 'rows' from generate_series(1, 1000) g");
    const standby = await pods.make(objects, 'wal-postgres-arc2', 1, primary);
    await standby.start();
    await waitStreaming(standby, 1);
    const log = standby.log();
    expect(log).toContain('start: copying the newest base backup of the archive');
    expect(log).toContain('start: no copy from the archive (above): cloning the primary instead');
    expect(standby.sql('select count(*) from orders')).toBe('1000');
  }, 120_000);
});

/** A server log without the lines of connections refused while the server starts (the tests poll it). */
function withoutConnectionNoise(log: string): string {
  return log
    .split('\n')
    .filter((line) => !/FATAL: {2}the database system is (not yet accepting connections|starting up)|DETAIL: {2}Consistent recovery state has not been yet reached/.test(line))
    .join('\n');
}

/** Waits until `pod`'s WAL receiver streams timeline `timeline`. */
async function waitStreaming(pod: RenderedPod, timeline: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pod.tryPsql(`select received_tli = ${timeline} and status = 'streaming' from pg_stat_wal_receiver`) !== 't') {
    if (Date.now() > deadline || !pod.postgresRunning) throw new Error(`${pod.podName} does not stream timeline ${timeline}:\n${pod.log().slice(-3000)}`);
    await sleep(100);
  }
}
