/**
 * PostgresConfig's files (constructs/postgres-config.ts, start-script.ts) on a real PostgreSQL 15,
 * in the pod of the seed example minus Kubernetes: a real PostgreSQL 15 runs the rendered
 * postgresql.conf and pg_hba.conf, with the postgres container's environment (Secret references
 * resolved to test values, as the kubelet would), beside the `archiver` sidecar started with its
 * rendered command and environment, both as the same user (uid 999 in the pod, postgres here);
 * the archive goes to an S3-compatible server on 127.0.0.1.
 *
 * What differs from the pod, and only that: paths and ports that belong to the container
 * (/opt/archiver is the build output, the socket and hba file live in the cluster's directory,
 * port and listen address are a free port on 127.0.0.1), the S3 endpoint (the test's s3rver, which
 * needs WHEN_REQUIRED checksums) and the spool directory.
 *
 * Then the replication and WAL settings rendered for the most members on the smallest volume:
 * a clone and a backup by hand beside 30 streaming standbys (pg_receivewal holds one WAL sender,
 * as a standby's walreceiver does), and the PostgreSQL rule that keeps max_wal_senders fixed.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ARCHIVER_INSTALL_DIR, REPLICATION_PASSFILE } from '../../contract';
import { REPLICATION_ROLE_GRANTS, writePassfile } from '../../archiver/src/daemon/credentials';
import { openStorage } from '../../archiver/src/storage/open';
import { ArchiveStorage } from '../../constructs';
import { ARCHIVER_SPOOL_DIR } from '../../constructs/pod-layout';
import { ROOT, startSidecar, stopSidecar } from '../../testkit/archiver';
import { PG_BIN, PostgresCluster, giveToPostgres, postgresUser } from '../../testkit/postgres';
import { freePort } from '../../testkit/ports';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { find, podEnvironment, replaced, seedProps, sidecarCommand, synthDatabase } from './fixtures';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'rendered-pod-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/**
 * The rendered postgresql.conf and pg_hba.conf written into `dir` (socket there too), with the
 * container's paths and port replaced; returns the postgresql.conf path.
 */
function writeRenderedFiles(files: Record<string, string>, dir: string, port: number, primaryPort?: number, passfile?: string): string {
  let conf = files['postgresql.conf'];
  conf = replaced(conf, ARCHIVER_INSTALL_DIR, path.join(ROOT, 'archiver/dist'));
  conf = replaced(conf, "listen_addresses = '*'", "listen_addresses = '127.0.0.1'");
  conf = replaced(conf, 'port = 5432', `port = ${port}`);
  conf = replaced(conf, "unix_socket_directories = '/var/run/postgresql'", `unix_socket_directories = '${dir}'`);
  conf = replaced(conf, "hba_file = '/etc/postgresql-archived/pg_hba.conf'", `hba_file = '${path.join(dir, 'pg_hba.conf')}'`);
  if (primaryPort !== undefined) conf = replaced(conf, 'host=wal-postgres-0.wal-postgres-pods port=5432', `host=127.0.0.1 port=${primaryPort}`);
  if (passfile !== undefined) conf = replaced(conf, `passfile=${REPLICATION_PASSFILE}`, `passfile=${passfile}`);
  const file = path.join(dir, 'rendered.conf');
  fs.writeFileSync(file, conf);
  fs.writeFileSync(path.join(dir, 'pg_hba.conf'), files['pg_hba.conf']);
  giveToPostgres(dir);
  return file;
}

/** Gives `cluster` the rendered files, included last so that they win over the test defaults. */
function useRenderedFiles(cluster: PostgresCluster, files: Record<string, string>): void {
  cluster.configure({ include: `'${writeRenderedFiles(files, cluster.baseDir, cluster.port)}'` });
}

describe('the seed pod\'s rendered configuration on a real PostgreSQL 15 with its archiver sidecar', () => {
  const { objects } = synthDatabase(seedProps({
    archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: 'kubedb' }) },
  }));
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
  const files = find(objects, 'ConfigMap', 'wal-postgres-config').data!;
  let server: S3Server;
  let secrets: Record<string, Record<string, string>>;
  const sidecars: ChildProcess[] = [];
  // A server (an archive) per spec: two clusters must never share one.
  beforeEach(async () => {
    server = await startS3Server({ buckets: ['kubedb'] });
    secrets = {
      's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
      'wal-postgres-auth': { password: 'test-password' },
    };
  });
  afterEach(async () => {
    for (const sidecar of sidecars.splice(0)) await stopSidecar(sidecar);
    await server?.stop();
  });

  /** A pod's spool and environments; the sidecar started (as the pod's start.sh waits for it). */
  const startPod = async (name: string) => {
    const spool = path.join(scratch, `${name}-spool`);
    fs.mkdirSync(spool);
    giveToPostgres(spool);
    const local = { ARCHIVER_S3_ENDPOINT: server.endpoint, ARCHIVER_S3_CHECKSUMS: 'when_required', ARCHIVER_SPOOL: spool };
    const logFile = path.join(scratch, `${name}-sidecar.log`);
    // Each pod has its own network namespace; here the sidecars share the host's ports.
    const metrics = { ARCHIVER_METRICS_PORT: String(await freePort()) };
    sidecars.push(await startSidecar(sidecarCommand(statefulSet), { ...podEnvironment(statefulSet, secrets, 'archiver'), ...local, ...metrics }, { logFile, cwd: scratch, ...postgresUser() }));
    const postgresEnv: Record<string, string> = { ...podEnvironment(statefulSet, secrets), ...local };
    expect(postgresEnv.ARCHIVER_DAEMON).toBe('external');
    return { spool, postgresEnv, sidecarLog: () => fs.readFileSync(logFile, 'utf8') };
  };

  it('archives every segment through the sidecar to {bucket}/kubedb/{namespace}/{name}/archive/wal/, and another pod recovers every row from there', async () => {
    let cluster: PostgresCluster | undefined;
    let restored: PostgresCluster | undefined;
    try {
      const primaryPod = await startPod('primary');
      cluster = await PostgresCluster.create({ env: primaryPod.postgresEnv });
      useRenderedFiles(cluster, files);
      cluster.start();

      expect(cluster.sql('show archive_mode')).toBe('on');
      expect(cluster.sql('show archive_timeout')).toBe('1min');
      expect(cluster.sql('show wal_level')).toBe('replica');
      expect(cluster.sql('show archive_command')).toBe(`${path.join(ROOT, 'archiver/dist')}/bin/archiver wal-push %p`);
      expect(cluster.sql('show password_encryption')).toBe('scram-sha-256');

      cluster.sql('create table orders(id bigint primary key, note text)');
      cluster.sql("insert into orders select g, md5(g::text) from generate_series(1, 1000) g");
      const backup = cluster.baseBackup();
      cluster.sql("insert into orders select g, repeat(md5(g::text), 4) from generate_series(1001, 250000) g");
      cluster.sql('select pg_switch_wal()');
      const expected = cluster.sql('select count(*), md5(string_agg(note, \',\' order by id)) from orders');
      await cluster.waitForArchiving();
      expect(cluster.sql('select failed_count from pg_stat_archiver')).toBe('0');
      const done = fs.readdirSync(path.join(cluster.dataDir, 'pg_wal/archive_status')).filter((f) => f.endsWith('.done')).map((f) => f.slice(0, -5)).sort();
      expect(done.length).toBeGreaterThanOrEqual(4);

      const storage = await openStorage({ kind: 's3', bucket: 'kubedb', prefix: 'kubedb/demo/wal-postgres/archive', endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' });
      try {
        const archived = (await storage.list('wal/')).map((o) => o.key.slice('wal/'.length));
        expect(archived).toEqual(expect.arrayContaining(done));
      } finally {
        await storage.close();
      }
      // The sidecar stored every one (ahead of the call or for it); no call had to work alone.
      const sidecarLines = primaryPod.sidecarLog();
      const pushed = [...sidecarLines.matchAll(/msg=pushed wal=(\w{24}) /g)].map((m) => m[1]).sort();
      expect(pushed).toEqual(expect.arrayContaining(done.filter((f) => !f.endsWith('.backup'))));
      expect(sidecarLines).not.toMatch(/level=(warn|error)/);
      expect(cluster.log()).not.toContain('background archiver unavailable');
      cluster.stop();

      // Another pod recovers the base backup from the archive with the rendered restore_command.
      const restorePod = await startPod('restore');
      restored = await PostgresCluster.create({ env: restorePod.postgresEnv, fromDataDirectory: backup });
      useRenderedFiles(restored, files);
      // Not archiving again from the recovered server into the same archive; hot_standby off so
      // that the end of recovery shows in the log (the rendered file turns it on).
      restored.configure({ archive_mode: 'off', hot_standby: 'off' });
      await restored.recoverFromArchive();
      expect(restored.sql('select count(*), md5(string_agg(note, \',\' order by id)) from orders')).toBe(expected);
      expect(restored.log()).toMatch(/restored log file "\w{24}" from archive/);
      expect(restorePod.sidecarLog()).not.toMatch(/level=(warn|error)/);
    } finally {
      await cluster?.remove();
      await restored?.remove();
    }
  }, 180_000);

  it('starts pod 1 with the rendered start.sh: it clones pod 0 with pg_basebackup (SCRAM, the replication role\'s passfile) and streams from it as a hot standby', async () => {
    let primary: PostgresCluster | undefined;
    let standby: ChildProcess | undefined;
    const standbyDir = path.join(scratch, 'standby');
    try {
      const primaryPod = await startPod('streaming-primary');
      primary = await PostgresCluster.create({ env: primaryPod.postgresEnv });
      useRenderedFiles(primary, files);
      primary.start();
      // What the official image's entrypoint does with POSTGRES_PASSWORD on first start.
      primary.sql(`alter user postgres password '${secrets['wal-postgres-auth'].password}'`);
      // What pod 0's sidecar does from the replication Secret (the sidecars here have no Secret
      // volumes: replication-role.real-postgres.test.ts runs the whole pod).
      primary.sql("create role replication login replication password 'test-replication-password'");
      for (const fn of REPLICATION_ROLE_GRANTS) primary.sql(`grant execute on function ${fn} to replication`);
      primary.sql('create table orders(id bigint primary key, note text)');
      primary.sql("insert into orders select g, md5(g::text) from generate_series(1, 1000) g");

      // Pod 1: its own data directory, spool and sidecar; the rendered start.sh with the
      // container's paths, the primary's DNS name and port replaced by the test cluster's.
      fs.mkdirSync(standbyDir);
      const standbyPod = await startPod('standby');
      const standbyPort = await freePort();
      // What pod 1's sidecar writes from the replication Secret.
      const passfile = path.join(standbyDir, 'replication.pgpass');
      writePassfile(passfile, 'replication', 'test-replication-password');
      const conf = writeRenderedFiles(files, standbyDir, standbyPort, primary.port, passfile);
      let script = files['start.sh'];
      script = replaced(script, 'primary_host=wal-postgres-0.wal-postgres-pods', 'primary_host=127.0.0.1');
      script = replaced(script, 'primary_port=5432', `primary_port=${primary.port}`);
      script = replaced(script, '/etc/postgresql-archived/postgresql.conf', conf);
      script = replaced(script, 'rm -f /tmp/probe-', `rm -f ${standbyDir}/probe-`);
      script = replaced(script, `PGPASSFILE=${REPLICATION_PASSFILE}`, `PGPASSFILE=${passfile}`);
      script = replaced(script, ARCHIVER_SPOOL_DIR, standbyPod.spool);
      fs.writeFileSync(path.join(standbyDir, 'start.sh'), script);
      giveToPostgres(standbyDir);
      const output = path.join(standbyDir, 'start.out');
      const out = fs.openSync(output, 'a');
      standby = spawn('bash', [path.join(standbyDir, 'start.sh')], {
        env: { ...standbyPod.postgresEnv, PATH: `${PG_BIN}:${process.env.PATH}`, POD_NAME: 'wal-postgres-1', PGDATA: path.join(standbyDir, 'pgdata') },
        ...postgresUser(),
        cwd: standbyDir,
        stdio: ['ignore', out, out],
        // Its own process group: the script, pg_basebackup and PostgreSQL are stopped together.
        detached: true,
      });
      fs.closeSync(out);
      const psql = (query: string) =>
        spawnSync(`${PG_BIN}/psql`, ['-h', standbyDir, '-p', String(standbyPort), '-U', 'postgres', '-qAtX', '-c', query], { ...postgresUser(), encoding: 'utf8', timeout: 20_000 });

      // Streaming once the standby's own walreceiver streams (pg_basebackup's WAL stream also
      // shows in the primary's pg_stat_replication while it clones).
      const deadline = Date.now() + 60_000;
      while (psql('select status from pg_stat_wal_receiver').stdout.trim() !== 'streaming') {
        if (Date.now() > deadline || standby.exitCode !== null) throw new Error(`no streaming standby:\n${fs.readFileSync(output, 'utf8').slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(primary.sql('select usename from pg_stat_replication')).toBe('replication');
      const log = fs.readFileSync(output, 'utf8');
      expect(log).toContain('start: wal-postgres-1 is a standby of 127.0.0.1');
      expect(fs.existsSync(path.join(standbyDir, 'pgdata/standby.signal'))).toBe(true);
      expect(fs.existsSync(path.join(standbyDir, 'pgdata.clone'))).toBe(false);
      expect(psql('select pg_is_in_recovery()').stdout.trim()).toBe('t');

      // A write on the primary reaches the standby.
      primary.sql("insert into orders select g, md5(g::text) from generate_series(1001, 2000) g");
      const lsn = primary.sql('select pg_current_wal_lsn()');
      while (psql(`select pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`).stdout.trim() !== 't') {
        if (Date.now() > deadline) throw new Error(`the standby did not replay to ${lsn}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(psql('select count(*) from orders').stdout.trim()).toBe('2000');
      // Read-only, as a standby is.
      expect(psql("insert into orders values (0, 'x')").stderr).toContain('read-only transaction');
    } finally {
      if (standby?.pid !== undefined && standby.exitCode === null) {
        // PostgreSQL's fast shutdown (to the whole group: the script may still be cloning), then
        // SIGKILL should that not end it.
        const exited = new Promise((r) => standby!.once('exit', r));
        process.kill(-standby.pid, 'SIGINT');
        const timer = setTimeout(() => process.kill(-standby!.pid!, 'SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      await primary?.remove();
      fs.rmSync(standbyDir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('the rendered replication and WAL settings on a real PostgreSQL 15 (32 members on the smallest volume)', () => {
  const files = find(synthDatabase(seedProps({ replicas: 32, storage: { size: '512Mi' } })).objects, 'ConfigMap', 'wal-postgres-config').data!;
  /** The rendered value of `name` in postgresql.conf. */
  const rendered = (name: string) => {
    const match = new RegExp(`^${name} = (.*)$`, 'm').exec(files['postgresql.conf']);
    if (!match) throw new Error(`postgresql.conf no longer sets ${name}`);
    return match[1];
  };
  const settings = Object.fromEntries(['wal_level', 'max_wal_senders', 'wal_keep_size', 'max_wal_size', 'min_wal_size', 'hot_standby'].map((name) => [name, rendered(name)]));

  /** Runs a PostgreSQL tool as the postgres user; resolves with its exit code and output. */
  const run = (tool: string, args: string[]) => new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(`${PG_BIN}/${tool}`, args, { ...postgresUser(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });

  it('lets pod 31 clone pod 0 (pg_basebackup --wal-method=stream, as start.sh) while 30 standbys stream and a pg_basebackup by hand runs', async () => {
    let primary: PostgresCluster | undefined;
    const receivers: ChildProcess[] = [];
    try {
      primary = await PostgresCluster.create({ settings });
      primary.start();
      expect(primary.sql('show max_wal_senders')).toBe('64');
      expect(primary.sql("select string_agg(setting || unit, ' ' order by name) from pg_settings where name in ('max_wal_size', 'min_wal_size', 'wal_keep_size')")).toBe('128MB 64MB 64MB');
      primary.sql('create table orders as select g as id, md5(g::text) as note from generate_series(1, 10000) g');

      // Pods 1..30 streaming: one WAL sender each, as a standby's walreceiver holds.
      for (let i = 1; i <= 30; i++) {
        const dir = path.join(primary.baseDir, `standby-${i}`);
        fs.mkdirSync(dir);
        giveToPostgres(dir);
        receivers.push(spawn(`${PG_BIN}/pg_receivewal`, ['-h', primary.baseDir, '-p', String(primary.port), '-U', 'postgres', '-D', dir, '--no-loop', '--no-password'], { ...postgresUser(), stdio: 'ignore' }));
      }
      const deadline = Date.now() + 30_000;
      while (primary.sql('select count(*) from pg_stat_replication') !== '30') {
        if (Date.now() > deadline) throw new Error(`the standbys did not all stream: ${primary.sql('select count(*) from pg_stat_replication')} of 30\n${primary.log().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }

      // Pod 31's clone (start.sh's options) and an operator's backup at the same time: two senders each.
      const clone = (name: string) => run('pg_basebackup', ['-h', primary!.baseDir, '-p', String(primary!.port), '-U', 'postgres', '--pgdata', path.join(primary!.baseDir, name), '--wal-method=stream', '--checkpoint=fast', '--no-password', '--no-sync']);
      const results = await Promise.all([clone('pod-31'), clone('by-hand')]);
      expect(results.map((r) => r.output)).toStrictEqual(['', '']);
      expect(results.map((r) => r.code)).toStrictEqual([0, 0]);
      expect(primary.log()).not.toContain('number of requested standby connections exceeds max_wal_senders');
    } finally {
      for (const receiver of receivers) receiver.kill('SIGINT');
      await primary?.remove();
    }
  }, 60_000);

  it('is why max_wal_senders does not follow replicas: a standby with fewer senders than its primary refuses to start', async () => {
    let primary: PostgresCluster | undefined;
    let standby: PostgresCluster | undefined;
    try {
      primary = await PostgresCluster.create({ settings });
      primary.start();
      const copy = primary.baseBackup();
      standby = await PostgresCluster.create({ fromDataDirectory: copy, settings: { ...settings, max_wal_senders: 10, primary_conninfo: `'host=127.0.0.1 port=${primary.port} user=postgres'` } });
      fs.rmSync(copy, { recursive: true, force: true });
      fs.writeFileSync(path.join(standby.dataDir, 'standby.signal'), '');
      giveToPostgres(standby.dataDir);
      expect(() => standby!.start()).toThrow();
      expect(standby.log()).toContain('FATAL:  recovery aborted because of insufficient parameter settings');
      expect(standby.log()).toContain('max_wal_senders = 10 is a lower setting than on the primary server, where its value was 64.');
    } finally {
      await standby?.remove();
      await primary?.remove();
    }
  }, 60_000);
});
