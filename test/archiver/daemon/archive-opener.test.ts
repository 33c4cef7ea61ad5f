/**
 * The `archiver` sidecar stays up through storage and configuration failures
 * (archiver/src/daemon/archive-opener.ts, storage-probe.ts): a sidecar that exits makes the pod
 * NotReady and takes the primary Service's only endpoint away. The built launcher's `daemon`, run
 * as the pod runs it (ARCHIVER_DAEMON_IDLE_SECONDS=0, a metrics port), against s3rver; the calls
 * are the launcher's wal-push as PostgreSQL runs it in the pod (ARCHIVER_DAEMON=external, no
 * storage credentials).
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ARCHIVER_METRICS } from '../../../contract';
import { openWhenPossible } from '../../../archiver/src/daemon/archive-opener';
import { requestDaemon } from '../../../archiver/src/daemon/client';
import { readConfig } from '../../../archiver/src/config';
import { LAUNCHER, lastLog, logLines, makeSegment, runArchiverAsync, scrapeMetrics, startSidecar, stopSidecar } from '../../../testkit/archiver';
import { capturingLogger, waitUntil } from '../../../testkit/doubles';
import { freePort } from '../../../testkit/ports';
import { S3Server, startS3Server } from '../../../testkit/s3-server';
import { testScratch } from '../../../testkit/scratch';

const SYSID = 7311676708303809017n;
const SEGMENT = '000000010000000000000001';
const BUCKET = 'kubedb';
const REPOSITORY = `s3://${BUCKET}/kubedb/demo/db/archive`;
const CONFIGURATION_OK = ARCHIVER_METRICS.configurationOk.name;
const STORAGE_REACHABLE = ARCHIVER_METRICS.storageReachable.name;

const scratch = testScratch('archive-opener-');
const sidecars: ChildProcess[] = [];
const servers: S3Server[] = [];
afterEach(async () => {
  await Promise.allSettled(sidecars.splice(0).map((sidecar) => stopSidecar(sidecar, 'SIGKILL')));
});
afterAll(async () => {
  await Promise.allSettled(servers.splice(0).map((server) => server.stop()));
});

interface Case {
  readonly dir: string;
  readonly spool: string;
  readonly metricsPort: number;
  readonly logFile: string;
  /** A WAL segment outside any pg_wal: only a call pushes it. */
  readonly segment: string;
}

async function newCase(): Promise<Case> {
  const dir = fs.mkdtempSync(path.join(scratch.dir, 'case-'));
  const segment = path.join(dir, 'wal', SEGMENT);
  fs.mkdirSync(path.dirname(segment));
  fs.writeFileSync(segment, makeSegment(SYSID, 1, 1 << 20));
  return { dir, spool: path.join(dir, 'spool'), metricsPort: await freePort(), logFile: path.join(dir, 'sidecar.log'), segment };
}

function s3Env(server: S3Server): Record<string, string> {
  return {
    ARCHIVER_REPOSITORY: REPOSITORY,
    ARCHIVER_S3_ENDPOINT: server.endpoint,
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    ARCHIVER_S3_CHECKSUMS: 'when_required',
    // A storage that is down fails a push at once.
    ARCHIVER_MAX_ATTEMPTS: '1',
    ARCHIVER_TIMEOUT_SECONDS: '5',
  };
}

/** The sidecar as the pod runs it. */
async function startPodSidecar(c: Case, env: Record<string, string>): Promise<ChildProcess> {
  const sidecar = await startSidecar([LAUNCHER, 'daemon'], {
    ...env,
    ARCHIVER_SPOOL: c.spool,
    [ARCHIVER_ENV.daemonIdleSeconds]: '0',
    [ARCHIVER_ENV.metricsPort]: String(c.metricsPort),
  }, { logFile: c.logFile, cwd: c.dir });
  sidecars.push(sidecar);
  return sidecar;
}

/** archive_command as the pod's PostgreSQL container runs it: the sidecar's only, no storage credentials. */
function walPush(c: Case, env: Record<string, string>) {
  const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...withoutCredentials } = env;
  return runArchiverAsync(['wal-push', c.segment], { ...withoutCredentials, ARCHIVER_SPOOL: c.spool, ARCHIVER_DAEMON: 'external' }, path.dirname(c.segment));
}

const sidecarLog = (c: Case) => logLines(fs.readFileSync(c.logFile, 'utf8'));
const running = (sidecar: ChildProcess) => sidecar.exitCode === null && sidecar.signalCode === null;

async function metricsUntil(c: Case, condition: (m: Map<string, number>) => boolean, what: string, timeoutMs = 30_000): Promise<Map<string, number>> {
  let last: Map<string, number> | undefined;
  await waitUntil(async () => (last = await scrapeMetrics(c.metricsPort)) !== undefined && condition(last), what, timeoutMs).catch((error: Error) => {
    throw new Error(`${error.message}; last scrape: ${JSON.stringify(last && Object.fromEntries([...last].filter(([k]) => !k.includes('_bucket'))))}`);
  });
  return last!;
}

/** Whether s3rver holds the segment's archived object (its filesystem store). */
function archivedInS3rver(server: S3Server): boolean {
  const dir = path.join(server.directory, BUCKET, 'kubedb/demo/db/archive', 'wal');
  return fs.existsSync(dir) && fs.readdirSync(dir, { recursive: true }).some((f) => String(f).includes(SEGMENT));
}

describe('the archiver sidecar stays up through storage and configuration failures', () => {
  it('with its storage down it stays up, says so in its log and metrics, fails wal-push non-zero keeping the segment, and archives once the storage is back, without a restart', async () => {
    const server = await startS3Server({ buckets: [BUCKET] });
    servers.push(server);
    await server.crash(); // down; restart() brings it back on the same port with the same data
    const c = await newCase();
    const env = s3Env(server);
    const sidecar = await startPodSidecar(c, env);

    await waitUntil(() => sidecarLog(c).some((l) => l.msg?.startsWith("the archive's storage does not answer")), 'the log line about the storage');
    const line = sidecarLog(c).find((l) => l.msg?.startsWith("the archive's storage does not answer"))!;
    expect(line.level).toBe('error');
    expect(line.fix).toContain('ARCHIVER_S3_ENDPOINT');
    let m = await metricsUntil(c, (s) => s.get(STORAGE_REACHABLE) === 0, 'archiver_storage_reachable 0');
    expect(m.get(CONFIGURATION_OK)).toBe(1);

    const failed = await walPush(c, env);
    expect(failed.status, failed.stderr).toBe(1);
    expect(lastLog(failed.stderr).error).toBe('StorageError');
    expect(fs.existsSync(c.segment)).toBe(true);
    expect(running(sidecar)).toBe(true);

    await server.restart();
    m = await metricsUntil(c, (s) => s.get(STORAGE_REACHABLE) === 1, 'archiver_storage_reachable 1 once the storage is back', 45_000);
    const pushed = await walPush(c, env);
    expect(pushed.status, pushed.stderr).toBe(0);
    expect(archivedInS3rver(server)).toBe(true);
    expect(running(sidecar)).toBe(true);
    expect(sidecarLog(c).some((l) => l.msg === "the archive's storage answers again")).toBe(true);
  }, 120_000);

  it('with no storage credentials at all (the storage Secret missing: its optional references left unset) it stays up and reports the storage refusing it', async () => {
    const server = await startS3Server({ buckets: [BUCKET] });
    servers.push(server);
    const c = await newCase();
    const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...env } = s3Env(server);
    const sidecar = await startPodSidecar(c, env);
    const m = await metricsUntil(c, (s) => s.get(STORAGE_REACHABLE) === 0, 'archiver_storage_reachable 0', 45_000);
    expect(m.get(CONFIGURATION_OK)).toBe(1);
    expect(sidecarLog(c).find((l) => l.msg?.startsWith("the archive's storage does not answer"))?.error).toMatch(/credentials/i);
    const failed = await walPush(c, env);
    expect(failed.status, failed.stderr).toBe(1);
    expect(fs.existsSync(c.segment)).toBe(true);
    expect(running(sidecar)).toBe(true);
  }, 90_000);

  it.each([
    { what: 'one storage credential of two (the Secret lacks AWS_SECRET_ACCESS_KEY)', change: (env: Record<string, string>) => ({ ...env, AWS_SECRET_ACCESS_KEY: '' }), variable: 'AWS_SECRET_ACCESS_KEY' },
    { what: 'a malformed ARCHIVER_* variable', change: (env: Record<string, string>) => ({ ...env, ARCHIVER_PUSH_CONCURRENCY: 'many' }), variable: 'ARCHIVER_PUSH_CONCURRENCY' },
  ])('with $what it stays up, logs one line naming the variable and the fix, serves archiver_configuration_ok 0, and fails every call keeping the segment', async ({ change, variable }) => {
    const server = await startS3Server({ buckets: [BUCKET] });
    servers.push(server);
    const c = await newCase();
    const env = change(s3Env(server));
    const sidecar = await startPodSidecar(c, env);

    const m = await metricsUntil(c, (s) => s.get(CONFIGURATION_OK) === 0, 'archiver_configuration_ok 0');
    expect(m.has(STORAGE_REACHABLE)).toBe(false);
    const errors = sidecarLog(c).filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ error: 'ConfigError', variable });
    expect(errors[0].msg).toContain(variable);
    expect(errors[0].fix).toContain(`set ${variable}`);

    for (let call = 0; call < 2; call++) {
      const failed = await walPush(c, env);
      expect(failed.status, failed.stderr).toBe(1);
      expect(lastLog(failed.stderr)).toMatchObject({ error: 'ArchiveUnavailableError', exit: '1' });
      expect(lastLog(failed.stderr).msg).toContain(variable);
    }
    expect(fs.existsSync(c.segment)).toBe(true);
    expect(archivedInS3rver(server)).toBe(false);
    // Its retries (1 s, 2 s, ...) neither end it nor repeat the line.
    await new Promise((r) => setTimeout(r, 3500));
    expect(running(sidecar)).toBe(true);
    expect(sidecarLog(c).filter((l) => l.level === 'error')).toHaveLength(1);
    // SIGTERM (the kubelet, or a restart to read a fixed Secret) stops it cleanly, at once.
    const stoppedAt = Date.now();
    expect(await stopSidecar(sidecar)).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(2000);
  }, 60_000);

  it('an error no duty handled (a rejected promise nobody awaited, a throw in a timer) is logged and the sidecar keeps working', async () => {
    const server = await startS3Server({ buckets: [BUCKET] });
    servers.push(server);
    const c = await newCase();
    // Loaded into the sidecar's Node before the archiver: two stray errors once it runs. Only on
    // the main thread: NODE_OPTIONS preloads it into the codec's worker threads too, where the
    // rejection would end the worker (the pool replaces it) and fail the push that worker held.
    const stray = path.join(c.dir, 'stray-errors.js');
    fs.writeFileSync(stray, "if (require('node:worker_threads').isMainThread) {\n  setTimeout(() => Promise.reject(new Error('a stray rejection')), 1500);\n  setTimeout(() => { throw new Error('a stray throw'); }, 1700);\n}\n");
    const env = s3Env(server);
    const sidecar = await startPodSidecar(c, { ...env, NODE_OPTIONS: `--require ${stray}` });
    await waitUntil(() => sidecarLog(c).filter((l) => l.detail?.startsWith('a stray')).length === 2, 'both stray errors in the log');
    expect(sidecarLog(c).filter((l) => l.detail?.startsWith('a stray')).map((l) => [l.level, l.msg, l.detail])).toStrictEqual([
      ['error', 'an unhandled rejection in the background archiver; it keeps running', 'a stray rejection'],
      ['error', 'an uncaught exception in the background archiver; it keeps running', 'a stray throw'],
    ]);
    expect(running(sidecar)).toBe(true);
    const pushed = await walPush(c, env);
    expect(pushed.status, pushed.stderr).toBe(0);
    expect(archivedInS3rver(server)).toBe(true);
  }, 60_000);

  it('retries with a back-off, answers calls with a failure meanwhile, and starts working once the archive opens', async () => {
    const c = await newCase();
    const config = { ...readConfig({ ARCHIVER_REPOSITORY: `file://${path.join(c.dir, 'repo')}`, ARCHIVER_SPOOL: c.spool }, c.dir, () => false), spool: c.spool };
    const { log, lines } = capturingLogger();
    const attempts: number[] = [];
    let callFailure: unknown;
    const opened = openWhenPossible(
      'opening the archive',
      async () => {
        attempts.push(Date.now());
        if (attempts.length === 2) callFailure = await requestDaemon(config, { op: 'push', file: c.segment }).catch((error: unknown) => error);
        if (attempts.length < 3) throw new Error('the storage refused the credentials');
        return 'the archive';
      },
      { log, spool: c.spool, initialBackoffMs: 100 },
    );
    expect(await opened).toBe('the archive');
    expect(attempts).toHaveLength(3);
    // Back-off: 100 ms, then 200 ms.
    expect(attempts[1] - attempts[0]).toBeGreaterThanOrEqual(90);
    expect(attempts[2] - attempts[1]).toBeGreaterThanOrEqual(190);
    expect(callFailure).toMatchObject({ name: 'ArchiveUnavailableError' });
    expect((callFailure as Error).message).toContain('the storage refused the credentials');
    // One line for one failure, however often it repeats; one when it works.
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
    expect(lines.some((l) => l.msg === 'opening the archive: works now; the sidecar starts its work')).toBe(true);
    // The working server takes the address over.
    expect(fs.existsSync(path.join(c.spool, 'daemon.port'))).toBe(false);
  });
});
