/**
 * Our archiver as PostgreSQL runs it in the benchmarks: built with archiver/scripts/build.ts, then
 * copied into the benchmark's scratch directory so that a rebuild of archiver/dist by someone else
 * during a run cannot pull the files from under PostgreSQL (and so that every process it starts
 * names the scratch directory, which is how leftovers are found).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DAEMON_NODE_FLAGS, EXIT_CODES } from '../../contract';
import { buildArchiver } from '../../archiver/scripts/build';
import { ROOT, startSidecar as startSidecarProcess } from '../../testkit/archiver';
import { giveToPostgres, postgresUser } from '../../testkit/postgres';
import { processesMentioning, Scratch } from '../../testkit/processes';
import type { S3Server } from '../../testkit/s3-server';
import { POSTGRES_BASE_ENV, processCpuSeconds, progress, timeAsPostgres } from './tools';

export interface PreparedArchiver {
  /** Absolute path of the launcher (bin/archiver) PostgreSQL runs. */
  readonly launcher: string;
  /** archive_command */
  readonly archiveCommand: string;
  /** restore_command */
  readonly restoreCommand: string;
}

export interface PrepareArchiverOptions {
  /** Run archiver/scripts/build.ts first.
   * @default true */
  readonly build?: boolean;
}

export async function prepareArchiver(scratch: Scratch, options: PrepareArchiverOptions = {}): Promise<PreparedArchiver> {
  const dist = path.join(ROOT, 'archiver/dist');
  if (options.build ?? true) {
    progress('building the archiver (archiver/scripts/build.ts)');
    await buildArchiver();
  }
  if (!fs.existsSync(path.join(dist, 'bin/archiver'))) throw new Error(`${dist} has no bin/archiver: run npx tsx archiver/scripts/build.ts`);
  const copy = path.join(scratch.dir, 'archiver');
  execFileSync('cp', ['-a', dist, copy]);
  giveToPostgres(copy);
  const launcher = path.join(copy, 'bin/archiver');
  return { launcher, archiveCommand: `${launcher} wal-push %p`, restoreCommand: `${launcher} wal-fetch %f %p` };
}

export interface ArchiverEnvOptions {
  /** `file:///dir` or `s3://bucket/prefix` */
  readonly repository: string;
  /** For s3:// repositories. */
  readonly s3?: S3Server;
  /** Readable by the postgres user: the S3 server's certificate. */
  readonly caFile?: string;
  /** A directory for this configuration's spool (created, owned by postgres) and daemon log. */
  readonly stateDir: string;
  readonly prefetch?: number;
  readonly pushConcurrency?: number;
  readonly compression?: string;
}

/**
 * Request checksums of every S3 run of ours: s3rver stores the SDK's default (aws-chunked
 * uploads with a trailing checksum) corrupted; see testkit/s3-server.ts.
 */
export const S3_CHECKSUMS = 'when_required';
/** Shown beside every S3 figure of ours. */
export const S3_CHECKSUMS_NOTE = `ARCHIVER_S3_CHECKSUMS=${S3_CHECKSUMS} (s3rver needs it)`;

/**
 * The environment the postmaster gets for our archiver. Over TLS the S3 server's self-signed
 * certificate is trusted through NODE_EXTRA_CA_CERTS (Node reads it at start-up, so the daemon
 * and every call verify the server): config.ts has no variable for tlsRejectUnauthorized.
 */
export function archiverEnv(options: ArchiverEnvOptions): Record<string, string> {
  fs.mkdirSync(path.join(options.stateDir, 'spool'), { recursive: true });
  giveToPostgres(options.stateDir);
  const env: Record<string, string> = {
    ARCHIVER_REPOSITORY: options.repository,
    ARCHIVER_SPOOL: path.join(options.stateDir, 'spool'),
    ARCHIVER_DAEMON_LOG: path.join(options.stateDir, 'daemon.log'),
    // A safety net should a stop be missed; `stop` is sent after every measurement.
    ARCHIVER_DAEMON_IDLE_SECONDS: '120',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  if (options.s3) {
    env.ARCHIVER_S3_ENDPOINT = options.s3.endpoint;
    env.AWS_ACCESS_KEY_ID = options.s3.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = options.s3.secretAccessKey;
    env.AWS_REGION = 'us-east-1';
    env.ARCHIVER_S3_CHECKSUMS = S3_CHECKSUMS;
    if (options.caFile) env.NODE_EXTRA_CA_CERTS = options.caFile;
  }
  if (options.prefetch !== undefined) env.ARCHIVER_PREFETCH = String(options.prefetch);
  if (options.pushConcurrency !== undefined) env.ARCHIVER_PUSH_CONCURRENCY = String(options.pushConcurrency);
  if (options.compression !== undefined) env.ARCHIVER_COMPRESSION = options.compression;
  return env;
}

/**
 * Starts the background archiver the way the pod's `archiver` sidecar runs it (the image's
 * `daemon` command, never idling out), as postgres, before PostgreSQL needs it; waits until it
 * listens. Returns the environment of PostgreSQL's calls in that pod: ARCHIVER_DAEMON=external.
 * Stop it with stopArchiverDaemon(archiver, env).
 */
export async function startSidecar(archiver: PreparedArchiver, env: Record<string, string>): Promise<Record<string, string>> {
  const bin = path.dirname(archiver.launcher);
  // Owned by postgres: a background archiver a call starts later appends to the same log.
  fs.appendFileSync(env.ARCHIVER_DAEMON_LOG, '');
  giveToPostgres(env.ARCHIVER_DAEMON_LOG);
  // As archiverDaemonCommand() has the pod run it: Node with the background archiver's V8 settings.
  await startSidecarProcess([path.join(bin, 'node'), ...DAEMON_NODE_FLAGS, path.join(bin, '../lib/archiver.cjs'), 'daemon'], { ...POSTGRES_BASE_ENV, ...env, ARCHIVER_DAEMON_IDLE_SECONDS: '0' }, {
    logFile: env.ARCHIVER_DAEMON_LOG,
    cwd: path.dirname(env.ARCHIVER_SPOOL),
    ...postgresUser(),
  });
  return { ...env, ARCHIVER_DAEMON: 'external' };
}

/**
 * Stops the daemon of this configuration (as postgres: its socket is postgres's) and waits for
 * its process to exit; one still running after `waitMs` is killed (by pid) and reported.
 */
export function stopArchiverDaemon(archiver: PreparedArchiver, env: Record<string, string>, waitMs = 15_000): void {
  // Exit 74 (none runs) is expected: a background archiver that a call started stops with its
  // PostgreSQL, which the benchmark script has stopped by now.
  const stopped = timeAsPostgres(`${archiver.launcher} stop`, env, path.dirname(env.ARCHIVER_SPOOL));
  if (stopped.status !== 0 && stopped.status !== EXIT_CODES.notFound) progress(`archiver stop failed (${stopped.status}): ${stopped.stderr.slice(0, 300)}`);
  // The daemon's environment names its spool: only this configuration's daemon matches.
  const daemons = () => processesMentioning(env.ARCHIVER_SPOOL).filter((p) => /archiver\.cjs daemon/.test(p.cmdline));
  const deadline = Date.now() + waitMs;
  while (daemons().length > 0 && Date.now() < deadline) execFileSync('sleep', ['0.1']);
  const left = daemons();
  if (left.length > 0) {
    progress(`archiver daemon still running ${waitMs / 1000} s after 'archiver stop' (pid ${left.map((p) => p.pid).join(', ')}): killed`);
    for (const { pid } of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/**
 * CPU seconds (user + system, every thread) the running background archiver of this
 * configuration has used so far; undefined when none runs. The push-ahead is CPU-bound on small
 * machines (hashing and compressing each segment), so this is what a backlog run's rate hangs on.
 */
export function daemonCpuSeconds(env: Record<string, string>): number | undefined {
  let total: number | undefined;
  for (const { pid, cmdline } of processesMentioning(env.ARCHIVER_SPOOL)) {
    if (!/archiver\.cjs daemon/.test(cmdline)) continue;
    const cpu = processCpuSeconds(pid); // undefined: exited meanwhile
    if (cpu !== undefined) total = (total ?? 0) + cpu;
  }
  return total;
}

/** The daemon's log (its stderr), for reports of failures and oddities. */
export function daemonLog(env: Record<string, string>): string {
  try {
    return fs.readFileSync(env.ARCHIVER_DAEMON_LOG, 'utf8');
  } catch {
    return '';
  }
}

/** Copies the S3 server's certificate where the postgres user can read it. */
export function readableCertificate(server: S3Server, scratch: Scratch): string | undefined {
  if (!server.certificateFile) return undefined;
  const copy = path.join(scratch.dir, 's3-cert.pem');
  fs.copyFileSync(server.certificateFile, copy);
  fs.chmodSync(copy, 0o644);
  return copy;
}

