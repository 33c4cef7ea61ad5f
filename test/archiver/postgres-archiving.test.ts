/**
 * The whole loop with real parts: a PostgreSQL 15 primary archives through the archiver
 * (archive_command) into real storage, every archived segment is checked in the archive, and a
 * second PostgreSQL recovers from a base backup plus the archive (restore_command) and has every
 * row. Once per backend: a local directory, s3rver (an S3-compatible server on 127.0.0.1) and
 * firebase-tools' GCS emulator.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../archiver/src/storage/open';
import { StorageOptions } from '../../archiver/src/storage/storage';
import { LAUNCHER, stopArchiver } from '../../testkit/archiver';
import { startGcsEmulator } from '../../testkit/gcs-emulator';
import { PostgresCluster, giveToPostgres } from '../../testkit/postgres';
import { startS3Server } from '../../testkit/s3-server';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-archiving-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

interface Backend {
  /** The archiver's environment (without spool). */
  env: Record<string, string>;
  /** The same location for the test's own look into the archive. */
  storage: StorageOptions;
  stop(): Promise<void>;
}

const backends: Record<string, () => Promise<Backend>> = {
  'a local directory': async () => {
    const root = path.join(scratch, 'local-repo');
    fs.mkdirSync(root);
    giveToPostgres(root);
    return { env: { ARCHIVER_REPOSITORY: `file://${root}` }, storage: { kind: 'local', root }, stop: async () => undefined };
  },
  's3rver (S3-compatible)': async () => {
    const server = await startS3Server({ buckets: ['kubedb'] });
    const prefix = 'kubedb/demo/wal-postgres/archive';
    return {
      env: {
        ARCHIVER_REPOSITORY: `s3://kubedb/${prefix}`,
        ARCHIVER_S3_ENDPOINT: server.endpoint,
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
        // s3rver corrupts aws-chunked uploads; real S3 keeps the SDK's default.
        ARCHIVER_S3_CHECKSUMS: 'when_required',
      },
      storage: { kind: 's3', bucket: 'kubedb', prefix, endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' },
      stop: () => server.stop(),
    };
  },
  'the GCS emulator': async () => {
    const emulator = await startGcsEmulator();
    const prefix = 'kubedb/demo/wal-postgres/archive';
    return {
      env: { ARCHIVER_REPOSITORY: `gs://kubedb/${prefix}`, STORAGE_EMULATOR_HOST: emulator.apiEndpoint, GOOGLE_PROJECT_ID: emulator.projectId },
      storage: { kind: 'gcs', bucket: 'kubedb', prefix, apiEndpoint: emulator.apiEndpoint, projectId: emulator.projectId },
      stop: () => emulator.stop(),
    };
  },
};

describe.each(Object.keys(backends))('PostgreSQL archives to %s and a second PostgreSQL recovers every row', (backendName) => {
  it('archives every segment and recovers from base backup + archive', async () => {
    const backend = await backends[backendName]();
    const base = fs.mkdtempSync(path.join(scratch, 'case-'));
    fs.chmodSync(base, 0o755);
    giveToPostgres(base);
    const primaryEnv = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'primary-spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'primary-daemon.log') };
    const restoreEnv = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'restore-spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'restore-daemon.log') };
    let primary: PostgresCluster | undefined;
    let restored: PostgresCluster | undefined;
    try {
      primary = await PostgresCluster.create({
        env: primaryEnv,
        settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 },
      });
      primary.start();
      primary.sql('create table orders(id bigint primary key, customer text, note text)');
      primary.sql("insert into orders select g, md5(g::text), repeat('x', 100) from generate_series(1, 1000) g");
      const backup = primary.baseBackup();
      // About 5 segments of WAL after the base backup, then a switch so the last one is archived too.
      primary.sql("insert into orders select g, md5(g::text), repeat(md5(g::text), 3) from generate_series(1001, 300000) g");
      primary.sql('update orders set note = upper(note) where id % 7 = 0');
      primary.sql('select pg_switch_wal()');
      const expected = primary.sql('select count(*), sum(id), md5(string_agg(note, \',\' order by id)) from orders');
      await primary.waitForArchiving();

      // Every file PostgreSQL considers archived (.done) is in the archive.
      const done = fs.readdirSync(path.join(primary.dataDir, 'pg_wal/archive_status')).filter((f) => f.endsWith('.done')).map((f) => f.slice(0, -5)).sort();
      expect(done.length).toBeGreaterThanOrEqual(5);
      const storage = await openStorage(backend.storage);
      try {
        const archived = (await storage.list('wal/')).map((o) => o.key.slice('wal/'.length));
        expect(archived).toEqual(expect.arrayContaining(done));
        expect(JSON.parse((await storage.get('archive.json')).toString()).systemIdentifier).toBe(primary.sql('select system_identifier from pg_control_system()'));
      } finally {
        await storage.close();
      }
      // On failure, the lines that say why a call failed: PostgreSQL's and the background archiver's.
      const why = () => [primary!.log(), fs.existsSync(primaryEnv.ARCHIVER_DAEMON_LOG) ? fs.readFileSync(primaryEnv.ARCHIVER_DAEMON_LOG, 'utf8') : ''].join('\n').split('\n').filter((line) => /archive command|level=(warn|error)|FATAL|ERROR/.test(line)).join('\n');
      expect(primary.sql('select failed_count from pg_stat_archiver'), why()).toBe('0');
      primary.stop();
      stopArchiver(primaryEnv);

      restored = await PostgresCluster.create({
        env: restoreEnv,
        fromDataDirectory: backup,
        settings: { restore_command: `'${LAUNCHER} wal-fetch %f %p'`, archive_mode: 'off', hot_standby: 'off', recovery_target_timeline: "'current'" },
      });
      await restored.recoverFromArchive();
      expect(restored.sql('select count(*), sum(id), md5(string_agg(note, \',\' order by id)) from orders')).toBe(expected);
      expect(restored.log()).toMatch(/restored log file "0000000100000000000000\w\w" from archive/);
      expect(restored.log()).not.toMatch(/CorruptObjectError|level=error/);
    } finally {
      stopArchiver(primaryEnv);
      stopArchiver(restoreEnv);
      await primary?.remove();
      await restored?.remove();
      await backend.stop();
    }
  }, 240_000);
});
