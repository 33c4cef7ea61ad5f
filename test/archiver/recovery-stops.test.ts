/**
 * A recovery never ends early and promotes because of a storage failure or a damaged object.
 *
 * PostgreSQL reads any exit code of restore_command from 1 to 125 as "not in the archive": in
 * archive recovery it then ends recovery, promotes onto a new timeline and opens with the rest of
 * the WAL missing for good. In archive recovery (recovery.signal, no standby.signal) wal-fetch
 * therefore exits 0, 74 at the true end of the archive, or 128 (PostgreSQL: FATAL, recovery stops
 * and resumes at the next start); a standby keeps its retryable 1.
 *
 * First the launcher, its bash helper and the background archiver as PostgreSQL runs them, against
 * a stand-in data directory; then real PostgreSQL 15 clusters restored from a pg_basebackup,
 * recovering through the launcher from s3rver and from a local directory.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES, walKey } from '../../contract';
import { Archive } from '../../archiver/src/archive';
import { openStorage } from '../../archiver/src/storage/open';
import { Storage } from '../../archiver/src/storage/storage';
import { LAUNCHER, fakeDataDirectory, lastLog, logLines, makeSegment, runArchiverAsync, startSidecar, stopArchiver, stopSidecar } from '../../testkit/archiver';
import { BackendName, TestBackend, startBackend } from '../../testkit/backends';
import { capturingLogger, waitUntil } from '../../testkit/doubles';
import { PostgresCluster, giveToPostgres } from '../../testkit/postgres';
import { S3Server, startS3Server } from '../../testkit/s3-server';

const SYSID = 7311676708303809017n;
const SEGMENT_SIZE = 1 << 20;
const name = (n: number) => `0000000100000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
/** Node fails to start with this (a module that is not there): only a path without Node can answer. */
const NODE_CANNOT_START = { NODE_OPTIONS: '--require=/nonexistent/archiver-test-node-must-not-run.js' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-stops-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Mode = 'archive recovery' | 'standby mode' | 'outside recovery';

/** Puts the stand-in data directory into `mode`, as PostgreSQL's signal files would. */
function enter(dataDir: string, mode: Mode): void {
  for (const file of ['recovery.signal', 'standby.signal']) fs.rmSync(path.join(dataDir, file), { force: true });
  if (mode === 'archive recovery') fs.writeFileSync(path.join(dataDir, 'recovery.signal'), '');
  if (mode === 'standby mode') fs.writeFileSync(path.join(dataDir, 'standby.signal'), '');
}

/** A stand-in data directory and a local archive holding segments 1, 2, 3 (segment 2 damaged when asked). */
async function localCase(options: { damage?: boolean } = {}) {
  const base = fs.mkdtempSync(path.join(scratch, 'cli-'));
  const pg = fakeDataDirectory(base);
  const repo = path.join(base, 'repo');
  const archive = new Archive({ storage: await openStorage({ kind: 'local', root: repo }), compression: 'zstd', log: capturingLogger().log });
  for (const n of [1, 2, 3]) await archive.push(pg.addReady(name(n), makeSegment(SYSID, n, SEGMENT_SIZE)));
  await archive.close();
  if (options.damage) damageFile(path.join(repo, 'wal', name(2)));
  const env = { ARCHIVER_REPOSITORY: `file://${repo}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
  cleanups.push(() => stopArchiver(env));
  return { base, pg, repo, env };
}

/**
 * Overwrites 4 KiB in the middle of the stored object with other bytes (the same size: s3rver's
 * metadata stays valid). Compressed data that changes this much never decodes to the original.
 * Returns the repair.
 */
function damageFile(file: string): () => void {
  const original = fs.readFileSync(file);
  const damaged = Buffer.from(original);
  const at = Math.floor(damaged.length / 2);
  for (let i = at; i < Math.min(at + 4096, damaged.length - 8); i++) damaged[i] = (damaged[i] ^ 0xa5 ^ i) & 0xff;
  fs.writeFileSync(file, damaged);
  return () => fs.writeFileSync(file, original);
}

/** The sidecar's way: a background archiver started on its own, answering the calls' bash helper. */
async function sidecarFor(env: Record<string, string>, base: string): Promise<ChildProcess> {
  const sidecar = await startSidecar([LAUNCHER, 'daemon'], { ...env, ARCHIVER_DAEMON_IDLE_SECONDS: '0' }, { logFile: path.join(base, 'sidecar.log'), cwd: base });
  cleanups.push(() => stopSidecar(sidecar, 'SIGKILL'));
  return sidecar;
}

describe('wal-fetch through the launcher, by the mode of the data directory', () => {
  it('the bash helper, answered by the background archiver: a damaged object exits 128 in archive recovery, 1 in standby mode and outside recovery', async () => {
    const { base, pg, env } = await localCase({ damage: true });
    await sidecarFor(env, base);
    // Node cannot start for the call: the helper and the background archiver must answer alone.
    const call = { ...env, ARCHIVER_DAEMON: 'external', ...NODE_CANNOT_START };
    const expected: [Mode, number, string][] = [
      ['archive recovery', EXIT_CODES.stopRecovery, 'RecoveryStopError'],
      ['standby mode', EXIT_CODES.error, 'CorruptObjectError'],
      ['outside recovery', EXIT_CODES.error, 'CorruptObjectError'],
    ];
    for (const [mode, code, error] of expected) {
      enter(pg.dataDir, mode);
      const result = await runArchiverAsync(['wal-fetch', name(2), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
      expect(result.stderr, mode).not.toContain('Cannot find module');
      expect({ mode, status: result.status }).toEqual({ mode, status: code });
      // One line: the helper's, with the background archiver's answer (no launcher safety net needed).
      expect(logLines(result.stderr)).toHaveLength(1);
      expect(lastLog(result.stderr)).toMatchObject({ level: 'error', command: 'wal-fetch', error, exit: String(code) });
      if (mode === 'archive recovery') expect(lastLog(result.stderr).msg).toMatch(/^CorruptObjectError: wal\/0+10+2 at file:\/\/.*; recovery stops here rather than end early$/);
      expect(fs.existsSync(path.join(pg.walDir, 'RECOVERYXLOG'))).toBe(false);
    }
  });

  it('the bash helper: a gap exits 128 naming it in archive recovery, the end of the archive 74', async () => {
    const { base, pg, repo, env } = await localCase();
    fs.rmSync(path.join(repo, 'wal', name(2)));
    await sidecarFor(env, base);
    const call = { ...env, ARCHIVER_DAEMON: 'external', ...NODE_CANNOT_START };
    enter(pg.dataDir, 'archive recovery');
    const gap = await runArchiverAsync(['wal-fetch', name(2), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
    expect(gap.status).toBe(EXIT_CODES.stopRecovery);
    expect(lastLog(gap.stderr)).toMatchObject({ error: 'WalGapError', msg: expect.stringContaining(`${name(2)} is missing from the archive but ${name(3)} is there: a gap`) });
    const end = await runArchiverAsync(['wal-fetch', name(4), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
    expect(end.status).toBe(EXIT_CODES.notFound);
    enter(pg.dataDir, 'standby mode');
    expect((await runArchiverAsync(['wal-fetch', name(2), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir)).status).toBe(EXIT_CODES.notFound);
  });

  it('the bash helper\'s own failure (an unreadable answer) exits 128 in archive recovery, 1 in standby mode', async () => {
    const { pg, env } = await localCase();
    fs.mkdirSync(env.ARCHIVER_SPOOL, { recursive: true });
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('garbage\n'));
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    cleanups.push(() => server.close());
    fs.writeFileSync(path.join(env.ARCHIVER_SPOOL, 'daemon.port'), `${(server.address() as net.AddressInfo).port} ${'a'.repeat(32)} 1\n`, { mode: 0o600 });
    const call = { ...env, ARCHIVER_DAEMON: 'external' };
    for (const [mode, code] of [['archive recovery', EXIT_CODES.stopRecovery], ['standby mode', EXIT_CODES.error]] as const) {
      enter(pg.dataDir, mode);
      const result = await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
      expect({ mode, status: result.status }).toEqual({ mode, status: code });
      expect(logLines(result.stderr)).toEqual([expect.objectContaining({ level: 'error', msg: 'unreadable answer from the background archiver', exit: String(code) })]);
    }
  });

  it('the launcher\'s safety net: Node failing to start exits 128 in archive recovery, its own code otherwise', async () => {
    const { pg, env } = await localCase();
    const call = { ...env, ARCHIVER_DAEMON: 'off', ...NODE_CANNOT_START };
    enter(pg.dataDir, 'archive recovery');
    const stopped = await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
    expect(stopped.status).toBe(EXIT_CODES.stopRecovery);
    expect(stopped.stderr).toContain('Cannot find module');
    expect(lastLog(stopped.stderr)).toMatchObject({ level: 'error', command: 'wal-fetch', exit: '128', msg: expect.stringMatching(/^wal-fetch failed with exit code \d+ in archive recovery: exiting 128 instead/) });
    enter(pg.dataDir, 'standby mode');
    const failed = await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
    expect(failed.status).toBeGreaterThan(0);
    expect(failed.status).toBeLessThan(126);
    expect(failed.stderr).not.toContain('exiting 128');
  });

  it('Node working alone: a bad configuration exits 128 in archive recovery, 2 outside', async () => {
    const { pg, env } = await localCase();
    const broken = { ...env, ARCHIVER_DAEMON: 'off', ARCHIVER_COMPRESSION: 'bogus' };
    enter(pg.dataDir, 'archive recovery');
    const stopped = await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], broken, pg.dataDir);
    expect(stopped.status).toBe(EXIT_CODES.stopRecovery);
    expect(lastLog(stopped.stderr)).toMatchObject({ error: 'RecoveryStopError', msg: expect.stringContaining('ARCHIVER_COMPRESSION') });
    enter(pg.dataDir, 'outside recovery');
    expect((await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], broken, pg.dataDir)).status).toBe(EXIT_CODES.usage);
  });
});

describe('wal-fetch through the launcher while the S3 server is down', () => {
  let server: S3Server;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['kubedb'] });
  });
  afterAll(() => server?.stop());

  it.each([
    ['the bash helper and the background archiver', 'external'],
    ['Node working alone', 'off'],
  ])('%s: archive recovery retries until the deadline, then exits 128; standby mode exits 1 at once', async (_path, daemon) => {
    const base = fs.mkdtempSync(path.join(scratch, 'down-'));
    const pg = fakeDataDirectory(base);
    const env = {
      ARCHIVER_REPOSITORY: `s3://kubedb/down-${path.basename(base)}`,
      ARCHIVER_S3_ENDPOINT: server.endpoint,
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      ARCHIVER_S3_CHECKSUMS: 'when_required',
      ARCHIVER_SPOOL: path.join(base, 'spool'),
      ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log'),
      ARCHIVER_TIMEOUT_SECONDS: '1',
      ARCHIVER_MAX_ATTEMPTS: '1',
      ARCHIVER_RECOVERY_DEADLINE_SECONDS: '3',
    };
    if (daemon === 'external') await sidecarFor(env, base);
    cleanups.push(() => stopArchiver(env));
    await server.crash();
    cleanups.push(() => server.restart());
    const call = { ...env, ARCHIVER_DAEMON: daemon };
    enter(pg.dataDir, 'archive recovery');
    let started = Date.now();
    const stopped = await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
    const seconds = (Date.now() - started) / 1000;
    expect(stopped.status).toBe(EXIT_CODES.stopRecovery);
    expect(lastLog(stopped.stderr)).toMatchObject({ error: 'RecoveryStopError', msg: expect.stringMatching(/could not be read from the archive within 3 s \(ARCHIVER_RECOVERY_DEADLINE_SECONDS\): storage get .*; recovery stops here/) });
    expect(seconds).toBeGreaterThanOrEqual(2.5);
    expect(seconds).toBeLessThan(15);
    enter(pg.dataDir, 'standby mode');
    started = Date.now();
    const missed = await runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], call, pg.dataDir);
    expect(missed.status).toBe(EXIT_CODES.error);
    expect(lastLog(missed.stderr)).toMatchObject({ error: 'StorageError', exit: '1' });
    expect(Date.now() - started).toBeLessThan(2500);
  });
});

// ---------------------------------------------------------------------------------------------
// Real PostgreSQL

const S3 = 's3rver (S3-compatible)';
const ROWS = 'select count(*), sum(id), md5(string_agg(note, \',\' order by id)) from orders';

describe.each([S3, 'a local directory'] as BackendName[])('PostgreSQL 15 in archive recovery from %s', (backendName) => {
  let backend: TestBackend;
  let storage: Storage;
  let primary: PostgresCluster;
  let backup: string;
  let expected: string;
  /** The archived segments after the backup's first: all but the last are "in the middle". */
  let after: string[];

  beforeAll(async () => {
    backend = await startBackend(backendName, scratch);
    storage = await openStorage(backend.storage);
    const base = fs.mkdtempSync(path.join(scratch, 'primary-'));
    fs.chmodSync(base, 0o755);
    giveToPostgres(base);
    const env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
    primary.start();
    primary.sql('create table orders(id bigint primary key, customer text, note text)');
    primary.sql("insert into orders select g, md5(g::text), repeat('x', 100) from generate_series(1, 1000) g");
    backup = primary.baseBackup();
    primary.sql("insert into orders select g, md5(g::text), repeat(md5(g::text), 3) from generate_series(1001, 300000) g");
    primary.sql('update orders set note = upper(note) where id % 7 = 0');
    primary.sql('select pg_switch_wal()');
    expected = primary.sql(ROWS);
    await primary.waitForArchiving();
    primary.stop();
    stopArchiver(env);
    const first = /START WAL LOCATION: .* \(file (\w{24})\)/.exec(fs.readFileSync(path.join(backup, 'backup_label'), 'utf8'))![1];
    const segments = (await storage.list('wal/')).map((o) => o.key.slice('wal/'.length)).filter((n) => /^[0-9A-F]{24}$/.test(n));
    after = segments.filter((n) => n > first).sort();
    expect(after.length).toBeGreaterThanOrEqual(4);
  }, 300_000);

  afterAll(async () => {
    await storage?.close();
    await primary?.remove();
    await backend?.stop();
  });

  const middle = () => after[Math.floor((after.length - 1) / 2)];

  /** A copy of the base backup, set up to recover through the launcher (not started). */
  async function restored(extraEnv: Record<string, string> = {}, settings: Record<string, string> = {}) {
    const base = fs.mkdtempSync(path.join(scratch, 'restore-'));
    fs.chmodSync(base, 0o755);
    giveToPostgres(base);
    const env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log'), ...extraEnv };
    const cluster = await PostgresCluster.create({
      env,
      fromDataDirectory: backup,
      settings: { restore_command: `'${LAUNCHER} wal-fetch %f %p'`, archive_mode: 'off', hot_standby: 'off', ...settings },
    });
    cleanups.push(async () => {
      stopArchiver(env);
      await cluster.remove();
    });
    const archiverLog = () => `${cluster.log()}\n${fs.existsSync(env.ARCHIVER_DAEMON_LOG) ? fs.readFileSync(env.ARCHIVER_DAEMON_LOG, 'utf8') : ''}`;
    return { cluster, env, archiverLog };
  }

  /** Starts archive recovery without waiting for its end. */
  function startRecovery(cluster: PostgresCluster): void {
    fs.writeFileSync(path.join(cluster.dataDir, 'recovery.signal'), '');
    giveToPostgres(cluster.dataDir);
    cluster.start(false);
  }

  /** The server stopped in archive recovery at `walName` (any file when undefined): FATAL, not running, not promoted. */
  async function expectStopped(cluster: PostgresCluster, walName?: string): Promise<void> {
    await cluster.waitForStop();
    const log = cluster.log();
    const file = walName ?? '\\w+';
    expect(log).toMatch(new RegExp(`FATAL: +could not restore file "${file}" from archive: child process exited with exit code 128`));
    expect(log).not.toMatch(/database system is ready to accept connections/);
    expect(log).not.toMatch(/selected new timeline ID/);
    expect(cluster.isRunning()).toBe(false);
    expect(fs.existsSync(path.join(cluster.dataDir, 'pg_wal', '00000002.history'))).toBe(false);
    const control = cluster.controlData();
    expect(control['Database cluster state']).toBe('in archive recovery');
    expect(control["Latest checkpoint's TimeLineID"]).toBe('1');
  }

  /** Starts the stopped server again and waits for its recovery to end, with every row. */
  async function expectResumedWithEveryRow(cluster: PostgresCluster): Promise<void> {
    const from = cluster.log().length;
    cluster.start(false);
    await cluster.waitForRecoveryEnd(180_000, from);
    expect(cluster.sql(ROWS)).toBe(expected);
  }

  it('stops, FATAL and not promoted, at a damaged segment in the middle; resumes with every row once it is repaired', async () => {
    const walName = middle();
    const repair = damageFile(backend.objectFile(walKey(walName))!);
    cleanups.push(repair);
    const { cluster, archiverLog } = await restored();
    startRecovery(cluster);
    await expectStopped(cluster, walName);
    expect(archiverLog()).toMatch(/error=RecoveryStopError/);
    expect(archiverLog()).toMatch(/msg="(CorruptObjectError|UnsupportedObjectError|DecompressionError): /);
    repair();
    await expectResumedWithEveryRow(cluster);
  }, 300_000);

  it('stops at a gap (a segment missing in the middle), naming it, not promoted', async () => {
    const walName = middle();
    const object = await storage.get(walKey(walName));
    await storage.delete([walKey(walName)]);
    cleanups.push(async () => {
      await storage.put(walKey(walName), object);
      // Put back by this process: the archiver runs as postgres and must read it.
      if (backend.storage.kind === 'local') giveToPostgres(backend.storage.root);
    });
    const { cluster } = await restored();
    startRecovery(cluster);
    await expectStopped(cluster, walName);
    const later = after[after.indexOf(walName) + 1];
    expect(cluster.log()).toContain(`${walName} is missing from the archive but ${later} is there: a gap; recovery stops here rather than end early`);
  }, 300_000);

  it('ends recovery at the true end of the archive: promotes onto timeline 2 with every row', async () => {
    const { cluster, archiverLog } = await restored();
    await cluster.recoverFromArchive();
    expect(cluster.sql(ROWS)).toBe(expected);
    expect(cluster.log()).toMatch(/selected new timeline ID: 2/);
    expect(cluster.log()).not.toMatch(/FATAL/);
    expect(archiverLog()).not.toMatch(/level=error/);
  }, 300_000);

  // An outage needs a server to stop: these cases exist for s3rver only (not listed, rather than
  // listed as skipped, for the local directory).
  const serverOutage: typeof it = backendName === S3 ? it : ((() => undefined) as unknown as typeof it);

  serverOutage('rides out the S3 server down for 15 s with the default deadline: completes with every row', async () => {
    // No prefetch: every segment is read from the server, so the outage lands mid-replay.
    const { cluster, archiverLog } = await restored({ ARCHIVER_PREFETCH: '0' });
    startRecovery(cluster);
    await waitUntil(() => /restored log file "\w+" from archive/.test(cluster.log()), 'the first restored segment', 60_000);
    await backend.s3!.crash();
    cleanups.push(() => backend.s3!.restart());
    await sleep(15_000);
    await backend.s3!.restart();
    await cluster.waitForRecoveryEnd(120_000);
    expect(cluster.sql(ROWS)).toBe(expected);
    expect(cluster.log()).not.toMatch(/FATAL/);
    expect(archiverLog()).toMatch(/retrying until the deadline/);
  }, 300_000);

  serverOutage('stops, FATAL and not promoted, when the S3 server is down past ARCHIVER_RECOVERY_DEADLINE_SECONDS=5; resumes with every row once it is back', async () => {
    const { cluster, archiverLog } = await restored({ ARCHIVER_PREFETCH: '0', ARCHIVER_RECOVERY_DEADLINE_SECONDS: '5' });
    startRecovery(cluster);
    await waitUntil(() => /restored log file "\w+" from archive/.test(cluster.log()), 'the first restored segment', 60_000);
    await backend.s3!.crash();
    cleanups.push(() => backend.s3!.restart());
    await expectStopped(cluster);
    expect(archiverLog()).toMatch(/could not be read from the archive within 5 s \(ARCHIVER_RECOVERY_DEADLINE_SECONDS\)/);
    await backend.s3!.restart();
    await expectResumedWithEveryRow(cluster);
  }, 300_000);

  serverOutage('a standby (standby.signal) keeps running while the S3 server is down: its fetches exit 1 and are retried', async () => {
    const { cluster } = await restored({}, { hot_standby: 'on' });
    fs.writeFileSync(path.join(cluster.dataDir, 'standby.signal'), '');
    giveToPostgres(cluster.dataDir);
    cluster.start(false);
    await waitUntil(() => /ready to accept read-only connections/.test(cluster.log()), 'a consistent standby', 120_000);
    await waitUntil(async () => (await sleep(250), cluster.sql(ROWS) === expected), 'the standby replaying the archive', 120_000);
    const from = cluster.log().length;
    await backend.s3!.crash();
    cleanups.push(() => backend.s3!.restart());
    // PostgreSQL retries restore_command every wal_retrieve_retry_interval (5 s).
    await sleep(12_000);
    const log = cluster.log().slice(from);
    expect(log).toMatch(/level=error component=archiver .*command=wal-fetch error=StorageError exit=1/);
    expect(log).not.toMatch(/FATAL|exit=128/);
    expect(cluster.isRunning()).toBe(true);
    expect(cluster.sql('select pg_is_in_recovery()')).toBe('t');
    await backend.s3!.restart();
    await sleep(6_000);
    expect(cluster.isRunning()).toBe(true);
    expect(cluster.sql(ROWS)).toBe(expected);
    expect(cluster.log()).not.toMatch(/selected new timeline ID/);
  }, 300_000);
});
