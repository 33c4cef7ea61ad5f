/**
 * Real PostgreSQL 15 clusters for tests and benchmarks. CI runs as root and PostgreSQL refuses to,
 * so every cluster runs as the `postgres` user in a temporary directory it owns, on a free port of
 * 127.0.0.1 with its socket in that directory. `remove()` stops it and deletes the directory; a
 * process exit handler does the same for clusters a failing test left behind.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './ports';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

const live = new Set<PostgresCluster>();
process.on('exit', () => {
  for (const cluster of live) cluster.removeSync();
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    for (const cluster of live) cluster.removeSync();
    process.kill(process.pid, signal);
  });
}

/** No PostgreSQL tool may hang a test run (pg_basebackup waits for archiving, for one). */
const COMMAND_TIMEOUT_MS = 180_000;

function asPostgres(command: string, args: string[], env: Record<string, string> = {}, input?: string): string {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const runAs = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', 'env', ...envArgs, command, ...args] : ['env', ...envArgs, command, ...args];
  const result = spawnSync(runAs[0], runAs.slice(1), { encoding: 'utf8', input, maxBuffer: 64 << 20, timeout: COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.error ? result.error.message : `exit ${result.status}`}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}

let postgresIds: { uid: number; gid: number } | undefined;

/** The postgres user's uid and gid, for spawning commands as PostgreSQL (or the pod) runs them. */
export function postgresUser(): { uid: number; gid: number } {
  postgresIds ??= {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  };
  return postgresIds;
}

/** Makes `dir` (and its parents up to the temp dir) usable by the postgres user. */
export function giveToPostgres(dir: string): void {
  if (process.getuid?.() !== 0) return;
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
}

export interface ClusterOptions {
  /** Settings appended to postgresql.conf. */
  readonly settings?: Record<string, string | number>;
  /** Environment of the postmaster (archive_command and restore_command inherit it). */
  readonly env?: Record<string, string>;
  /** Use this data directory (e.g. a base backup) instead of running initdb. */
  readonly fromDataDirectory?: string;
  /**
   * Use this data directory in place, not a copy: one a restore tool has just written (timing a
   * restore up to a running server without copying it). It must be named `data`, in a directory
   * of its own, which becomes the cluster's base directory (socket, log) and is removed with it.
   */
  readonly inPlaceDataDirectory?: string;
}

export class PostgresCluster {
  public readonly dataDir: string;
  public readonly logFile: string;
  private running = false;

  private constructor(
    public readonly baseDir: string,
    public readonly port: number,
    private readonly env: Record<string, string>,
  ) {
    this.dataDir = path.join(baseDir, 'data');
    this.logFile = path.join(baseDir, 'postgres.log');
  }

  /** A new cluster (initdb, or a copy of `fromDataDirectory`, or `inPlaceDataDirectory`), configured but not started. */
  static async create(options: ClusterOptions = {}): Promise<PostgresCluster> {
    const inPlace = options.inPlaceDataDirectory;
    if (inPlace !== undefined && (path.basename(inPlace) !== 'data' || !fs.existsSync(path.join(inPlace, 'PG_VERSION')))) {
      throw new Error(`inPlaceDataDirectory must be a data directory named 'data' in a directory of its own, got ${inPlace}`);
    }
    const baseDir = inPlace !== undefined ? path.dirname(path.resolve(inPlace)) : fs.mkdtempSync(path.join(os.tmpdir(), 'pg-'));
    fs.chmodSync(baseDir, 0o755);
    const cluster = new PostgresCluster(baseDir, await freePort(), options.env ?? {});
    live.add(cluster);
    giveToPostgres(baseDir);
    if (inPlace !== undefined) {
      fs.rmSync(path.join(cluster.dataDir, 'postmaster.pid'), { force: true });
    } else if (options.fromDataDirectory) {
      execFileSync('cp', ['-a', options.fromDataDirectory, cluster.dataDir]);
      giveToPostgres(cluster.dataDir);
      fs.rmSync(path.join(cluster.dataDir, 'postmaster.pid'), { force: true });
    } else {
      asPostgres(`${PG_BIN}/initdb`, ['-D', cluster.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    }
    cluster.configure({
      port: cluster.port,
      listen_addresses: "'127.0.0.1'",
      unix_socket_directories: `'${baseDir}'`,
      fsync: 'off',
      shared_buffers: '128MB',
      max_wal_size: '4GB',
      checkpoint_timeout: '1h',
      ...options.settings,
    });
    return cluster;
  }

  /** Appends settings to postgresql.conf (later lines win). */
  configure(settings: Record<string, string | number>): void {
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${v}`);
    fs.appendFileSync(path.join(this.dataDir, 'postgresql.conf'), `\n${lines.join('\n')}\n`);
  }

  /** pg_ctl start; waits until it accepts connections (or, for recovery, until it is up). */
  start(wait = true): void {
    asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dataDir, '-l', this.logFile, ...(wait ? ['-w', '-t', '300'] : ['-W']), 'start'], this.env);
    this.running = true;
  }

  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    if (!this.running) return;
    asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dataDir, '-m', mode, '-w', 'stop']);
    this.running = false;
  }

  reload(): void {
    asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dataDir, 'reload']);
  }

  /** Runs SQL, returns unaligned tuples-only output. */
  sql(query: string): string {
    return asPostgres(`${PG_BIN}/psql`, ['-h', this.baseDir, '-p', String(this.port), '-U', 'postgres', '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', query]).trim();
  }

  /** A base backup (tar-free, plain directory) into a new directory owned by postgres. */
  baseBackup(): string {
    const target = path.join(this.baseDir, `basebackup-${Date.now()}`);
    asPostgres(`${PG_BIN}/pg_basebackup`, ['-h', this.baseDir, '-p', String(this.port), '-U', 'postgres', '-D', target, '-X', 'none', '-c', 'fast', '--no-sync']);
    return target;
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  /** Starts archive recovery (recovery.signal: restore_command until the archive has no more) and waits for its end. */
  async recoverFromArchive(timeoutMs = 300_000): Promise<void> {
    fs.writeFileSync(path.join(this.dataDir, 'recovery.signal'), '');
    giveToPostgres(this.dataDir);
    this.start(false);
    await this.waitForRecoveryEnd(timeoutMs);
  }

  /**
   * Waits for the end of recovery: the log's plain "ready to accept connections" (pg_ctl -w
   * returns before it with hot_standby off, and "read-only connections" comes before redo ends).
   * `logFrom`: read the log from this offset on (a second start after a stopped recovery).
   */
  async waitForRecoveryEnd(timeoutMs = 300_000, logFrom = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const log = () => this.log().slice(logFrom);
    while (!/database system is ready to accept connections/.test(log())) {
      if (Date.now() > deadline || /FATAL|PANIC/.test(log()) && /startup process .* exited|aborting startup|configuration file .* contains errors/.test(log())) {
        throw new Error(`recovery did not end:\n${log().slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Waits until the server has stopped on its own (a startup process that failed): the log says
   * "database system is shut down" and postmaster.pid is gone — not merely absent yet, as right
   * after `start(false)`. Fails at once when the server opened instead. `logFrom`: read the log
   * from this offset on.
   */
  async waitForStop(timeoutMs = 120_000, logFrom = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!/database system is shut down/.test(this.log().slice(logFrom)) || fs.existsSync(path.join(this.dataDir, 'postmaster.pid'))) {
      // Opened instead: it will not stop on its own.
      if (Date.now() > deadline || /database system is ready to accept connections/.test(this.log().slice(logFrom))) {
        throw new Error(`the server did not stop:\n${this.log().slice(logFrom).slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.running = false;
  }

  /** Whether a postmaster runs on the data directory (pg_ctl status). */
  isRunning(): boolean {
    try {
      asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dataDir, 'status']);
      return true;
    } catch {
      return false;
    }
  }

  /** pg_controldata's fields, e.g. "Database cluster state": "in archive recovery". */
  controlData(): Record<string, string> {
    const fields: Record<string, string> = {};
    for (const line of asPostgres(`${PG_BIN}/pg_controldata`, ['-D', this.dataDir]).split('\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) fields[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    return fields;
  }

  /** Files waiting for archive_command. */
  readyFiles(): string[] {
    const dir = path.join(this.dataDir, 'pg_wal/archive_status');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.ready')).map((f) => f.slice(0, -6)).sort() : [];
  }

  /**
   * Waits until nothing is left to archive, or fails with PostgreSQL's log tail. `whileWaiting`
   * runs between polls (a benchmark restarts a dead storage server there).
   */
  async waitForArchiving(timeoutMs = 120_000, whileWaiting?: () => Promise<unknown>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.readyFiles().length > 0) {
      if (Date.now() > deadline) throw new Error(`archiving did not finish: ${this.readyFiles().length} files ready\n${this.log().slice(-3000)}`);
      await whileWaiting?.();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  removeSync(): void {
    try {
      if (this.running) asPostgres(`${PG_BIN}/pg_ctl`, ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already stopped
    }
    this.running = false;
    fs.rmSync(this.baseDir, { recursive: true, force: true });
    live.delete(this);
  }

  async remove(): Promise<void> {
    this.removeSync();
  }
}
