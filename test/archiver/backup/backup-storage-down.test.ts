/**
 * A base backup whose storage goes away while parts are uploading (s3rver killed, as a crash
 * would): backup-push fails within its deadlines instead of waiting for ever, nothing of it is
 * listed, and once the server is back the next backup succeeds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { LAUNCHER, eventually, runArchiverAsPostgres, spawnArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { startBackend } from '../../../testkit/backends';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-storage-down-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

it('fails, lists nothing, and the next backup succeeds once the server is back', async () => {
  const backend = await startBackend('s3rver (S3-compatible)', scratch);
  const base = fs.mkdtempSync(path.join(scratch, 'case-'));
  giveToPostgres(base);
  const env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
  let primary: PostgresCluster | undefined;
  try {
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` } });
    primary.start();
    primary.sql('create table t(id int, payload text)');
    primary.sql('insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 120000) g');
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
    stopArchiver(env);
    await primary?.remove();
    await backend.stop();
  }
}, 300_000);
