/**
 * The pod of the seed example, minus Kubernetes: a real PostgreSQL 15 runs the rendered
 * postgresql.conf and pg_hba.conf, with the postgres container's environment (Secret references
 * resolved to test values, as the kubelet would), beside the `archiver` sidecar started with its
 * rendered command and environment, both as the same user (uid 999 in the pod, postgres here);
 * the archive goes to an S3-compatible server on 127.0.0.1.
 *
 * What differs from the pod, and only that: paths and ports that belong to the container
 * (/opt/archiver is the build output, the socket and hba file live in the cluster's directory,
 * port and listen address are a free port on 127.0.0.1), the S3 endpoint (the test's s3rver, which
 * needs WHEN_REQUIRED checksums) and the spool directory.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARCHIVER_INSTALL_DIR } from '../../archiver/src/contract';
import { openStorage } from '../../archiver/src/storage/open';
import { ArchiveStorage } from '../../constructs';
import { ROOT } from '../support/archiver';
import { PostgresCluster, giveToPostgres } from '../support/postgres';
import { startS3Server } from '../support/s3-server';
import { container, find, fromBuild, podEnvironment, seedProps, synthDatabase } from './fixtures';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'rendered-pod-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Replaces `from` in `text`, failing when it is not there (the rendering changed: update the test). */
function replaced(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`the rendered file no longer contains ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

/** The rendered postgresql.conf with the container's paths and port replaced by the cluster's. */
function renderedConf(conf: string, cluster: PostgresCluster): string {
  conf = replaced(conf, ARCHIVER_INSTALL_DIR, path.join(ROOT, 'archiver/dist'));
  conf = replaced(conf, "listen_addresses = '*'", "listen_addresses = '127.0.0.1'");
  conf = replaced(conf, 'port = 5432', `port = ${cluster.port}`);
  conf = replaced(conf, "unix_socket_directories = '/var/run/postgresql'", `unix_socket_directories = '${cluster.baseDir}'`);
  return replaced(conf, "hba_file = '/etc/postgresql-archived/pg_hba.conf'", `hba_file = '${path.join(cluster.baseDir, 'pg_hba.conf')}'`);
}

/** Gives `cluster` the rendered files, included last so that they win over the test defaults. */
function useRenderedFiles(cluster: PostgresCluster, files: Record<string, string>): void {
  fs.writeFileSync(path.join(cluster.baseDir, 'rendered.conf'), renderedConf(files['postgresql.conf'], cluster));
  fs.writeFileSync(path.join(cluster.baseDir, 'pg_hba.conf'), files['pg_hba.conf']);
  giveToPostgres(cluster.baseDir);
  cluster.configure({ include: `'${path.join(cluster.baseDir, 'rendered.conf')}'` });
}

function postgresIds(): { uid: number; gid: number } {
  return { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) };
}

describe('the seed pod\'s rendered configuration on a real PostgreSQL 15 with its archiver sidecar', () => {
  it('archives every segment through the sidecar to {bucket}/kubedb/{namespace}/{name}/archive/wal/, and another pod recovers every row from there', async () => {
    const { objects } = synthDatabase(seedProps({
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: 'kubedb' }) },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const files = find(objects, 'ConfigMap', 'wal-postgres-config').data!;
    const server = await startS3Server({ buckets: ['kubedb'] });
    const secrets = {
      's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
      'wal-postgres-auth': { password: 'test-password' },
    };
    /** A pod's spool and environments; the sidecar started (as the pod's start.sh waits for it). */
    const startPod = async (name: string) => {
      const spool = path.join(scratch, `${name}-spool`);
      fs.mkdirSync(spool);
      giveToPostgres(spool);
      const local = { ARCHIVER_S3_ENDPOINT: server.endpoint, ARCHIVER_S3_CHECKSUMS: 'when_required', ARCHIVER_SPOOL: spool };
      const [node, bundle, ...args] = container(statefulSet, 'archiver').command;
      const logFile = path.join(scratch, `${name}-sidecar.log`);
      const log = fs.openSync(logFile, 'a');
      const sidecar = spawn(fromBuild(node), [fromBuild(bundle), ...args], {
        env: { PATH: process.env.PATH!, ...podEnvironment(statefulSet, secrets, 'archiver'), ...local },
        ...postgresIds(),
        cwd: scratch,
        stdio: ['ignore', 'ignore', log],
      });
      fs.closeSync(log);
      sidecars.push(sidecar);
      for (let i = 0; i < 400 && !fs.existsSync(path.join(spool, 'daemon.port')); i++) await new Promise((r) => setTimeout(r, 25));
      expect(fs.existsSync(path.join(spool, 'daemon.port'))).toBe(true);
      const postgresEnv: Record<string, string> = { ...podEnvironment(statefulSet, secrets), ...local };
      expect(postgresEnv.ARCHIVER_DAEMON).toBe('external');
      return { postgresEnv, sidecarLog: () => fs.readFileSync(logFile, 'utf8') };
    };

    let cluster: PostgresCluster | undefined;
    let restored: PostgresCluster | undefined;
    const sidecars: ChildProcess[] = [];
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
      for (const sidecar of sidecars) {
        if (sidecar.exitCode !== null) continue;
        sidecar.kill('SIGTERM');
        await new Promise((r) => sidecar.once('exit', r));
      }
      await server.stop();
    }
  }, 180_000);
});
