/**
 * Base backups on the failure paths no other test takes, with real PostgreSQL 15, s3rver and real
 * parts: a backup whose WAL never reaches the archive (`--wal-timeout`), a restore into a disk
 * that fills up, and a restore whose storage goes away (killed, or frozen) half-way, a delta
 * chain's too (killed as the delta's parts download). Each fails
 * with its exit code and a message that says why, within its deadlines, and leaves nothing
 * behind; the next try succeeds once the cause is gone.
 */
import { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../contract';
import { openStorage } from '../../../archiver/src/storage/open';
import { LAUNCHER, eventually, lastLog, runArchiverAsPostgres, spawnArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { startTripwireProxy, within } from '../../../testkit/doubles';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { SmallDisk } from '../../../testkit/small-disk';
import { PostgresCluster, giveToPostgres } from '../../../testkit/postgres';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-failure-paths-'));
fs.chmodSync(scratch, 0o755);

const archiver = runArchiverAsPostgres;

/** A directory the archiver (running as postgres) may create things in. */
function postgresDirectory(): string {
  const directory = fs.mkdtempSync(path.join(scratch, 'dir-'));
  giveToPostgres(directory);
  return directory;
}

/** Bytes of the files under `directory` now (0 when it does not exist); a restore writes meanwhile. */
function bytesUnder(directory: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(directory, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const file = path.join(directory, entry.name);
    try {
      total += entry.isDirectory() ? bytesUnder(file) : fs.statSync(file).size;
    } catch {
      // removed meanwhile
    }
  }
  return total;
}

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  stderr(): string;
  /** The exit code, or 'killed' when it had not exited within `timeoutMs` (then it is killed). */
  exit(timeoutMs: number): Promise<number | null | 'killed'>;
}

/** spawnArchiverAsPostgres, its stderr collected, its wait bounded: no test waits for ever. */
function start(args: string[], env: Record<string, string>): Running {
  const child = spawnArchiverAsPostgres(args, env);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  return {
    child,
    stderr: () => stderr,
    exit: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'killed'>((resolve) => (timer = setTimeout(() => resolve('killed'), timeoutMs)));
      const result = await Promise.race([closed, late]);
      clearTimeout(timer);
      if (result === 'killed') {
        child.kill('SIGKILL');
        await closed;
      }
      return result;
    },
  };
}

let backend: TestBackend;
let primary: PostgresCluster;
let env: Record<string, string>;
const smallDiskMount = new SmallDisk(path.join(scratch, 'small-disk'));
const smallDisk = smallDiskMount.path;
const serverEnv = () => ({ ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
const backupNames = () => (JSON.parse(archiver(['backup-list', '--json'], env).stdout) as { name: string }[]).map((b) => b.name);

async function keysUnder(prefix: string): Promise<string[]> {
  const storage = await openStorage(backend.storage);
  try {
    return (await storage.list(prefix)).map((object) => object.key);
  } finally {
    await storage.close();
  }
}

beforeAll(async () => {
  backend = await startBackend('s3rver (S3-compatible)', scratch);
  const base = postgresDirectory();
  env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
  primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` } });
  primary.start();
  primary.sql('create table t(id int, payload text)');
  primary.sql("insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 20000) g");
}, 120_000);

afterAll(async () => {
  // One hook, in order: the mount goes before the directory that holds it.
  try {
    stopArchiver(env);
    await primary?.remove();
    await backend?.stop();
  } finally {
    smallDiskMount.unmount();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}, 120_000);

describe('backup-push whose WAL never reaches the archive', () => {
  it('fails after --wal-timeout naming the missing WAL, lists nothing, leaves no object; once archiving works the next backup succeeds', async () => {
    primary.sql("alter system set archive_command = '/bin/false'");
    primary.sql('select pg_reload_conf()');
    // A background archiver still running from an earlier archive_command watches
    // pg_wal/archive_status and pushes every new .ready file ahead, whatever archive_command says
    // now: the WAL would still arrive. Stopped, nothing archives.
    stopArchiver(env);
    try {
      const push = start(['backup-push', '--wal-timeout', '5', '--no-progress'], serverEnv());
      expect(await eventually(() => /waiting for the WAL of the backup/.test(push.stderr()), 60_000)).toBe(true);
      const waiting = Date.now();
      const name = /backup=(base_\w+)/.exec(push.stderr())![1];
      // Its parts and backup_label are stored by now.
      expect(await keysUnder(`basebackups/${name}/`)).toEqual(expect.arrayContaining([`basebackups/${name}/backup_label`, `basebackups/${name}/parts/0001.tar`]));
      const code = await push.exit(60_000);
      const waited = Date.now() - waiting;
      expect(code).toBe(EXIT_CODES.error);
      // 5 s, and the polling's last sleep (up to 5 s) and listing on top.
      expect(waited).toBeGreaterThanOrEqual(5000);
      expect(waited).toBeLessThan(20_000);
      expect(lastLog(push.stderr())).toMatchObject({ level: 'error', command: 'backup-push', error: 'BackupError', exit: '1' });
      expect(lastLog(push.stderr()).msg).toMatch(/^the WAL the backup needs is not in the archive after 5 s \(missing: [0-9A-F]{24}[^)]*\): check that archiving works \(archive_mode, archive_command, the archiver's log\)$/);
      expect(push.stderr()).toMatch(/msg="backup failed: nothing of it is listed"/);
      expect(backupNames()).toEqual([]);
      // They were removed when it failed.
      expect(await keysUnder(`basebackups/${name}/`)).toEqual([]);
      expect(await keysUnder('basebackups/')).toEqual([]);
      // The server's backup ended with it.
      expect(await eventually(() => primary.sql("select count(*) from pg_stat_activity where application_name = 'archiver backup'") === '0', 10_000)).toBe(true);
    } finally {
      primary.sql('alter system reset archive_command');
      primary.sql('select pg_reload_conf()');
    }
    const next = archiver(['backup-push', '--wal-timeout', '120', '--no-progress'], serverEnv());
    expect(next.stderr).toMatch(/msg="backup complete"/);
    expect(next.status).toBe(0);
    expect(backupNames()).toEqual([next.stdout.trim()]);
  }, 180_000);
});

describe('backup-fetch', () => {
  let name: string;
  let expected: string;
  /** The data directory's bytes in the backup. */
  let size: number;
  const fetchEnv = () => ({ ...backend.env, ARCHIVER_DAEMON: 'off', ARCHIVER_TIMEOUT_SECONDS: '5', ARCHIVER_MAX_ATTEMPTS: '2' });
  const checksum = (cluster: PostgresCluster) => cluster.sql("select count(*) || ' ' || sum(id) || ' ' || md5(string_agg(md5(b), '' order by id)) from big");

  beforeAll(async () => {
    // ~150 MB that does not compress: a restore of it takes seconds, long enough to cut it short.
    primary.sql('create extension if not exists pgcrypto');
    primary.sql('create table big(id int, b bytea)');
    primary.sql('alter table big alter column b set storage external');
    const random = Array.from({ length: 8 }, () => 'gen_random_bytes(1024)').join(' || ');
    for (let i = 0; i < 4; i++) primary.sql(`insert into big select g, ${random} from generate_series(${i * 4500 + 1}, ${(i + 1) * 4500}) g`);
    const pushed = archiver(['backup-push', '--json', '--no-progress', '--part-size-mib', '16'], serverEnv());
    expect(pushed.stderr).toMatch(/msg="backup complete"/);
    expect(pushed.status).toBe(0);
    const summary = JSON.parse(pushed.stdout) as { name: string; size: number };
    name = summary.name;
    size = summary.size;
    expect(size).toBeGreaterThan(150 * 1024 * 1024);
    expected = checksum(primary);
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
  }, 300_000);

  it('into a full disk fails (exit 1) with ENOSPC naming the file, and leaves the directory as it found it', () => {
    smallDiskMount.mount(16);
    expect(size).toBeGreaterThan(fs.statfsSync(smallDisk).blocks * fs.statfsSync(smallDisk).bsize);
    // The directory given, empty: what the restore wrote is removed, the directory stays.
    const into = archiver(['backup-fetch', name, smallDisk, '--no-progress'], fetchEnv());
    expect(into.status).toBe(EXIT_CODES.error);
    expect(into.stderr).toMatch(/msg="restore failed: what it wrote is removed"/);
    expect(fs.readdirSync(smallDisk)).toEqual([]);
    // A directory it creates: removed with everything in it.
    const created = archiver(['backup-fetch', name, path.join(smallDisk, 'data'), '--no-progress'], fetchEnv());
    expect(created.status).toBe(EXIT_CODES.error);
    expect(fs.readdirSync(smallDisk)).toEqual([]);
    // Nothing held open or left hidden: the space is free again.
    const disk = fs.statfsSync(smallDisk);
    expect(disk.bfree).toBe(disk.blocks);
    // The message says what happened and where: ENOSPC, and the file being written.
    for (const result of [into, created]) {
      expect(lastLog(result.stderr)).toMatchObject({ level: 'error', command: 'backup-fetch', exit: '1' });
      expect(lastLog(result.stderr).msg).toMatch(/ENOSPC: no space left on device/);
    }
    expect(lastLog(into.stderr).msg).toContain(`${smallDisk}/`);
    expect(lastLog(created.stderr).msg).toContain(`${smallDisk}/data/`);
  }, 120_000);

  it('fails within its deadlines when the storage is killed half-way, leaves nothing; after a restart the restore succeeds with every row', async () => {
    const parent = postgresDirectory();
    const directory = path.join(parent, 'data');
    const fetch = start(['backup-fetch', name, directory, '--concurrency', '1', '--no-progress'], fetchEnv());
    // Under way: some of the data written, most of it not.
    expect(await eventually(() => bytesUnder(directory) > 32 * 1024 * 1024, 120_000)).toBe(true);
    await crashAndExpectNothingLeft(fetch, parent);
    const restored = await restoreAndStart(name);
    try {
      expect(checksum(restored)).toBe(expected);
    } finally {
      await restored.remove();
    }
    // The message names the cause: the storage, the part and the location.
    expect(lastLog(fetch.stderr())).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'StorageError', exit: '1' });
    expect(lastLog(fetch.stderr()).msg).toMatch(/^storage getStream basebackups\/base_\w+\/parts\/\d{4}\.tar at s3:\/\/kubedb\/\S+ \(endpoint http:\/\/127\.0\.0\.1:\d+\) failed: /);
  }, 300_000);

  it('fails within its deadlines when the storage stops answering half-way (frozen), and leaves nothing', async () => {
    const parent = postgresDirectory();
    const directory = path.join(parent, 'data');
    const fetch = start(['backup-fetch', name, directory, '--concurrency', '1', '--no-progress'], fetchEnv());
    expect(await eventually(() => bytesUnder(directory) > 32 * 1024 * 1024, 120_000)).toBe(true);
    backend.s3!.pause();
    const frozen = Date.now();
    try {
      expect(await fetch.exit(90_000)).toBe(EXIT_CODES.error);
      // A body that stops moving fails after 5 s (not the 60 s default); a request, after 2
      // attempts of 5 s.
      expect(Date.now() - frozen).toBeLessThan(25_000);
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      backend.s3!.resume();
    }
    expect(lastLog(fetch.stderr())).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'StorageError', exit: '1' });
    expect(lastLog(fetch.stderr()).msg).toMatch(/^storage getStream basebackups\/base_\w+\/parts\/\d{4}\.tar at s3:\/\/kubedb\/\S+ \(endpoint http:\/\/127\.0\.0\.1:\d+\) failed: .*(stalled: no progress for 5000 ms|no answer within 5000 ms|timed out after 5000 ms)/);
  }, 180_000);

  it('of a delta chain fails within its deadlines when the storage is killed as the delta\'s parts download, leaves nothing; after a restart the chain restores with every row', async () => {
    // The delta: half of big's rows rewritten with new random bytes, pages the delta holds whole.
    const random = Array.from({ length: 8 }, () => 'gen_random_bytes(1024)').join(' || ');
    primary.sql(`update big set b = ${random} where id % 2 = 0`);
    const pushed = archiver(['backup-push', '--delta', '--json', '--no-progress', '--part-size-mib', '16'], serverEnv());
    expect(pushed.stderr).toMatch(/msg="backup complete"/);
    expect(pushed.status).toBe(0);
    const delta = JSON.parse(pushed.stdout) as { name: string; base: string };
    expect(delta.base).toBe(name);
    const expectedChain = checksum(primary);
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();

    // The restore goes through a proxy that says when the first of the delta's parts is asked for.
    const proxy = await startTripwireProxy(backend.s3!.port, `basebackups/${delta.name}/parts/`);
    const parent = postgresDirectory();
    const fetch = start(['backup-fetch', delta.name, path.join(parent, 'data'), '--concurrency', '1', '--no-progress'], { ...fetchEnv(), ARCHIVER_S3_ENDPOINT: proxy.endpoint });
    try {
      await within(proxy.tripped, 120_000, "the restore asking for the delta's first part");
      await crashAndExpectNothingLeft(fetch, parent);
    } finally {
      fetch.child.kill('SIGKILL');
      await proxy.close();
    }
    expect(lastLog(fetch.stderr())).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'StorageError', exit: '1' });
    expect(lastLog(fetch.stderr()).msg).toMatch(/^storage getStream basebackups\/base_\w+\/parts\/\d{4}\.tar at s3:\/\/kubedb\/\S+ \(endpoint http:\/\/127\.0\.0\.1:\d+\) failed: /);

    const restored = await restoreAndStart(delta.name);
    try {
      expect(checksum(restored)).toBe(expectedChain);
      expect(checksum(restored)).not.toBe(expected);
    } finally {
      await restored.remove();
    }
  }, 300_000);

  /**
   * Kills the storage under a restore under way and restarts it after: the restore fails within
   * the storage deadlines (5 s an attempt, 2 attempts), not for ever (a connection reset fails the
   * part at once, a new request after 2 refused attempts), and removes what it wrote under `parent`.
   */
  async function crashAndExpectNothingLeft(fetch: Running, parent: string): Promise<void> {
    await backend.s3!.crash();
    const crashed = Date.now();
    try {
      expect(await fetch.exit(90_000)).toBe(EXIT_CODES.error);
      expect(Date.now() - crashed).toBeLessThan(20_000);
      expect(fetch.stderr()).toMatch(/msg="restore failed: what it wrote is removed"/);
      expect(fs.readdirSync(parent)).toEqual([]);
    } finally {
      await backend.s3!.restart();
    }
  }

  /** backup-fetch --recovery into a new directory, and a cluster started on it, recovered. */
  async function restoreAndStart(backup: string): Promise<PostgresCluster> {
    const directory = path.join(postgresDirectory(), 'data');
    const fetched = archiver(['backup-fetch', backup, directory, '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`, '--no-progress'], fetchEnv());
    expect(fetched.stderr).toMatch(/msg="restore complete"/);
    expect(fetched.status).toBe(0);
    const cluster = await PostgresCluster.create({ env: { ...backend.env, ARCHIVER_DAEMON: 'off' }, inPlaceDataDirectory: directory, settings: { archive_mode: 'off' } });
    try {
      cluster.start(false);
      await cluster.waitForRecoveryEnd(180_000);
    } catch (error) {
      await cluster.remove();
      throw error;
    }
    return cluster;
  }
});
