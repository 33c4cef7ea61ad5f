/**
 * Runs the built archiver (archiver/dist, built once per test run by global-setup.ts) the way
 * PostgreSQL does: the launcher, with configuration in the environment.
 */
import { ChildProcess, ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { postgresUser } from './postgres';

export const ROOT = path.resolve(__dirname, '..');
/**
 * The launcher under test: archiver/dist's, or another build's (ARCHIVER_UNDER_TEST=/path/to/bin/archiver),
 * e.g. an earlier commit's, to show that a spec fails where a fault is not fixed.
 */
export const LAUNCHER = process.env.ARCHIVER_UNDER_TEST ?? path.join(ROOT, 'archiver/dist/bin/archiver');

export interface RunResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The background archiver inherits stderr; a test capturing stderr through a pipe would wait for
 * it to exit. ARCHIVER_DAEMON_LOG sends its log to a file instead.
 */
function withDaemonLog(env: Record<string, string>): Record<string, string> {
  return { ARCHIVER_DAEMON_LOG: path.join(env.ARCHIVER_SPOOL ?? os.tmpdir(), '..', 'daemon.log'), ...env };
}

export function runArchiver(args: string[], env: Record<string, string>, cwd?: string, timeoutMs = 120_000): RunResult {
  const result = spawnSync(LAUNCHER, args, { env: { PATH: process.env.PATH!, ...withDaemonLog(env) }, cwd, encoding: 'utf8', timeout: timeoutMs });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

export function runArchiverAsync(args: string[], env: Record<string, string>, cwd?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(LAUNCHER, args, { env: { PATH: process.env.PATH!, ...withDaemonLog(env) }, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** Polls until `file` exists; whether it did within `timeoutMs`. */
export async function waitForFile(file: string, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

export interface SidecarOptions {
  /** Its stderr (the background archiver's log) is appended here. */
  readonly logFile: string;
  readonly cwd?: string;
  /** Run as this user (the pod runs both containers as one uid). */
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * Starts a background archiver the way the pod's `archiver` sidecar runs it: `command` (the
 * rendered one, or the launcher with `daemon`) in the foreground with `env`; resolves once it
 * listens (its spool's daemon.port). Stop it with stopSidecar.
 */
export async function startSidecar(command: readonly string[], env: Record<string, string>, options: SidecarOptions): Promise<ChildProcess> {
  const log = fs.openSync(options.logFile, 'a');
  const sidecar = spawn(command[0], command.slice(1), {
    env: { PATH: process.env.PATH!, ...env },
    cwd: options.cwd,
    uid: options.uid,
    gid: options.gid,
    stdio: ['ignore', 'ignore', log],
  });
  fs.closeSync(log);
  if (!(await waitForFile(path.join(env.ARCHIVER_SPOOL, 'daemon.port')))) {
    sidecar.kill('SIGKILL');
    throw new Error(`the sidecar did not start listening: ${fs.readFileSync(options.logFile, 'utf8').slice(-2000)}`);
  }
  return sidecar;
}

/** Sends `signal` (SIGTERM: the sidecar's clean stop) and resolves with the exit code. */
export function stopSidecar(sidecar: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (sidecar.exitCode !== null || sidecar.signalCode !== null) return Promise.resolve(sidecar.exitCode);
  const exited = new Promise<number | null>((resolve) => sidecar.once('exit', (code) => resolve(code)));
  sidecar.kill(signal);
  return exited;
}

/** Stops the background archiver of this configuration, if one runs. */
export function stopArchiver(env: Record<string, string>): void {
  runArchiver(['stop'], env);
}

/**
 * A file shaped like a WAL segment: the long page header PostgreSQL 15 writes (magic 0xD110, long
 * header flag, timeline, page address, system identifier, segment size, block size), then bytes
 * from `seed`.
 */
export function makeSegment(systemIdentifier: bigint, seed: number, size = 16 * 1024 * 1024): Buffer {
  const segment = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 40; i < size; i += 4) {
    // xorshift, with runs of zeros like a half-filled segment: compressible but not trivially
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    segment.writeUInt32LE(i % 8192 < 4096 ? x >>> 0 : 0, i);
  }
  segment.writeUInt16LE(0xd110, 0);
  segment.writeUInt16LE(0x0002, 2);
  segment.writeUInt32LE(1, 4);
  segment.writeBigUInt64LE(systemIdentifier, 24);
  segment.writeUInt32LE(size, 32);
  segment.writeUInt32LE(8192, 36);
  return segment;
}

/** A data directory stand-in: pg_wal with archive_status, owned by the test. */
export function fakeDataDirectory(base: string): { dataDir: string; walDir: string; addReady(name: string, data: Buffer): string } {
  const dataDir = path.join(base, 'data');
  const walDir = path.join(dataDir, 'pg_wal');
  fs.mkdirSync(path.join(walDir, 'archive_status'), { recursive: true });
  fs.writeFileSync(path.join(dataDir, 'PG_VERSION'), '15\n');
  return {
    dataDir,
    walDir,
    addReady(name: string, data: Buffer): string {
      const file = path.join(walDir, name);
      fs.writeFileSync(file, data);
      fs.writeFileSync(path.join(walDir, 'archive_status', `${name}.ready`), '');
      return file;
    },
  };
}

/** One logfmt line of the archiver (logger.ts), as fields; quoted values unquoted. */
export type LogLine = Record<string, string>;

export function parseLogLine(line: string): LogLine {
  const fields: LogLine = {};
  const pattern = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const match of line.matchAll(pattern)) fields[match[1]] = match[2].startsWith('"') ? (JSON.parse(match[2]) as string) : match[2];
  return fields;
}

/** Every archiver log line in `stderr` (lines that are not logfmt are left out). */
export function logLines(stderr: string): LogLine[] {
  return stderr.split('\n').filter((line) => line.startsWith('time=')).map(parseLogLine);
}

/** The last archiver log line in `stderr`: a failed command's error line. */
export function lastLog(stderr: string): LogLine {
  const lines = logLines(stderr);
  if (lines.length === 0) throw new Error(`no archiver log line in: ${JSON.stringify(stderr)}`);
  return lines[lines.length - 1];
}

/** Background archivers (`archiver daemon` processes) whose environment names `spool`. */
export function daemonProcesses(spool: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!cmdline.some((arg) => arg.endsWith('archiver.cjs')) || !cmdline.includes('daemon')) continue;
      if (fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0').includes(`ARCHIVER_SPOOL=${spool}`)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Polls `condition` until it holds; whether it did within `timeoutMs`. */
export async function eventually(condition: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/**
 * Runs the archiver as the `archiver` sidecar does: as postgres (uid 999 in the pod), so that it
 * may read a test cluster's data directory and writes what PostgreSQL can use.
 */
export function runArchiverAsPostgres(args: string[], env: Record<string, string>, timeoutMs = 300_000): RunResult {
  const result = spawnSync(LAUNCHER, args, { env: { PATH: process.env.PATH!, ...env }, encoding: 'utf8', timeout: timeoutMs, ...postgresUser() });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** runArchiverAsPostgres, in the background: for killing it half-way or reading its log as it goes. */
export function spawnArchiverAsPostgres(args: string[], env: Record<string, string>): ChildProcessWithoutNullStreams {
  return spawn(LAUNCHER, args, { env: { PATH: process.env.PATH!, ...env }, ...postgresUser() });
}

/**
 * One scrape of a sidecar's metrics, as Prometheus reads them: `name{labels}` → value; undefined
 * when nothing listens on `port`, or it does not answer 200 in Prometheus's text format.
 */
export async function scrapeMetrics(port: number, metricsPath = '/metrics'): Promise<Map<string, number> | undefined> {
  let text: string;
  try {
    const response = await fetch(`http://127.0.0.1:${port}${metricsPath}`);
    if (response.status !== 200 || !/^text\/plain; version=0\.0\.4/.test(response.headers.get('content-type') ?? '')) return undefined;
    text = await response.text();
  } catch {
    return undefined;
  }
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}
