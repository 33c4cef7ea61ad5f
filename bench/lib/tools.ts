/**
 * Running the reference tools and shell commands for the benchmarks: apt installs of missing
 * tools (root only, once per package), commands run as PostgreSQL runs them (`sh -c` as the
 * postgres user, in the data directory), and the shared harness scripts in ../shared/bench.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../../testkit/archiver';
import { PG_BIN, postgresUser } from '../../testkit/postgres';

/** The shared harness (archive-bench.sh, pgbackrest.sh), beside the repository. */
export const SHARED_BENCH = path.resolve(ROOT, '../shared/bench');
/** The postgres user's environment for commands PostgreSQL would run. */
export const POSTGRES_BASE_ENV: Record<string, string> = {
  PATH: `${PG_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
  HOME: '/var/lib/postgresql',
  LANG: 'C.UTF-8',
};

/** Progress output (stderr): the tables go to stdout. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const aptTried = new Map<string, boolean>();

/**
 * Whether `command` is available, installing Debian package `pkg` first when it is not and we are
 * root. Returns a reason when it stays unavailable.
 */
export function ensureTool(command: string, pkg: string): { ok: true } | { ok: false; reason: string } {
  if (hasCommand(command)) return { ok: true };
  if (process.getuid?.() !== 0) return { ok: false, reason: `${command} not installed (apt-get install ${pkg} as root)` };
  if (!aptTried.has(pkg)) {
    progress(`installing ${pkg} (apt-get)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let result = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env, encoding: 'utf8' });
    if (result.status !== 0) {
      spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
      result = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env, encoding: 'utf8' });
    }
    aptTried.set(pkg, result.status === 0);
  }
  return hasCommand(command) ? { ok: true } : { ok: false, reason: `${command} not installable (apt-get install ${pkg} failed)` };
}

export interface RunOutput {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command asynchronously (the event loop stays free), collecting its output. The command
 * gets its own process group: after `timeoutMs`, or when `alive` reports a problem, the whole
 * group is sent SIGTERM (bash scripts then run their EXIT traps), and 10 s later SIGKILL and
 * `forceKill` (for what left the group, e.g. a postmaster, which pg_ctl starts in its own session).
 */
export function run(
  command: string,
  args: readonly string[],
  options: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs?: number;
    /** Checked every second: a message ends the command as a timeout does. */
    alive?: () => string | undefined;
    forceKill?: () => void;
    /** Run as the postgres user (as the pod's containers and PostgreSQL's commands run). @default false */
    asPostgres?: boolean;
  } = {},
): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    const user = options.asPostgres ? postgresUser() : {};
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...user });
    let stdout = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // the group is gone
      }
    };
    const end = (why: string) => {
      if (killTimer) return;
      stderr += `\n(${why})`;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => {
        signalGroup('SIGKILL');
        options.forceKill?.();
      }, 10_000);
    };
    const timer = options.timeoutMs ? setTimeout(() => end(`timed out after ${Math.round(options.timeoutMs! / 1000)} s`), options.timeoutMs) : undefined;
    const watch = options.alive
      ? setInterval(() => {
          const dead = options.alive!();
          if (dead) end(dead);
        }, 1000)
      : undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-20_000)));
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      clearInterval(watch);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Runs a shell command as the postgres user (synchronously) and fails with its output. */
export function shAsPostgres(command: string, env: Record<string, string> = {}, cwd?: string): string {
  const { uid, gid } = postgresUser();
  const result = spawnSync('sh', ['-c', command], { env: { ...POSTGRES_BASE_ENV, ...env }, cwd, uid, gid, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`${command} failed (${result.status}): ${result.stderr}${result.stdout}`.slice(0, 4000));
  return result.stdout;
}

/**
 * Runs `command` as PostgreSQL runs archive_command / restore_command (`sh -c`, postgres user,
 * data directory as working directory) and returns its wall time in milliseconds.
 */
export function timeAsPostgres(command: string, env: Record<string, string>, cwd: string): { ms: number; status: number | null; stderr: string } {
  const { uid, gid } = postgresUser();
  const start = process.hrtime.bigint();
  const result = spawnSync('sh', ['-c', command], { env: { ...POSTGRES_BASE_ENV, ...env }, cwd, uid, gid, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, status: result.status, stderr: result.stderr ?? '' };
}

/** `VAR=value VAR=value` for archive-bench.sh's PGENV (values must not contain spaces). */
export function pgenv(env: Record<string, string>): string {
  for (const [k, v] of Object.entries(env)) if (/\s|'|"/.test(v)) throw new Error(`PGENV value of ${k} must not contain spaces or quotes: ${v}`);
  return Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** Sum of the sizes of the regular files under `dir` that `accept` (by path). */
export function bytesUnder(dir: string, accept: (file: string) => boolean = () => true): number {
  let total = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += bytesUnder(full, accept);
    else if (entry.isFile() && accept(full)) total += fs.statSync(full).size;
  }
  return total;
}

/** Bytes of the objects s3rver stores under `bucket/prefix` (its .md5 and metadata files excluded). */
export function s3rverBytes(directory: string, bucket: string, prefix: string): number {
  return bytesUnder(path.join(directory, bucket, prefix), (f) => f.endsWith('._S3rver_object'));
}

/**
 * The archived WAL segments under `dir` (files whose name starts with a segment name, as every
 * tool's layout has it: ours `wal/NAME`, pgBackRest `NAME-sha1.lz4`, barman `NAME`; s3rver's
 * `._S3rver_object` files only when `s3rver`): their count and bytes. Counting stored segments
 * rather than the ones measured keeps the size ratio right when PostgreSQL archived one more
 * segment at shutdown.
 */
export function storedSegments(dir: string, s3rver = false): { count: number; bytes: number } {
  let count = 0;
  const bytes = bytesUnder(dir, (f) => {
    let base = path.basename(f);
    if (s3rver) {
      if (!base.endsWith('._S3rver_object')) return false;
      base = base.slice(0, -'._S3rver_object'.length);
    }
    // A segment (not .history, .backup, .partial), optionally with pgBackRest's checksum and a compression suffix.
    const ok = /^[0-9A-F]{24}(-[0-9a-f]{40})?(\.(lz4|zst|gz|bz2|snappy))?$/.test(base);
    if (ok) count++;
    return ok;
  });
  return { count, bytes };
}

/**
 * CPU seconds (user + system, every thread; not its children) process `pid` has used so far;
 * undefined once it is gone.
 */
export function processCpuSeconds(pid: number): number | undefined {
  const ticks = 100; // USER_HZ: what /proc reports in on Linux
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return undefined;
  }
}
