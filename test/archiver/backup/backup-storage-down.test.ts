/**
 * A base backup whose storage goes away while parts are uploading (s3rver killed, as a crash
 * would): backup-push fails within its deadlines instead of waiting for ever, nothing of it is
 * listed, and once the server is back the next backup succeeds. And a restore whose download is
 * cut off mid-part (the main thread downloads the parts for the worker threads: body-channel.ts)
 * fails with the storage's error, removes what it wrote, and the next restore succeeds.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { LAUNCHER, eventually, runArchiverAsPostgres, spawnArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-storage-down-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** s3rver, and a primary archiving to it through the launcher with a table of ~40 MB; `tearDown` ends all of it. */
async function archivingPrimary(): Promise<{ backend: TestBackend; base: string; env: Record<string, string>; primary: PostgresCluster; tearDown: () => Promise<void> }> {
  const backend = await startBackend('s3rver (S3-compatible)', scratch);
  const base = fs.mkdtempSync(path.join(scratch, 'case-'));
  giveToPostgres(base);
  const env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
  let primary: PostgresCluster | undefined;
  const tearDown = async () => {
    stopArchiver(env);
    await primary?.remove();
    await backend.stop();
  };
  try {
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` } });
    primary.start();
    primary.sql('create table t(id int, payload text)');
    primary.sql('insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 120000) g');
    return { backend, base, env, primary, tearDown };
  } catch (error) {
    await tearDown();
    throw error;
  }
}

it('fails, lists nothing, and the next backup succeeds once the server is back', async () => {
  const { backend, env, primary, tearDown } = await archivingPrimary();
  try {
    const serverEnv = { PATH: process.env.PATH!, ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port), ARCHIVER_TIMEOUT_SECONDS: '5', ARCHIVER_MAX_ATTEMPTS: '2' };
    const push = spawnArchiverAsPostgres(['backup-push', '--part-size-mib', '1', '--concurrency', '1'], serverEnv);
    let stderr = '';
    push.stderr.on('data', (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) => push.once('close', resolve));
    expect(await eventually(() => /msg="backup started"/.test(stderr), 30_000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await backend.s3!.crash();
    const started = Date.now();
    const code = await closed;
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(90_000);
    expect(stderr).toMatch(/msg="backup failed: nothing of it is listed"/);
    await backend.s3!.restart();
    const list = runArchiverAsPostgres(['backup-list', '--json'], env);
    expect(JSON.parse(list.stdout)).toEqual([]);
    const next = runArchiverAsPostgres(['backup-push'], serverEnv);
    expect(next.stderr).toMatch(/msg="backup complete"/);
    expect(next.status).toBe(0);
  } finally {
    await tearDown();
  }
}, 300_000);

/** spawnArchiverAsPostgres to its end: the test's own proxy serves meanwhile (spawnSync would block it). */
async function runArchiverAsPostgresAsync(args: string[], env: Record<string, string>): Promise<{ status: number | null; stderr: string }> {
  const child = spawnArchiverAsPostgres(args, env);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { status, stderr };
}

/**
 * Between the archiver and s3rver: passes every request through, except that the first GET of a
 * backup part is answered with its headers and half of its body, then the connection is cut (a
 * server killed mid-response). Deterministic where killing s3rver races the download.
 */
async function startCuttingProxy(upstream: string): Promise<{ endpoint: string; cut: () => string | undefined; close: () => Promise<void> }> {
  const target = new URL(upstream);
  let cutPath: string | undefined;
  const server = http.createServer((req, res) => {
    const forward = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      const length = Number(answer.headers['content-length'] ?? 0);
      const cutting = cutPath === undefined && req.method === 'GET' && /\/parts\/\d+\.tar(\?|$)/.test(req.url ?? '') && answer.statusCode === 200 && length > 2;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!cutting) {
        answer.pipe(res);
        return;
      }
      cutPath = req.url;
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        const room = Math.floor(length / 2) - sent;
        if (room <= 0) return;
        res.write(chunk.subarray(0, room));
        sent += Math.min(room, chunk.length);
        if (sent >= Math.floor(length / 2)) setTimeout(() => res.socket?.destroy(), 50);
      });
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    cut: () => cutPath,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

it('backup-fetch: a part cut off mid-download fails the restore with the storage\'s error, removes what it wrote, and the next restore succeeds', async () => {
  const { backend, base, env, primary, tearDown } = await archivingPrimary();
  const proxy = await startCuttingProxy(backend.env.ARCHIVER_S3_ENDPOINT);
  try {
    const pushed = runArchiverAsPostgres(['backup-push'], { PATH: process.env.PATH!, ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
    expect(pushed.status).toBe(0);
    const target = path.join(base, 'restored');
    const throughProxy = { ...env, ARCHIVER_S3_ENDPOINT: proxy.endpoint, ARCHIVER_TIMEOUT_SECONDS: '5', ARCHIVER_MAX_ATTEMPTS: '2' };
    const started = Date.now();
    const failed = await runArchiverAsPostgresAsync(['backup-fetch', 'LATEST', target], throughProxy);
    expect(proxy.cut()).toMatch(/\/parts\/\d+\.tar(\?|$)/);
    expect(failed.status).toBe(1);
    expect(Date.now() - started).toBeLessThan(90_000);
    expect(failed.stderr).toMatch(/msg="restore failed: what it wrote is removed"/);
    expect(failed.stderr).toMatch(/error=StorageError/);
    expect(failed.stderr).not.toMatch(/ECONNREFUSED/);
    expect(fs.existsSync(target)).toBe(false);
    const again = await runArchiverAsPostgresAsync(['backup-fetch', 'LATEST', target], throughProxy);
    expect(again.stderr).toMatch(/msg="restore complete"/);
    expect(again.status).toBe(0);
    expect(fs.existsSync(path.join(target, 'PG_VERSION'))).toBe(true);
  } finally {
    await proxy.close();
    await tearDown();
  }
}, 300_000);
