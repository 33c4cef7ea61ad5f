/**
 * Faults against a real S3-compatible server (s3rver in a child process): a hung server, a
 * crashed server, a background archiver killed mid-request, an archiver killed mid-upload, a
 * corrupted object. In every case PostgreSQL must never be told "stored" for a file that is not,
 * and nothing may be lost once the server is back.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../contract';
import { openStorage } from '../../archiver/src/storage/open';
import { Storage } from '../../archiver/src/storage/storage';
import { LAUNCHER, fakeDataDirectory, logLines, makeSegment, runArchiver, runArchiverAsync, stopArchiver } from '../../testkit/archiver';
import { bytesQueuedAt, startHoldingProxy, waitUntil, within } from '../../testkit/doubles';
import { S3Server, startS3Server } from '../../testkit/s3-server';

const SYSID = 7311676708303809017n;
const NAME = '000000010000000000000001';
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-'));
let server: S3Server;
let bucket: Storage;

beforeAll(async () => {
  server = await startS3Server({ buckets: ['kubedb'] });
});
afterAll(async () => {
  await server?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe.each([
  ['with the background archiver', 'on'],
  ['with each call working alone', 'off'],
])('wal-push against a failing S3 server, %s', (_mode, daemon) => {
  let env: Record<string, string>;
  let pg: ReturnType<typeof fakeDataDirectory>;
  let segment: Buffer;
  let prefix: string;

  beforeEach(async () => {
    const base = fs.mkdtempSync(path.join(scratch, 'case-'));
    prefix = `archive-${path.basename(base)}`;
    pg = fakeDataDirectory(base);
    segment = makeSegment(SYSID, 7, 1 << 20);
    pg.addReady(NAME, segment);
    env = {
      ARCHIVER_REPOSITORY: `s3://kubedb/${prefix}`,
      ARCHIVER_S3_ENDPOINT: server.endpoint,
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      ARCHIVER_S3_CHECKSUMS: 'when_required',
      ARCHIVER_SPOOL: path.join(base, 'spool'),
      ARCHIVER_DAEMON: daemon,
      ARCHIVER_DAEMON_IDLE_SECONDS: '30',
      ARCHIVER_TIMEOUT_SECONDS: '1',
      ARCHIVER_MAX_ATTEMPTS: '2',
    };
    bucket = await openStorage({ kind: 's3', bucket: 'kubedb', prefix, endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' });
  });
  afterEach(async () => {
    server.resume();
    stopArchiver(env);
    await bucket.close();
  });

  const push = () => runArchiverAsync(['wal-push', `pg_wal/${NAME}`], env, pg.dataDir);
  const fetchMatches = () => {
    const result = runArchiver(['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], env, pg.dataDir);
    return result.status === 0 && fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(segment);
  };

  it('fails (non-zero) when the server hangs, within its deadline and retries, then succeeds once it answers', async () => {
    server.pause();
    const started = Date.now();
    const hung = await push();
    expect(hung.status).toBe(EXIT_CODES.error);
    // 2 attempts of 1 s each, plus backoff and start-up: a hung server never hangs archive_command.
    expect(Date.now() - started).toBeLessThan(20_000);
    server.resume();
    expect(await bucket.stat(`wal/${NAME}`)).toBeUndefined();
    expect((await push()).status).toBe(0);
    expect(fetchMatches()).toBe(true);
  });

  it('fails (non-zero) while the server is down, then succeeds after it restarts, losing nothing', async () => {
    await server.crash();
    const down = await push();
    expect(down.status).toBe(EXIT_CODES.error);
    expect(down.stderr).toMatch(/msg="storage \w+ .* failed: .*" command=wal-push error=StorageError exit=1/);
    await server.restart();
    expect((await push()).status).toBe(0);
    expect(fetchMatches()).toBe(true);
  });

  it('never leaves a segment a fetch would take when the archiver is killed (kill -9) mid-upload; the next push archives it', async () => {
    // The upload goes through a proxy that lets everything else pass and holds the segment's PUT
    // once the server has its headers and half of its body: the kill is known to land mid-upload.
    const proxy = await startHoldingProxy(server.port, `PUT /kubedb/${prefix}/wal/${NAME}`);
    let held: { contentLength: number; forwardedBodyBytes: number };
    try {
      const proxied = { ...env, ARCHIVER_S3_ENDPOINT: proxy.endpoint, ARCHIVER_TIMEOUT_SECONDS: '60' };
      const pids = () => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('archiver.cjs') && fs.readFileSync(`/proc/${p}/environ`, 'utf8').includes(`ARCHIVER_SPOOL=${env.ARCHIVER_SPOOL}`);
        } catch {
          return false;
        }
      });
      const child = spawn(LAUNCHER, ['wal-push', `pg_wal/${NAME}`], { env: { PATH: process.env.PATH!, ARCHIVER_DAEMON_LOG: path.join(env.ARCHIVER_SPOOL, '..', 'daemon.log'), ...proxied }, cwd: pg.dataDir, stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      held = await within(proxy.holding, 30_000, 'the segment\'s upload');
      expect(held.forwardedBodyBytes).toBeGreaterThan(0);
      expect(proxy.heldClientOpen()).toBe(true);
      const killed = pids();
      expect(killed.length).toBe(daemon === 'on' ? 2 : 1);
      for (const pid of killed) process.kill(Number(pid), 'SIGKILL');
      const code = await exited;
      expect(code).not.toBe(0);
      // The dead client's connection ends, and the server's side with it.
      await within(proxy.heldUpstreamClosed, 10_000, 'the end of the cut-off upload');
    } finally {
      await proxy.close();
    }
    // S3 refuses an incomplete body and stores nothing; s3rver keeps what it had written of the
    // cut-off part as the object (up to the bytes forwarded, fewer when its store had not flushed
    // them yet: not something the archiver controls). Either way no fetch may take it.
    // s3rver may still be writing what it got of the cut-off upload after its connection ended,
    // into the object's own file (testkit/s3-server.ts: it writes a PUT's body in place), where a
    // replacing PUT would share the file with it: the next push must meet what the server keeps,
    // not a write still landing (seen under load).
    let left = await bucket.stat(`wal/${NAME}`);
    for (let still = 0, looks = 0; still < 4 && looks < 40; looks++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const now = await bucket.stat(`wal/${NAME}`);
      still = now?.size === left?.size ? still + 1 : 0;
      left = now;
    }
    if (left !== undefined) expect(left.size).toBeLessThanOrEqual(held.forwardedBodyBytes);
    expect(held.forwardedBodyBytes).toBeLessThan(held.contentLength);
    const fetched = runArchiver(['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], env, pg.dataDir);
    expect(fetched.status).not.toBe(0);
    expect(fs.existsSync(path.join(pg.walDir, 'RECOVERYXLOG'))).toBe(false);
    expect((await push()).status).toBe(0);
    expect(fetchMatches()).toBe(true);
  });

  it('detects an object corrupted in storage on fetch (non-zero, not "not found")', async () => {
    expect((await push()).status).toBe(0);
    const object = await bucket.get(`wal/${NAME}`);
    object[object.length - 10] ^= 0x55;
    await bucket.put(`wal/${NAME}`, object);
    const result = runArchiver(['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], env, pg.dataDir);
    expect(result.status).toBe(EXIT_CODES.error);
    expect(result.stderr).toContain('CorruptObjectError');
    expect(fs.existsSync(path.join(pg.walDir, 'RECOVERYXLOG'))).toBe(false);
  });
});

describe('the background archiver dying mid-request', () => {
  it('the call works alone and fails while storage is down (never a false success); the next call starts a new one and succeeds', async () => {
    const base = fs.mkdtempSync(path.join(scratch, 'daemon-'));
    const pg = fakeDataDirectory(base);
    const segment = makeSegment(SYSID, 9, 1 << 20);
    pg.addReady(NAME, segment);
    const log = path.join(base, 'daemon.log');
    const env = {
      ARCHIVER_REPOSITORY: `s3://kubedb/daemon-${path.basename(base)}`,
      ARCHIVER_S3_ENDPOINT: server.endpoint,
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      ARCHIVER_S3_CHECKSUMS: 'when_required',
      ARCHIVER_SPOOL: path.join(base, 'spool'),
      ARCHIVER_DAEMON_LOG: log,
      ARCHIVER_DAEMON_IDLE_SECONDS: '30',
      ARCHIVER_TIMEOUT_SECONDS: '1',
      ARCHIVER_MAX_ATTEMPTS: '2',
    };
    try {
      server.pause();
      const call = runArchiverAsync(['wal-push', `pg_wal/${NAME}`], env, pg.dataDir);
      let pid: number | undefined;
      for (let i = 0; i < 100 && !pid; i++) {
        await new Promise((r) => setTimeout(r, 50));
        pid = Number(/background archiver started" pid=(\d+)/.exec(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '')?.[1]) || undefined;
      }
      expect(pid).toBeDefined();
      // Mid-request: the background archiver's storage request has reached the hung server (the
      // call itself touches storage only after the background archiver failed it).
      await waitUntil(() => bytesQueuedAt(server.port) > 0, 'the background archiver\'s request at the hung server');
      process.kill(pid!, 'SIGKILL');
      const result = await call;
      expect(result.status).toBe(EXIT_CODES.error);
      const lines = logLines(result.stderr);
      expect(lines[0]).toMatchObject({ level: 'warn', msg: expect.stringContaining('background archiver lost') });
      expect(lines[lines.length - 1]).toMatchObject({ level: 'error', error: 'StorageError' });
      server.resume();
      const retry = await runArchiverAsync(['wal-push', `pg_wal/${NAME}`], env, pg.dataDir);
      expect(retry.status).toBe(0);
      const fetched = runArchiver(['wal-fetch', NAME, 'pg_wal/RECOVERYXLOG'], env, pg.dataDir);
      expect(fetched.status).toBe(0);
      expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(segment)).toBe(true);
    } finally {
      server.resume();
      stopArchiver(env);
    }
  });
});
