/**
 * Base backup benchmark: our `archiver backup-push` / `backup-fetch` against pgBackRest's full
 * backup and restore and pg_basebackup, in one run on this machine; then point-in-time recovery
 * from each tool's backup up to a promoted server.
 *
 *   npx tsx bench/backup.ts [--scale N] [--quick] [--repeats N] [--pitr-segments N] [--no-build] [--skip-s3] [--skip-pitr] [--skip-delta] [--skip-backups]
 *
 * Setup (untimed): one PostgreSQL 15 cluster with a pgbench database (`pgbench -i -s SCALE`:
 * scale 70 is ~1 GiB; archiving is off while it loads, then a checkpoint). Its archive_command
 * then archives every segment to every repository: ours through `<launcher> wal-push %p` with the
 * background archiver already running as the pod's sidecar runs it (ARCHIVER_DAEMON=external), once
 * to a directory (file://) and once to s3rver (over TLS, as pgBackRest needs), and pgBackRest's
 * archive-push (asynchronous, 2 processes, lz4) to its posix repository and to the same s3rver.
 *
 * 1. Backup and restore. Every round runs each tool once, the order rotating from round to round
 *    (writes flushed with `sync` between runs); the table shows the median and the range, in MB/s
 *    of the database's size (pg_database_size, 10^6 bytes).
 *    - ours: `archiver backup-push` as postgres (PGHOST = the cluster's socket directory, PGPORT),
 *      default settings (zstd, 2 parts at once); restore: `archiver backup-fetch LATEST <empty
 *      directory>` (default concurrency, fsync as shipped). Our S3 rows run with
 *      ARCHIVER_S3_CHECKSUMS=when_required (s3rver stores the SDK's default uploads corrupted).
 *    - pgBackRest: `backup --type=full --process-max=2 --start-fast`, compress-type lz4 and zst;
 *      restore: `restore --process-max=2` into an empty directory.
 *    - pg_basebackup -Ft and -Fp, -X none, fast checkpoint: the single-stream reference (backup
 *      only; it writes no compressed output here). The -Fp row's restore is the restore floor:
 *      its plain output copied into the empty directory and synced (`cp -a` + `sync -f`), the
 *      data files written durably with nothing to fetch, decompress or verify.
 *    Every backup is timed from the command's start to its exit: both tools wait for the WAL of
 *    the backup to reach their archive. Each restore is checked to have written at least the
 *    database's size. Beside the wall clock, the CPU seconds of each command (GNU time: user +
 *    system of the command and of the processes it waited for): on a shared 2-core machine they
 *    say more about what a tool costs than its noisy rate.
 * 2. Point-in-time recovery (--skip-pitr leaves it out): a fresh backup by each tool (pgBackRest:
 *    the compress-type that restored faster in part 1 on that storage), then PITR_SEGMENTS × 16
 *    MiB of WAL (the md5 rows of ../shared/bench's scripts), a target time, one more commit. Timed:
 *    ours `backup-fetch LATEST <dir> --recovery --target-time T` (the sidecar already running) and
 *    pgBackRest `restore --type=time --target=T --target-action=promote` (archive-get asynchronous,
 *    2 processes), each followed by `pg_ctl start` until the promoted server accepts connections
 *    (hot_standby=off). Every run must stop before the same transaction and hold the same rows.
 *    Beside them, the floor (PITR_FLOOR): a plain backup taken with the others, copied durably
 *    into place, and recovered with `cp` from the same WAL kept uncompressed (the source's
 *    archive script copies it during the setup) — no tool's work, only the copy and the replay.
 *
 * Rates are only comparable within one run: the machine is shared and noisy.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PG_BIN, PostgresCluster } from '../testkit/postgres';
import { killMentioning, Scratch } from '../testkit/processes';
import { S3Server, startS3Server } from '../testkit/s3-server';
import { archiverEnv, daemonLog, PreparedArchiver, prepareArchiver, readableCertificate, S3_CHECKSUMS_NOTE, startSidecar, stopArchiverDaemon } from './lib/archiver';
import { PgbackrestClusterRef, pgbackrestS3Options, S3Watch, writePgbackrestConfig } from './lib/reference-tools';
import { fixed, median, table, Target, targetLine, times } from './lib/report';
import { bytesUnder, ensureTool, POSTGRES_BASE_ENV, progress, run, RunOutput, s3rverBytes } from './lib/tools';

export interface BackupBenchmarkOptions {
  /** pgbench scale of the database (15 MB per unit).
   * @default 70 (~1 GiB), 10 with `quick` */
  readonly scale?: number;
  /** A smaller database and one round, for development. @default false */
  readonly quick?: boolean;
  /** Rounds (every tool once per round, interleaved); the table shows the median and the range.
   * @default 3, 1 with `quick` */
  readonly repeats?: number;
  /** Also back up to and restore from s3rver. @default true */
  readonly s3?: boolean;
  /** Run the point-in-time recovery part. @default true */
  readonly pitr?: boolean;
  /** WAL segments written between the PITR backups and the target time.
   * @default 64 (1 GiB), 16 with `quick` */
  readonly pitrSegments?: number;
  /** Run the timed backups and restores against pgBackRest (the PITR part needs them). @default true */
  readonly backups?: boolean;
  /** Run the delta backup part. @default true */
  readonly delta?: boolean;
  /** Build archiver/dist first (archiver/scripts/build.ts). @default true */
  readonly build?: boolean;
  /** Where the tables go. @default console.log */
  readonly write?: (text: string) => void;
}

export type StorageKind = 'local' | 's3';
export type BackupRole = 'ours' | 'pgbackrest' | 'pg_basebackup';

export interface BackupRow {
  readonly tool: string;
  readonly storage: StorageKind;
  readonly role: BackupRole;
  /** Set when no run succeeded. */
  readonly error?: string;
  readonly runs?: number;
  /** Medians, and the slowest and fastest rates, of the successful runs. */
  readonly backupSeconds?: number;
  readonly backupMBps?: number;
  readonly backupMBpsRange?: readonly [number, number];
  readonly restoreSeconds?: number;
  readonly restoreMBps?: number;
  readonly restoreMBpsRange?: readonly [number, number];
  /** Median CPU seconds (user + system) of the command and its children: what the rate costs on a shared 2-core machine. */
  readonly backupCpuSeconds?: number;
  readonly restoreCpuSeconds?: number;
  /** Bytes stored per backup (median) and their ratio to the database's size. */
  readonly storedBytes?: number;
  readonly sizeRatio?: number;
  readonly note?: string;
}

/** `floor`: no tool, the least any recovery to the target costs here (see PITR_FLOOR). */
export type PitrRole = 'ours' | 'pgbackrest' | 'floor';

export interface PitrRow {
  readonly tool: string;
  readonly storage: StorageKind;
  readonly role: PitrRole;
  readonly error?: string;
  readonly runs?: number;
  /** Medians of the successful runs: the restore command, start to promoted, and both. */
  readonly fetchSeconds?: number;
  readonly fetchCpuSeconds?: number;
  readonly replaySeconds?: number;
  readonly totalSeconds?: number;
  readonly totalRange?: readonly [number, number];
  readonly note?: string;
}

export type { Target };

export interface BackupBenchmarkResult {
  readonly databaseBytes: number;
  readonly backups: readonly BackupRow[];
  readonly pitr: readonly PitrRow[];
  readonly deltas: readonly DeltaRow[];
  readonly targets: readonly Target[];
}

const BUCKET = 'bench';
const MB = 1e6;
/** pgBackRest's repository on s3rver (repo2 of the source's configuration). */
const PGBR_S3_PATH = '/pgbr';
/** Our archive on s3rver. */
const OURS_S3_PREFIX = 'ours';
/** No single command may hold the run for ever. */
const COMMAND_TIMEOUT_MS = 30 * 60_000;

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Before a timed step: the previous step's writes flushed (sync) and settled. */
async function settle(): Promise<void> {
  execFileSync('sync');
  await sleep(500);
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** The last lines of a failed command's output, for the table. */
function tail(out: RunOutput, lines = 3): string {
  return `${out.stderr}\n${out.stdout}`.trim().split('\n').filter(Boolean).slice(-lines).join(' / ').slice(0, 600);
}

/** Runs a command as the postgres user with PostgreSQL's base environment plus `env`. */
function asPostgres(command: string, args: readonly string[], env: Record<string, string>, alive?: () => string | undefined, cwd?: string): Promise<RunOutput> {
  return run(command, args, { env: { ...POSTGRES_BASE_ENV, ...env }, asPostgres: true, timeoutMs: COMMAND_TIMEOUT_MS, alive, cwd });
}

/** GNU time: the CPU seconds of a command and of every process it waited for (pgBackRest's workers). */
const GNU_TIME = '/usr/bin/time';
const CPU_MARK = 'BENCH-CPU';

interface Timed {
  readonly out: RunOutput;
  /** Wall-clock seconds from the start of the command to its exit. */
  readonly seconds: number;
  /** User + system CPU seconds of the command and its children (undefined without GNU time). */
  readonly cpuSeconds: number | undefined;
}

/** asPostgres, timed: wall clock, and CPU through GNU time when it is installed. */
async function timed(command: string, args: readonly string[], env: Record<string, string>, alive?: () => string | undefined, cwd?: string): Promise<Timed> {
  const withTime = fs.existsSync(GNU_TIME);
  const start = process.hrtime.bigint();
  const out = withTime ? await asPostgres(GNU_TIME, ['-f', `${CPU_MARK} %U %S`, command, ...args], env, alive, cwd) : await asPostgres(command, args, env, alive, cwd);
  const wall = seconds(start);
  const cpu = new RegExp(`^${CPU_MARK} ([\\d.]+) ([\\d.]+)$`, 'm').exec(out.stderr);
  return {
    out: { ...out, stderr: out.stderr.replace(new RegExp(`^${CPU_MARK} .*$`, 'm'), '') },
    seconds: wall,
    cpuSeconds: cpu ? Number(cpu[1]) + Number(cpu[2]) : undefined,
  };
}

/** writePgbackrestConfig, with the log directory it names (pgBackRest logs to files as shipped). */
function pgbackrestConfig(dir: string, options: readonly string[], cluster: PgbackrestClusterRef): string {
  fs.mkdirSync(path.join(dir, 'log'), { recursive: true });
  return writePgbackrestConfig(dir, options, cluster);
}

// ---------------------------------------------------------------------------------------------
// Setup: the database, its archives

interface Context {
  readonly scratch: Scratch;
  readonly archiver: PreparedArchiver;
  readonly s3: S3Server | undefined;
  readonly s3Watch: S3Watch | undefined;
  readonly caFile: string | undefined;
  readonly source: PostgresCluster;
  readonly storages: readonly StorageKind[];
  /** pg_database_size of the pgbench database. */
  readonly databaseBytes: number;
  /** Our archiver's environment per storage (the sidecar's; the calls add ARCHIVER_DAEMON=external). */
  readonly oursEnv: Record<StorageKind, Record<string, string> | undefined>;
  readonly oursLocalRepo: string;
  /** pgBackRest's configuration of the source (repo1 posix, repo2 s3rver); undefined when it is not installed. */
  readonly pgbrConfig: string | undefined;
  readonly pgbrUnavailable: string | undefined;
  readonly pgbrPosixRepo: string;
  /** The server's connection, as the sidecar sees it. */
  readonly pgEnv: Record<string, string>;
  /** The script the source's archive_command runs (read at every call: a line added takes effect at the next segment). */
  readonly archiveScript: string;
  /** Stops the sidecars and removes the cluster (also run by the scratch directory's clean-up). */
  readonly tearDown: () => void;
}

async function setUp(scratch: Scratch, archiver: PreparedArchiver, s3: S3Server | undefined, caFile: string | undefined, scale: number): Promise<Context> {
  const storages: StorageKind[] = s3 ? ['local', 's3'] : ['local'];
  const source = await PostgresCluster.create({
    settings: { wal_level: 'replica', archive_mode: 'on', archive_command: "'/bin/true'", shared_buffers: '256MB', max_wal_size: '16GB', max_wal_senders: 10 },
  });
  const stops: (() => void)[] = [() => source.removeSync()];
  const tearDown = () => {
    for (const stop of stops.splice(0).reverse()) stop();
  };
  scratch.onCleanup(tearDown);
  source.start();
  const pgEnv = { PGHOST: source.baseDir, PGPORT: String(source.port), PGUSER: 'postgres' };
  progress(`backup setup: pgbench -i -s ${scale} (archiving off while it loads)`);
  const init = await asPostgres(path.join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', String(scale), 'postgres'], pgEnv);
  if (init.status !== 0) throw new Error(`pgbench -i failed: ${tail(init)}`);
  source.sql('checkpoint');
  const databaseBytes = Number(source.sql("select pg_database_size('postgres')"));
  const dataBytes = bytesUnder(source.dataDir, (file) => !file.startsWith(path.join(source.dataDir, 'pg_wal') + path.sep));
  progress(`  database: ${(databaseBytes / MB).toFixed(0)} MB (pg_database_size), data directory without pg_wal ${(dataBytes / MB).toFixed(0)} MB`);

  // Our archiver, as in the pod: the sidecar runs before the first segment is ready.
  const oursLocalRepo = scratch.mkdir('ours-local-repo');
  const oursEnv: Record<StorageKind, Record<string, string> | undefined> = { local: undefined, s3: undefined };
  for (const storage of storages) {
    const env = archiverEnv({
      repository: storage === 'local' ? `file://${oursLocalRepo}` : `s3://${BUCKET}/${OURS_S3_PREFIX}`,
      s3: storage === 's3' ? s3 : undefined,
      caFile,
      stateDir: scratch.mkdir(`ours-${storage}-sidecar`),
    });
    await startSidecar(archiver, env);
    stops.push(() => stopArchiverDaemon(archiver, env));
    oursEnv[storage] = env;
  }
  // One script, not one long archive_command: PostgreSQL cuts archive_command at 1024 bytes.
  const commands = storages.map((storage) => `${Object.entries({ ...oursEnv[storage]!, ARCHIVER_DAEMON: 'external' }).map(([k, v]) => `${k}=${v}`).join(' ')} ${archiver.launcher} wal-push "$1"`);

  const pgbr = ensureTool('pgbackrest', 'pgbackrest');
  const time = ensureTool(GNU_TIME, 'time');
  if (!time.ok) progress(`  no CPU seconds: ${time.reason}`);
  const pgbrPosixRepo = path.join(scratch.dir, 'pgbr', 'repo');
  let pgbrConfig: string | undefined;
  if (pgbr.ok) {
    pgbrConfig = pgbackrestConfig(
      path.join(scratch.dir, 'pgbr'),
      [
        `repo1-path=${pgbrPosixRepo}`,
        ...(s3 ? pgbackrestS3Options(s3, BUCKET, PGBR_S3_PATH).map((option) => option.replace(/^repo1-/, 'repo2-')) : []),
        // Full backups only, none expired: the benchmark removes the repositories at the end.
        'repo1-retention-full=9999',
        ...(s3 ? ['repo2-retention-full=9999'] : []),
        'compress-type=lz4',
        'archive-async=y',
        'process-max=2',
        'start-fast=y',
        'archive-timeout=300',
      ],
      { dataDir: source.dataDir, port: source.port, socketDir: source.baseDir },
    );
    const created = await asPostgres('pgbackrest', [`--config=${pgbrConfig}`, '--stanza=demo', 'stanza-create'], {});
    if (created.status !== 0) throw new Error(`pgbackrest stanza-create failed: ${tail(created)}`);
  }
  const script = path.join(scratch.dir, 'archive-ours.sh');
  fs.writeFileSync(script, `#!/bin/sh\n# our archives of the backup benchmark, from its archive_command\nset -e\n${commands.join('\n')}\n`);
  fs.chmodSync(script, 0o755);
  // pgBackRest's backup refuses an archive_command that does not name pgbackrest: its archive-push
  // is in the command itself (and our script is short of PostgreSQL's 1024-byte limit).
  const pgbrPush = pgbrConfig ? `pgbackrest --config=${pgbrConfig} --stanza=demo archive-push %p && ` : '';
  source.configure({ archive_command: `'${pgbrPush}sh ${script} %p'` });
  source.reload();
  source.sql('select pg_switch_wal()');
  return {
    scratch,
    archiver,
    s3,
    s3Watch: s3 ? new S3Watch(s3) : undefined,
    caFile,
    source,
    storages,
    databaseBytes,
    oursEnv,
    oursLocalRepo,
    pgbrConfig,
    pgbrUnavailable: pgbr.ok ? undefined : pgbr.reason,
    pgbrPosixRepo,
    pgEnv,
    archiveScript: script,
    tearDown,
  };
}

// ---------------------------------------------------------------------------------------------
// 1. Backup and restore

interface BackupTool {
  readonly id: string;
  readonly tool: string;
  readonly storage: StorageKind;
  readonly role: BackupRole;
  readonly note?: string;
  readonly unavailable?: string;
  /** Takes a backup, timing only the backup command; returns its name and a function giving its stored bytes. */
  readonly backup: () => Promise<{ time: Timed; name: string; storedBytes: () => number; remove?: () => void }>;
  /** Restores the backup `name` into the empty directory `dir`, timing only the restore command. */
  readonly restore?: (name: string, dir: string) => Promise<Timed>;
}

interface BackupRun {
  readonly backupSeconds: number;
  readonly backupCpuSeconds?: number;
  readonly restoreSeconds?: number;
  readonly restoreCpuSeconds?: number;
  readonly storedBytes: number;
}

function backupTools(ctx: Context): BackupTool[] {
  const { archiver, scratch } = ctx;
  const tools: BackupTool[] = [];
  const alive = (storage: StorageKind) => (storage === 's3' ? () => ctx.s3Watch?.dead() : undefined);
  for (const storage of ctx.storages) {
    const env = ctx.oursEnv[storage]!;
    tools.push({
      id: `ours-${storage}`,
      tool: 'our archiver (zstd, 2 parts at once)',
      storage,
      role: 'ours',
      note: storage === 's3' ? S3_CHECKSUMS_NOTE : undefined,
      backup: async () => {
        const time = await timed(archiver.launcher, ['backup-push', '--json'], { ...env, ...ctx.pgEnv }, alive(storage), scratch.dir);
        const { out } = time;
        if (out.status !== 0) throw new Error(`backup-push exit ${out.status}: ${tail(out)}`);
        const name = (JSON.parse(out.stdout) as { name: string }).name;
        const where = storage === 'local' ? path.join(ctx.oursLocalRepo, 'basebackups', name) : undefined;
        return {
          time,
          name,
          storedBytes: () => (where ? bytesUnder(where) : s3rverBytes(ctx.s3!.directory, BUCKET, `${OURS_S3_PREFIX}/basebackups/${name}`)),
        };
      },
      restore: async (name, dir) => {
        const time = await timed(archiver.launcher, ['backup-fetch', 'LATEST', dir], env, alive(storage), scratch.dir);
        const { out } = time;
        if (out.status !== 0) throw new Error(`backup-fetch exit ${out.status}: ${tail(out)}`);
        if (out.stdout.trim() !== name) throw new Error(`backup-fetch LATEST restored ${out.stdout.trim()}, not the backup just taken (${name})`);
        return time;
      },
    });
    for (const compress of ['lz4', 'zst'] as const) {
      const repo = storage === 'local' ? 1 : 2;
      const pgbrArgs = (...args: string[]) => [`--config=${ctx.pgbrConfig}`, '--stanza=demo', `--repo=${repo}`, ...args];
      tools.push({
        id: `pgbr-${compress}-${storage}`,
        tool: `pgBackRest full, process-max 2, ${compress}`,
        storage,
        role: 'pgbackrest',
        unavailable: ctx.pgbrUnavailable,
        backup: async () => {
          const time = await timed('pgbackrest', pgbrArgs('--type=full', `--compress-type=${compress}`, 'backup'), {}, alive(storage));
          if (time.out.status !== 0) throw new Error(`pgbackrest backup exit ${time.out.status}: ${tail(time.out)}`);
          const name = await latestPgbackrestBackup(pgbrArgs('--output=json', 'info'));
          return {
            time,
            name,
            storedBytes: () =>
              storage === 'local' ? bytesUnder(path.join(ctx.pgbrPosixRepo, 'backup/demo', name)) : s3rverBytes(ctx.s3!.directory, BUCKET, `${PGBR_S3_PATH.slice(1)}/backup/demo/${name}`),
          };
        },
        restore: async (name, dir) => {
          const time = await timed('pgbackrest', pgbrArgs(`--set=${name}`, `--pg1-path=${dir}`, 'restore'), {}, alive(storage));
          if (time.out.status !== 0) throw new Error(`pgbackrest restore exit ${time.out.status}: ${tail(time.out)}`);
          return time;
        },
      });
    }
  }
  for (const format of ['t', 'p'] as const) {
    tools.push({
      id: `pg_basebackup-F${format}`,
      tool: format === 'p' ? `pg_basebackup -Fp -X none (single stream, uncompressed); restore: ${RESTORE_FLOOR}` : `pg_basebackup -Ft -X none (single stream, uncompressed)`,
      storage: 'local',
      role: 'pg_basebackup',
      backup: async () => {
        const dir = path.join(scratch.mkdir(`pg_basebackup-F${format}`), 'backup');
        const time = await timed(path.join(PG_BIN, 'pg_basebackup'), ['-D', dir, `-F${format}`, '-X', 'none', '-c', 'fast'], ctx.pgEnv);
        if (time.out.status !== 0) throw new Error(`pg_basebackup exit ${time.out.status}: ${tail(time.out)}`);
        return { time, name: dir, storedBytes: () => bytesUnder(dir), remove: () => fs.rmSync(path.dirname(dir), { recursive: true, force: true }) };
      },
      // The restore floor: the data files written durably with nothing to fetch, decompress or
      // verify (the source is in the page cache after pg_basebackup wrote it). No restore can
      // write the same bytes durably faster on this disk.
      restore:
        format === 'p'
          ? async (backupDir, dir) => {
              const time = await timed('sh', ['-c', 'cp -a "$1"/. "$2"/ && sync -f "$2"', 'sh', backupDir, dir], {});
              if (time.out.status !== 0) throw new Error(`the durable copy exited ${time.out.status}: ${tail(time.out)}`);
              return time;
            }
          : undefined,
    });
  }
  return tools;
}

/** What the restore floor's row runs (pg_basebackup -Fp's output copied into the empty directory). */
const RESTORE_FLOOR = 'cp -a + sync -f (the floor: a durable copy)';

/** The label of the newest backup `pgbackrest ... info --output=json` lists. */
async function latestPgbackrestBackup(infoArgs: readonly string[]): Promise<string> {
  const info = await asPostgres('pgbackrest', infoArgs, {});
  const sets = info.status === 0 ? ((JSON.parse(info.stdout) as { backup: { label: string }[] }[])[0]?.backup ?? []) : [];
  const label = sets[sets.length - 1]?.label;
  if (!label) throw new Error(`pgbackrest info lists no backup: ${tail(info)}`);
  return label;
}

/** One backup (and restore) of `tool`; on s3rver, repeated once should the server die meanwhile. */
async function measureBackup(ctx: Context, tool: BackupTool, round: number): Promise<BackupRun> {
  const attempt = async (): Promise<BackupRun> => {
    // The previous run's writes are flushed before this one starts, not during it.
    await settle();
    const taken = await tool.backup();
    const backup = { backupSeconds: taken.time.seconds, backupCpuSeconds: taken.time.cpuSeconds };
    try {
      const storedBytes = taken.storedBytes();
      if (!tool.restore) return { ...backup, storedBytes };
      const dir = ctx.scratch.mkdir(`restore-${tool.id}-r${round}`);
      try {
        await settle();
        const restored = await tool.restore(taken.name, dir);
        // A restore that wrote little would look fast.
        const written = bytesUnder(dir);
        if (written < ctx.databaseBytes) throw new Error(`the restore wrote ${(written / MB).toFixed(0)} MB, less than the database's ${(ctx.databaseBytes / MB).toFixed(0)} MB`);
        return { ...backup, restoreSeconds: restored.seconds, restoreCpuSeconds: restored.cpuSeconds, storedBytes };
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      taken.remove?.();
    }
  };
  if (tool.storage !== 's3' || !ctx.s3Watch) return attempt();
  return (await ctx.s3Watch.guarded(attempt)).result;
}

function range(values: readonly number[]): readonly [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

function combineBackupRuns(ctx: Context, tool: BackupTool, runs: readonly BackupRun[], errors: readonly string[]): BackupRow {
  const base = { tool: tool.tool, storage: tool.storage, role: tool.role };
  if (runs.length === 0) return { ...base, error: errors[0] ?? 'no run', note: tool.note };
  const backupRates = runs.map((r) => ctx.databaseBytes / MB / r.backupSeconds);
  const restores = runs.filter((r) => r.restoreSeconds !== undefined).map((r) => r.restoreSeconds!);
  const restoreRates = restores.map((s) => ctx.databaseBytes / MB / s);
  const storedBytes = median(runs.map((r) => r.storedBytes));
  const cpu = (values: (number | undefined)[]) => {
    const known = values.filter((v): v is number => v !== undefined);
    return known.length ? median(known) : undefined;
  };
  const backupSeconds = median(runs.map((r) => r.backupSeconds));
  const restoreSeconds = restores.length ? median(restores) : undefined;
  return {
    ...base,
    runs: runs.length,
    backupSeconds,
    backupMBps: ctx.databaseBytes / MB / backupSeconds,
    backupMBpsRange: range(backupRates),
    restoreSeconds,
    restoreMBps: restoreSeconds === undefined ? undefined : ctx.databaseBytes / MB / restoreSeconds,
    restoreMBpsRange: restoreRates.length ? range(restoreRates) : undefined,
    backupCpuSeconds: cpu(runs.map((r) => r.backupCpuSeconds)),
    restoreCpuSeconds: cpu(runs.map((r) => r.restoreCpuSeconds)),
    storedBytes,
    sizeRatio: storedBytes / ctx.databaseBytes,
    note: [tool.note, errors.length ? `${errors.length} run(s) failed: ${errors[0]}` : ''].filter(Boolean).join('; ') || undefined,
  };
}

async function runBackups(ctx: Context, repeats: number): Promise<BackupRow[]> {
  const tools = backupTools(ctx);
  const runs = new Map<string, BackupRun[]>();
  const errors = new Map<string, string[]>();
  const available = tools.filter((t) => !t.unavailable);
  for (let round = 0; round < repeats; round++) {
    // Each round starts with another tool, so that none always runs first.
    const shift = round % available.length;
    const order = [...available.slice(shift), ...available.slice(0, shift)];
    for (const tool of order) {
      progress(`backup${repeats > 1 ? ` (round ${round + 1} of ${repeats})` : ''}, ${tool.storage}: ${tool.tool}`);
      try {
        const result = await measureBackup(ctx, tool, round);
        runs.set(tool.id, [...(runs.get(tool.id) ?? []), result]);
        const rate = (s: number) => `${(ctx.databaseBytes / MB / s).toFixed(0)} MB/s`;
        const cpu = (s: number | undefined) => (s === undefined ? '' : `, CPU ${s.toFixed(2)} s`);
        progress(
          `  backup ${result.backupSeconds.toFixed(2)} s (${rate(result.backupSeconds)}${cpu(result.backupCpuSeconds)}), stored ${(result.storedBytes / MB).toFixed(0)} MB` +
            (result.restoreSeconds === undefined ? '' : `; restore ${result.restoreSeconds.toFixed(2)} s (${rate(result.restoreSeconds)}${cpu(result.restoreCpuSeconds)})`),
        );
      } catch (error) {
        const message = (error as Error).message.slice(0, 600);
        errors.set(tool.id, [...(errors.get(tool.id) ?? []), message]);
        progress(`  FAILED: ${message}`);
        if (tool.role === 'ours') {
          const log = daemonLog(ctx.oursEnv[tool.storage]!).trim().split('\n').filter((l) => /level=(warn|error)/.test(l)).slice(-3).join(' / ');
          if (log) progress(`  sidecar warnings: ${log.slice(0, 600)}`);
        }
      }
    }
  }
  return tools.map((tool) => (tool.unavailable ? { tool: tool.tool, storage: tool.storage, role: tool.role, error: tool.unavailable } : combineBackupRuns(ctx, tool, runs.get(tool.id) ?? [], errors.get(tool.id) ?? [])));
}

function rate(value: number | undefined, spread: readonly [number, number] | undefined, repeats: number): string {
  if (value === undefined) return '—';
  return `${fixed(value, 0)}${repeats > 1 && spread ? ` (${fixed(spread[0], 0)}–${fixed(spread[1], 0)})` : ''}`;
}

function backupTable(rows: readonly BackupRow[], databaseBytes: number, repeats: number): string {
  const body = rows.map((r) => {
    const storage = r.role === 'pg_basebackup' ? 'local directory' : r.storage === 'local' ? 'local (file:// / posix)' : 's3rver (TLS)';
    if (r.error !== undefined) return [r.tool, storage, '—', '—', '—', '—', '—', '—', '—', '—', [r.note, r.error].filter(Boolean).join('; ')];
    return [
      r.tool,
      storage,
      fixed(r.backupSeconds, 2),
      rate(r.backupMBps, r.backupMBpsRange, repeats),
      fixed(r.backupCpuSeconds, 2),
      r.restoreSeconds === undefined ? 'n/a' : fixed(r.restoreSeconds, 2),
      r.restoreSeconds === undefined ? 'n/a' : rate(r.restoreMBps, r.restoreMBpsRange, repeats),
      r.restoreSeconds === undefined ? 'n/a' : fixed(r.restoreCpuSeconds, 2),
      fixed((r.storedBytes ?? NaN) / MB, 0),
      fixed(r.sizeRatio, 3),
      r.note ?? '',
    ];
  });
  const runs = repeats > 1 ? `, median of ${repeats} interleaved rounds (range)` : ', one round';
  return (
    `\n### Base backup and restore of a ${(databaseBytes / MB).toFixed(0)} MB database (pgbench; MB/s of pg_database_size, 10^6 bytes)${runs}\n\n` +
    table(['tool', 'storage', 'backup s', repeats > 1 ? 'backup MB/s (range)' : 'backup MB/s', 'backup CPU s', 'restore s', repeats > 1 ? 'restore MB/s (range)' : 'restore MB/s', 'restore CPU s', 'stored MB', 'stored ÷ database', 'note'], body) +
    '\n\nseconds: median wall clock of the command alone; CPU s: median user + system seconds of the command and the processes it waited for (GNU time; PostgreSQL\'s own work, e.g. the checkpoint or a walsender, is not in it).'
  );
}

/** pgBackRest's faster setting on `storage` by `key` (its median). */
function fasterPgbackrest(rows: readonly BackupRow[], storage: StorageKind, key: 'backupMBps' | 'restoreMBps'): BackupRow | undefined {
  return rows
    .filter((r) => r.role === 'pgbackrest' && r.storage === storage && r[key] !== undefined)
    .reduce<BackupRow | undefined>((best, r) => (!best || r[key]! > best[key]! ? r : best), undefined);
}

function backupTargets(rows: readonly BackupRow[], storages: readonly StorageKind[]): Target[] {
  const targets: Target[] = [];
  for (const storage of storages) {
    const ours = rows.find((r) => r.role === 'ours' && r.storage === storage);
    for (const [what, key] of [['backup', 'backupMBps'], ['restore', 'restoreMBps']] as const) {
      const other = fasterPgbackrest(rows, storage, key);
      const a = ours?.[key];
      const b = other?.[key];
      const ratio = a !== undefined && b !== undefined ? a / b : undefined;
      targets.push({
        description: `${what}, ${storage}: ours ≥ 1.5× pgBackRest's faster setting, same run`,
        met: ratio === undefined ? undefined : ratio >= 1.5,
        detail: ratio === undefined ? `not measured (ours ${fixed(a, 0)} MB/s, pgBackRest ${fixed(b, 0)} MB/s)` : `ours ${fixed(a, 0)} MB/s vs ${other!.tool} ${fixed(b, 0)} MB/s = ${times(ratio)}`,
      });
    }
  }
  return targets;
}

function backupInformation(rows: readonly BackupRow[]): string[] {
  const lines: string[] = [];
  const reference = rows.filter((r) => r.role === 'pg_basebackup' && r.backupMBps !== undefined).reduce<BackupRow | undefined>((best, r) => (!best || r.backupMBps! > best.backupMBps! ? r : best), undefined);
  for (const ours of rows.filter((r) => r.role === 'ours' && r.backupMBps !== undefined)) {
    if (reference) lines.push(`- information, backup, ${ours.storage}: ours ${fixed(ours.backupMBps, 0)} MB/s vs ${reference.tool} ${fixed(reference.backupMBps, 0)} MB/s = ${times(ours.backupMBps! / reference.backupMBps!)}`);
    const floor = rows.find((r) => r.role === 'pg_basebackup' && r.restoreMBps !== undefined);
    const fasterRestore = fasterPgbackrest(rows, ours.storage, 'restoreMBps');
    if (floor && fasterRestore && ours.restoreMBps !== undefined) {
      const asked = 1.5 * fasterRestore.restoreMBps!;
      lines.push(
        `- information, restore floor, ${ours.storage}: a durable copy of the plain data files (${RESTORE_FLOOR.split(' (')[0]}) ran at ${fixed(floor.restoreMBps, 0)} MB/s; ` +
          `ours ${fixed(ours.restoreMBps, 0)} MB/s = ${times(ours.restoreMBps / floor.restoreMBps!)} of it, pgBackRest ${fixed(fasterRestore.restoreMBps, 0)} MB/s = ${times(fasterRestore.restoreMBps! / floor.restoreMBps!)}; ` +
          `the target's 1.5× of pgBackRest is ${fixed(asked, 0)} MB/s = ${times(asked / floor.restoreMBps!)} of the floor`,
      );
    }
    const smaller = rows.filter((r) => r.role === 'pgbackrest' && r.storage === ours.storage && r.sizeRatio !== undefined);
    if (smaller.length) lines.push(`- information, size, ${ours.storage}: ours stores ${fixed(ours.sizeRatio, 3)} of the database; ${smaller.map((r) => `${r.tool} ${fixed(r.sizeRatio, 3)}`).join(', ')}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// 2. Point-in-time recovery

interface PitrSetup {
  /** recovery_target_time, with a numeric zone. */
  readonly targetTime: string;
  /** Rows of the table at the target. */
  readonly rows: number;
  readonly segments: number;
  /** pgBackRest's backup per storage, and its compress-type. */
  readonly pgbr: Partial<Record<StorageKind, { label: string; compress: string }>>;
  readonly ours: Partial<Record<StorageKind, string>>;
  /** The floor's plain backup (pg_basebackup -Fp) and its WAL, uncompressed, in a directory. */
  readonly floor: { readonly backupDir: string; readonly walDir: string };
}

interface PitrTool {
  readonly id: string;
  readonly tool: string;
  readonly storage: StorageKind;
  readonly role: PitrRole;
  readonly note?: string;
}

interface PitrRun {
  readonly fetchSeconds: number;
  readonly fetchCpuSeconds: number | undefined;
  readonly replaySeconds: number;
  readonly stoppedAt: string;
}

/** Writes `segments` × 16 MiB of WAL in md5 rows (the rows of ../shared/bench/archive-bench.sh). */
function generateWal(cluster: PostgresCluster, segments: number): void {
  cluster.sql('create table if not exists pitr(id bigint, a text, b text)');
  const start = cluster.sql('select pg_current_wal_lsn()');
  for (;;) {
    cluster.sql("insert into pitr select g, md5(g::text), repeat(md5((g%1000)::text), 4) from generate_series(1,200000) g");
    const written = Number(cluster.sql(`select (pg_current_wal_lsn() - '${start}'::pg_lsn) / (16*1024*1024)`));
    if (written >= segments) break;
  }
}

/**
 * The PITR backups (untimed), then the WAL, the target time and one commit after it; waits until
 * every archive holds it all.
 */
async function setUpPitr(ctx: Context, backups: readonly BackupRow[], segments: number): Promise<PitrSetup> {
  // The floor's WAL: every segment completed from now on is also copied, uncompressed, into a
  // plain directory (the script is read at each call; the line goes again after the setup).
  const walDir = ctx.scratch.mkdir('pitr-floor-wal');
  const script = fs.readFileSync(ctx.archiveScript, 'utf8');
  replaceFile(ctx.archiveScript, script.replace('set -e\n', `set -e\ncp "$1" "${walDir}/\${1##*/}"\n`));
  progress('PITR setup: the floor\'s plain backup (pg_basebackup -Fp -X none)');
  const backupDir = path.join(ctx.scratch.mkdir('pitr-floor-backup'), 'backup');
  const plain = await asPostgres(path.join(PG_BIN, 'pg_basebackup'), ['-D', backupDir, '-Fp', '-X', 'none', '-c', 'fast'], ctx.pgEnv);
  if (plain.status !== 0) throw new Error(`PITR setup: pg_basebackup failed: ${tail(plain)}`);
  const ours: Partial<Record<StorageKind, string>> = {};
  const pgbr: Partial<Record<StorageKind, { label: string; compress: string }>> = {};
  for (const storage of ctx.storages) {
    progress(`PITR setup: backups, ${storage}`);
    const env = ctx.oursEnv[storage]!;
    const pushed = await asPostgres(ctx.archiver.launcher, ['backup-push', '--json'], { ...env, ...ctx.pgEnv }, undefined, ctx.scratch.dir);
    if (pushed.status !== 0) throw new Error(`PITR setup: backup-push (${storage}) failed: ${tail(pushed)}`);
    ours[storage] = (JSON.parse(pushed.stdout) as { name: string }).name;
    if (ctx.pgbrConfig) {
      // Its setting that restored faster in this run.
      const compress = /\b(lz4|zst)$/.exec(fasterPgbackrest(backups, storage, 'restoreMBps')?.tool ?? '')?.[1] ?? 'lz4';
      const repo = storage === 'local' ? 1 : 2;
      const out = await asPostgres('pgbackrest', [`--config=${ctx.pgbrConfig}`, '--stanza=demo', `--repo=${repo}`, '--type=full', `--compress-type=${compress}`, 'backup'], {});
      if (out.status !== 0) throw new Error(`PITR setup: pgbackrest backup (${storage}) failed: ${tail(out)}`);
      pgbr[storage] = { label: await latestPgbackrestBackup([`--config=${ctx.pgbrConfig}`, '--stanza=demo', `--repo=${repo}`, '--output=json', 'info']), compress };
    }
  }
  progress(`PITR setup: writing ${segments} segments of WAL`);
  const { source } = ctx;
  generateWal(source, segments);
  await sleep(1100);
  const rows = Number(source.sql('select count(*) from pitr'));
  const targetTime = `${source.sql("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")}+00:00`;
  await sleep(1100);
  // The commit after the target, which recovery stops before.
  source.sql("insert into pitr select g, 'after', 'the target' from generate_series(1,1000) g");
  source.sql('select pg_switch_wal()');
  await source.waitForArchiving(1_800_000, async () => ctx.s3Watch?.revive());
  replaceFile(ctx.archiveScript, script);
  // The 1 GiB of WAL just written set off a spread checkpoint in the source, which would write
  // through whichever runs come first (always the same tool in round 1: ours, locally; its
  // first-round redo took 8.9-9.1 s against 3.4-5.7 s in later rounds in two full runs). Done now,
  // before anything is timed.
  source.sql('checkpoint');
  await settle();
  progress(`  target ${targetTime}: ${rows} rows`);
  return { targetTime, rows, segments, ours, pgbr, floor: { backupDir, walDir } };
}

/** Replaces a file another process may be reading (written beside it, then renamed over it). */
function replaceFile(file: string, text: string): void {
  const temporary = `${file}.tmp`;
  fs.writeFileSync(temporary, text, { mode: fs.statSync(file).mode });
  fs.renameSync(temporary, file);
}

/**
 * The PITR floor: what any recovery to the same target costs on this machine, with no tool's own
 * work in it — the plain backup copied durably into place (the restore floor of part 1), and
 * PostgreSQL replaying the same WAL read by `cp` from a directory of uncompressed segments
 * (restore_command's floor in bench/restore.ts).
 */
const PITR_FLOOR = 'floor: cp -a + sync -f of a plain backup; restore_command cp from uncompressed WAL';

/** "recovery stopping before commit of transaction 1234, time ...": where recovery ended. */
function stoppedAt(log: string): string | undefined {
  return /recovery stopping before commit of transaction (\d+)/.exec(log)?.[1];
}

/**
 * Where the server's own time went, from its log: the redo (PostgreSQL 15 logs "redo done at ...
 * elapsed: N s") and the end-of-recovery checkpoint that recovery_target_action = 'promote'
 * waits for before it accepts connections ("checkpoint starting: end-of-recovery immediate wait", then
 * "checkpoint complete: wrote N buffers ... total=N s").
 */
function recoveryPhases(log: string): string | undefined {
  const redo = /redo done at .*elapsed: ([\d.]+) s/.exec(log)?.[1];
  const start = log.indexOf('checkpoint starting: end-of-recovery');
  const checkpoint = start === -1 ? null : /checkpoint complete: wrote (\d+) buffers[^\n]*?total=([\d.]+) s/.exec(log.slice(start));
  if (!redo && !checkpoint) return undefined;
  return `server: redo ${redo ?? '?'} s, end-of-recovery checkpoint ${checkpoint ? `${checkpoint[2]} s (${checkpoint[1]} buffers)` : 'none logged'}`;
}

const PITR_SETTINGS = { hot_standby: 'off', archive_mode: 'off', archive_command: "''", shared_buffers: '256MB', max_wal_size: '64GB' };

async function measurePitr(ctx: Context, setup: PitrSetup, tool: PitrTool, round: number): Promise<PitrRun> {
  const { scratch, archiver } = ctx;
  const base = scratch.mkdir(`pitr-${tool.id}-r${round}`);
  const dataDir = path.join(base, 'data');
  let cluster: PostgresCluster | undefined;
  let oursEnv: Record<string, string> | undefined;
  try {
    let restore: () => Promise<Timed>;
    let postmasterEnv: Record<string, string> = {};
    const alive = tool.storage === 's3' ? () => ctx.s3Watch?.dead() : undefined;
    if (tool.role === 'floor') {
      fs.mkdirSync(dataDir, { mode: 0o700 });
      execFileSync('chown', ['postgres:postgres', dataDir]);
      restore = async () => {
        const time = await timed('sh', ['-c', 'cp -a "$1"/. "$2"/ && sync -f "$2"', 'sh', setup.floor.backupDir, dataDir], {});
        // What backup-fetch --recovery writes, untimed: a file of four lines.
        fs.appendFileSync(
          path.join(dataDir, 'postgresql.auto.conf'),
          `restore_command = 'cp ${setup.floor.walDir}/%f "%p"'\nrecovery_target_time = '${setup.targetTime}'\nrecovery_target_action = 'promote'\n`,
        );
        fs.writeFileSync(path.join(dataDir, 'recovery.signal'), '');
        execFileSync('chown', ['postgres:postgres', path.join(dataDir, 'postgresql.auto.conf'), path.join(dataDir, 'recovery.signal')]);
        return time;
      };
    } else if (tool.role === 'ours') {
      // As in the pod: the sidecar runs before the restore starts.
      oursEnv = archiverEnv({
        repository: tool.storage === 'local' ? `file://${ctx.oursLocalRepo}` : `s3://${BUCKET}/${OURS_S3_PREFIX}`,
        s3: tool.storage === 's3' ? ctx.s3 : undefined,
        caFile: ctx.caFile,
        stateDir: scratch.mkdir(`pitr-${tool.id}-r${round}-sidecar`),
      });
      postmasterEnv = await startSidecar(archiver, oursEnv);
      const env = oursEnv;
      restore = () => timed(archiver.launcher, ['backup-fetch', 'LATEST', dataDir, '--recovery', '--target-time', setup.targetTime], env, alive, scratch.dir);
    } else {
      fs.mkdirSync(dataDir, { mode: 0o700 });
      execFileSync('chown', ['postgres:postgres', dataDir]);
      // The restored server's own configuration (pg1-path, spool): archive-get runs there.
      const repo = tool.storage === 'local' ? [`repo1-path=${ctx.pgbrPosixRepo}`] : pgbackrestS3Options(ctx.s3!, BUCKET, PGBR_S3_PATH);
      const config = pgbackrestConfig(scratch.mkdir(`pitr-${tool.id}-r${round}-pgbr`), [...repo, 'archive-async=y', 'process-max=2'], { dataDir, port: ctx.source.port, socketDir: base });
      const label = setup.pgbr[tool.storage]!.label;
      restore = () => timed('pgbackrest', [`--config=${config}`, '--stanza=demo', `--set=${label}`, '--type=time', `--target=${setup.targetTime}`, '--target-action=promote', 'restore'], {}, alive);
    }
    await settle();
    const restored = await restore();
    const { out } = restored;
    const fetchSeconds = restored.seconds;
    if (out.status !== 0) throw new Error(`restore exit ${out.status}: ${tail(out)}`);
    if (tool.role === 'ours' && out.stdout.trim() !== setup.ours[tool.storage]) throw new Error(`backup-fetch chose ${out.stdout.trim()}, not the PITR backup ${setup.ours[tool.storage]}`);
    // Untimed: the port and socket of this run (the restored postgresql.conf is the source's).
    cluster = await PostgresCluster.create({ inPlaceDataDirectory: dataDir, env: postmasterEnv, settings: PITR_SETTINGS });
    const replayStart = process.hrtime.bigint();
    cluster.start(false);
    await cluster.waitForRecoveryEnd(1_800_000);
    const replaySeconds = seconds(replayStart);
    const log = cluster.log();
    const stopped = stoppedAt(log);
    if (!stopped) throw new Error(`recovery did not stop at the target: ${log.trim().split('\n').slice(-3).join(' / ')}`);
    const rows = Number(cluster.sql('select count(*) from pitr'));
    if (rows !== setup.rows) throw new Error(`the promoted server holds ${rows} rows, not the ${setup.rows} of the target`);
    if (cluster.sql('select pg_is_in_recovery()') !== 'f') throw new Error('the server is still in recovery');
    const phases = recoveryPhases(log);
    if (phases) progress(`  ${phases}`);
    return { fetchSeconds, fetchCpuSeconds: restored.cpuSeconds, replaySeconds, stoppedAt: stopped };
  } finally {
    await cluster?.remove();
    fs.rmSync(base, { recursive: true, force: true });
    if (oursEnv) {
      stopArchiverDaemon(archiver, oursEnv);
      const warnings = daemonLog(oursEnv).trim().split('\n').filter((l) => /level=(warn|error)/.test(l));
      if (warnings.length) progress(`  sidecar warnings: ${warnings.slice(-3).join(' / ').slice(0, 600)}`);
    }
  }
}

async function runPitr(ctx: Context, setup: PitrSetup, repeats: number): Promise<PitrRow[]> {
  const tools: PitrTool[] = [];
  for (const storage of ctx.storages) {
    tools.push({ id: `ours-${storage}`, tool: 'our archiver: backup-fetch --recovery --target-time (prefetch default)', storage, role: 'ours', note: storage === 's3' ? S3_CHECKSUMS_NOTE : undefined });
    const pgbr = setup.pgbr[storage];
    if (pgbr) tools.push({ id: `pgbr-${storage}`, tool: `pgBackRest restore --type=time (process-max 2, ${pgbr.compress} backup), archive-get async 2 processes`, storage, role: 'pgbackrest' });
  }
  tools.push({ id: 'floor', tool: PITR_FLOOR, storage: 'local', role: 'floor' });
  const runs = new Map<string, PitrRun[]>();
  const errors = new Map<string, string[]>();
  // The rotation puts the same tool first after the setup in every run (ours, locally), and that
  // run was ours' slowest in three runs out of three (11.6, 12.4 and 20.8 s; its other runs
  // 5.5-16.4 s; 2026-12-03). One untimed run of the floor takes that place.
  const floor = tools.find((tool) => tool.role === 'floor')!;
  progress(`PITR warm-up (untimed), ${floor.storage}: ${floor.tool}`);
  await measurePitr(ctx, setup, floor, -1).catch((error: Error) => progress(`  warm-up failed: ${error.message.slice(0, 300)}`));
  for (let round = 0; round < repeats; round++) {
    const shift = round % tools.length;
    for (const tool of [...tools.slice(shift), ...tools.slice(0, shift)]) {
      progress(`PITR${repeats > 1 ? ` (round ${round + 1} of ${repeats})` : ''}, ${tool.storage}: ${tool.tool}`);
      try {
        const attempt = () => measurePitr(ctx, setup, tool, round);
        const result = tool.storage === 's3' && ctx.s3Watch ? (await ctx.s3Watch.guarded(attempt)).result : await attempt();
        runs.set(tool.id, [...(runs.get(tool.id) ?? []), result]);
        progress(`  restore ${result.fetchSeconds.toFixed(2)} s + start to promoted ${result.replaySeconds.toFixed(2)} s = ${(result.fetchSeconds + result.replaySeconds).toFixed(2)} s (stopped before transaction ${result.stoppedAt})`);
      } catch (error) {
        const message = (error as Error).message.slice(0, 600);
        errors.set(tool.id, [...(errors.get(tool.id) ?? []), message]);
        progress(`  FAILED: ${message}`);
      }
    }
  }
  const everyStop = new Set([...runs.values()].flat().map((r) => r.stoppedAt));
  return tools.map((tool) => {
    const done = runs.get(tool.id) ?? [];
    const failed = errors.get(tool.id) ?? [];
    const base = { tool: tool.tool, storage: tool.storage, role: tool.role };
    if (done.length === 0) return { ...base, error: failed[0] ?? 'no run', note: tool.note };
    const totals = done.map((r) => r.fetchSeconds + r.replaySeconds);
    return {
      ...base,
      runs: done.length,
      fetchSeconds: median(done.map((r) => r.fetchSeconds)),
      fetchCpuSeconds: done.every((r) => r.fetchCpuSeconds !== undefined) ? median(done.map((r) => r.fetchCpuSeconds!)) : undefined,
      replaySeconds: median(done.map((r) => r.replaySeconds)),
      totalSeconds: median(totals),
      totalRange: range(totals),
      note: [
        tool.note,
        everyStop.size > 1 ? `stopped before transaction ${[...new Set(done.map((r) => r.stoppedAt))].join(', ')} (runs disagree)` : '',
        failed.length ? `${failed.length} run(s) failed: ${failed[0]}` : '',
      ].filter(Boolean).join('; ') || undefined,
    };
  });
}

function pitrTable(rows: readonly PitrRow[], setup: PitrSetup, repeats: number): string {
  const body = rows.map((r) => {
    const storage = r.role === 'floor' ? 'local directory' : r.storage === 'local' ? 'local (file:// / posix)' : 's3rver (TLS)';
    if (r.error !== undefined) return [r.tool, storage, '—', '—', '—', '—', [r.note, r.error].filter(Boolean).join('; ')];
    return [r.tool, storage, fixed(r.fetchSeconds, 2), fixed(r.fetchCpuSeconds, 2), fixed(r.replaySeconds, 2), `${fixed(r.totalSeconds, 2)}${repeats > 1 && r.totalRange ? ` (${fixed(r.totalRange[0], 2)}–${fixed(r.totalRange[1], 2)})` : ''}`, r.note ?? ''];
  });
  const runs = repeats > 1 ? `, median of ${repeats} interleaved rounds (range)` : ', one round';
  return (
    `\n### Point-in-time recovery: restore, then pg_ctl start until promoted, to a target ${setup.segments} segments (${((setup.segments * 16) / 1024).toFixed(2)} GiB) of WAL after the backup (hot_standby=off)${runs}\n\n` +
    table(['tool', 'storage', 'restore s', 'restore CPU s', 'start → promoted s', repeats > 1 ? 'total s (range)' : 'total s', 'note'], body) +
    '\n\nrestore s, start → promoted s: medians of their own; total s: the median of the runs\' sums. Every run is checked to hold exactly the rows of the target (a note says when runs stopped before different transactions).'
  );
}

function pitrTargets(rows: readonly PitrRow[], storages: readonly StorageKind[]): Target[] {
  return storages.map((storage) => {
    const ours = rows.find((r) => r.role === 'ours' && r.storage === storage)?.totalSeconds;
    const pgbr = rows.find((r) => r.role === 'pgbackrest' && r.storage === storage)?.totalSeconds;
    const ratio = ours !== undefined && pgbr !== undefined ? ours / pgbr : undefined;
    return {
      description: `PITR, ${storage}: ours ≤ 0.7× pgBackRest's time, same run`,
      met: ratio === undefined ? undefined : ratio <= 0.7,
      detail: ratio === undefined ? `not measured (ours ${fixed(ours, 2)} s, pgBackRest ${fixed(pgbr, 2)} s)` : `ours ${fixed(ours, 2)} s vs pgBackRest ${fixed(pgbr, 2)} s = ${times(ratio)}`,
    };
  });
}

/** Ours, pgBackRest and the 0.7× target set against the floor of the same run. */
function pitrInformation(rows: readonly PitrRow[], storages: readonly StorageKind[]): string[] {
  const floor = rows.find((r) => r.role === 'floor' && r.totalSeconds !== undefined);
  if (!floor) return [];
  return storages.flatMap((storage) => {
    const ours = rows.find((r) => r.role === 'ours' && r.storage === storage)?.totalSeconds;
    const pgbr = rows.find((r) => r.role === 'pgbackrest' && r.storage === storage)?.totalSeconds;
    if (ours === undefined || pgbr === undefined) return [];
    const asked = 0.7 * pgbr;
    return [
      `- information, PITR floor, ${storage}: the floor took ${fixed(floor.totalSeconds, 2)} s (copy ${fixed(floor.fetchSeconds, 2)} s + replay ${fixed(floor.replaySeconds, 2)} s); ` +
        `ours ${fixed(ours, 2)} s = ${times(ours / floor.totalSeconds!)} of it, pgBackRest ${fixed(pgbr, 2)} s = ${times(pgbr / floor.totalSeconds!)}; ` +
        `the target's 0.7× of pgBackRest is ${fixed(asked, 2)} s = ${times(asked / floor.totalSeconds!)} of the floor`,
    ];
  });
}

// ---------------------------------------------------------------------------------------------
// 3. Delta backups

export interface DeltaRow {
  readonly storage: StorageKind;
  readonly error?: string;
  readonly full?: string;
  readonly delta?: string;
  /** Of the relation files' pages, those the delta stored. */
  readonly changedPages?: number;
  readonly filePages?: number;
  readonly fullStoredBytes?: number;
  readonly deltaStoredBytes?: number;
  readonly deltaBackupSeconds?: number;
  /** Medians and ranges of the interleaved restores. */
  readonly fullRestoreSeconds?: number;
  readonly fullRestoreRange?: readonly [number, number];
  readonly chainRestoreSeconds?: number;
  readonly chainRestoreRange?: readonly [number, number];
}

/** Rows updated so that about `share` of pgbench_accounts' pages change (old pages and where the new versions go). */
function changePages(cluster: PostgresCluster, share: number): void {
  const rows = Number(cluster.sql('select count(*) from pgbench_accounts'));
  // fillfactor 100: each updated row leaves its page (changed) for a page at the end (changed).
  cluster.sql(`update pgbench_accounts set abalance = abalance + 1 where aid <= ${Math.round((rows * share) / 2)}`);
}

async function runDelta(ctx: Context, repeats: number): Promise<DeltaRow[]> {
  const push = async (storage: StorageKind, args: string[]) => {
    const time = await timed(ctx.archiver.launcher, ['backup-push', '--json', ...args], { ...ctx.oursEnv[storage]!, ...ctx.pgEnv }, undefined, ctx.scratch.dir);
    if (time.out.status !== 0) throw new Error(`backup-push ${args.join(' ')} exit ${time.out.status}: ${tail(time.out)}`);
    return { time, summary: JSON.parse(time.out.stdout) as { name: string; storedSize: number; base: string | null; deltaPages?: number; deltaFilePages?: number } };
  };
  const fulls = new Map<StorageKind, { name: string; storedSize: number }>();
  const rows: DeltaRow[] = [];
  for (const storage of ctx.storages) {
    progress(`delta: a full backup, ${storage}`);
    fulls.set(storage, (await push(storage, [])).summary);
  }
  progress('delta: changing ~5% of the pages of pgbench_accounts');
  changePages(ctx.source, 0.05);
  for (const storage of ctx.storages) {
    try {
      await settle();
      progress(`delta: backup-push --delta, ${storage}`);
      const delta = await push(storage, ['--delta']);
      const full = fulls.get(storage)!;
      if (delta.summary.base !== full.name) throw new Error(`backup-push --delta rested on ${delta.summary.base}, not on the full backup just taken (${full.name})`);
      const restores = { full: [] as number[], chain: [] as number[] };
      for (let round = 0; round < repeats; round++) {
        // Interleaved, each round starting with the other one.
        const order = round % 2 === 0 ? (['full', 'chain'] as const) : (['chain', 'full'] as const);
        for (const which of order) {
          const name = which === 'full' ? full.name : delta.summary.name;
          const dir = ctx.scratch.mkdir(`delta-restore-${storage}-${which}-r${round}`);
          try {
            await settle();
            const time = await timed(ctx.archiver.launcher, ['backup-fetch', name, dir], ctx.oursEnv[storage]!, undefined, ctx.scratch.dir);
            if (time.out.status !== 0) throw new Error(`backup-fetch ${name} exit ${time.out.status}: ${tail(time.out)}`);
            const written = bytesUnder(dir);
            if (written < ctx.databaseBytes) throw new Error(`the restore of ${name} wrote ${(written / MB).toFixed(0)} MB, less than the database's ${(ctx.databaseBytes / MB).toFixed(0)} MB`);
            restores[which].push(time.seconds);
            progress(`  restore ${which === 'full' ? 'full' : 'full + delta'} ${time.seconds.toFixed(2)} s`);
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
      rows.push({
        storage,
        full: full.name,
        delta: delta.summary.name,
        changedPages: delta.summary.deltaPages,
        filePages: delta.summary.deltaFilePages,
        fullStoredBytes: full.storedSize,
        deltaStoredBytes: delta.summary.storedSize,
        deltaBackupSeconds: delta.time.seconds,
        fullRestoreSeconds: median(restores.full),
        fullRestoreRange: range(restores.full),
        chainRestoreSeconds: median(restores.chain),
        chainRestoreRange: range(restores.chain),
      });
    } catch (error) {
      const message = (error as Error).message.slice(0, 600);
      progress(`  FAILED: ${message}`);
      rows.push({ storage, error: message });
    }
  }
  return rows;
}

function deltaTable(rows: readonly DeltaRow[], repeats: number): string {
  const secondsWithRange = (value: number | undefined, spread: readonly [number, number] | undefined) => `${fixed(value, 2)}${repeats > 1 && spread ? ` (${fixed(spread[0], 2)}–${fixed(spread[1], 2)})` : ''}`;
  const body = rows.map((r) =>
    r.error !== undefined
      ? [r.storage, '—', '—', '—', '—', '—', '—', '—', r.error]
      : [
          r.storage,
          `${r.changedPages} of ${r.filePages} (${fixed((100 * r.changedPages!) / r.filePages!, 1)}%)`,
          fixed(r.fullStoredBytes! / MB, 1),
          fixed(r.deltaStoredBytes! / MB, 1),
          `${fixed((100 * r.deltaStoredBytes!) / r.fullStoredBytes!, 1)}%`,
          fixed(r.deltaBackupSeconds, 2),
          secondsWithRange(r.fullRestoreSeconds, r.fullRestoreRange),
          secondsWithRange(r.chainRestoreSeconds, r.chainRestoreRange),
          `${fixed(r.chainRestoreSeconds! / r.fullRestoreSeconds!, 2)}×`,
        ],
  );
  const runs = repeats > 1 ? `; restores: median of ${repeats} interleaved rounds (range)` : '; restores: one round';
  return (
    `\n### Delta backup after ~5% of pgbench_accounts' pages changed (ours, zstd)${runs}\n\n` +
    table(['storage', 'pages stored (of the relation files\')', 'full stored MB', 'delta stored MB', 'delta ÷ full', 'delta backup s', 'restore full s', 'restore full + delta s', 'chain ÷ full'], body)
  );
}

function deltaTargets(rows: readonly DeltaRow[]): Target[] {
  return rows.flatMap((r) => {
    const stored = r.error === undefined ? r.deltaStoredBytes! / r.fullStoredBytes! : undefined;
    const chain = r.error === undefined ? r.chainRestoreSeconds! / r.fullRestoreSeconds! : undefined;
    return [
      { description: `delta size, ${r.storage}: ≤ 10% of the full backup's after ~5% of pages changed`, met: stored === undefined ? undefined : stored <= 0.1, detail: stored === undefined ? `not measured: ${r.error}` : `${fixed(100 * stored, 1)}%` },
      {
        description: `delta restore, ${r.storage}: the chain ≤ 1.2× the time of the full backup's restore`,
        met: chain === undefined ? undefined : chain <= 1.2,
        detail: chain === undefined ? `not measured: ${r.error}` : `${fixed(r.chainRestoreSeconds, 2)} s vs ${fixed(r.fullRestoreSeconds, 2)} s = ${times(chain)}`,
      },
    ];
  });
}

// ---------------------------------------------------------------------------------------------

export async function runBackupBenchmark(options: BackupBenchmarkOptions = {}): Promise<BackupBenchmarkResult> {
  const quick = options.quick ?? false;
  const scale = options.scale ?? (quick ? 10 : 70);
  const repeats = options.repeats ?? (quick ? 1 : 3);
  const pitrSegments = options.pitrSegments ?? (quick ? 16 : 64);
  const write = options.write ?? ((text: string) => console.log(text));
  const scratch = new Scratch('bench-backup-');
  let s3: S3Server | undefined;
  let backups: BackupRow[] = [];
  let pitr: PitrRow[] = [];
  let deltas: DeltaRow[] = [];
  const targets: Target[] = [];
  let databaseBytes = NaN;
  let ctx: Context | undefined;
  try {
    const archiver = await prepareArchiver(scratch, { build: options.build });
    if (options.s3 ?? true) s3 = await startS3Server({ tls: true, buckets: [BUCKET] });
    const caFile = s3 ? readableCertificate(s3, scratch) : undefined;
    ctx = await setUp(scratch, archiver, s3, caFile, scale);
    databaseBytes = ctx.databaseBytes;
    if (options.backups ?? true) {
      backups = await runBackups(ctx, repeats);
      write(backupTable(backups, ctx.databaseBytes, repeats));
      targets.push(...backupTargets(backups, ctx.storages));
      write(`\n${[...targets.map((t) => targetLine(t.description, t.met, t.detail)), ...backupInformation(backups)].join('\n')}`);
    }
    // Before the PITR part, whose WAL writes a table as large as the database.
    if (options.delta ?? true) {
      deltas = await runDelta(ctx, repeats);
      write(deltaTable(deltas, repeats));
      const deltaTargetList = deltaTargets(deltas);
      targets.push(...deltaTargetList);
      write(`\n${deltaTargetList.map((t) => targetLine(t.description, t.met, t.detail)).join('\n')}`);
    }
    if ((options.pitr ?? true) && (options.backups ?? true)) {
      const setup = await setUpPitr(ctx, backups, pitrSegments);
      pitr = await runPitr(ctx, setup, repeats);
      write(pitrTable(pitr, setup, repeats));
      const pitrTargetList = pitrTargets(pitr, ctx.storages);
      targets.push(...pitrTargetList);
      write(`\n${[...pitrTargetList.map((t) => targetLine(t.description, t.met, t.detail)), ...pitrInformation(pitr, ctx.storages)].join('\n')}`);
    }
    if (ctx.s3Watch?.restarts) write(`\nNote: s3rver died ${ctx.s3Watch.restarts} time(s) during this run; it was restarted and the runs it broke were repeated.`);
  } finally {
    ctx?.tearDown();
    const left = scratch.leftovers();
    if (left.length) progress(`processes left running (ended): ${killMentioning(scratch.dir).join('; ').slice(0, 600)}`);
    await s3?.stop();
    scratch.cleanupSync();
  }
  return { databaseBytes, backups, pitr, deltas, targets };
}

function parseArgs(argv: readonly string[]): BackupBenchmarkOptions {
  const options: { -readonly [K in keyof BackupBenchmarkOptions]: BackupBenchmarkOptions[K] } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${arg} needs a positive whole number, got ${JSON.stringify(argv[i])}`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--scale') options.scale = value();
    else if (arg === '--repeats') options.repeats = value();
    else if (arg === '--pitr-segments') options.pitrSegments = value();
    else if (arg === '--no-build') options.build = false;
    else if (arg === '--skip-s3') options.s3 = false;
    else if (arg === '--skip-pitr') options.pitr = false;
    else if (arg === '--skip-delta') options.delta = false;
    else if (arg === '--skip-backups') options.backups = false;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}: use --scale N, --quick, --repeats N, --pitr-segments N, --no-build, --skip-s3, --skip-pitr, --skip-delta, --skip-backups`);
  }
  return options;
}

if (require.main === module) {
  runBackupBenchmark(parseArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? error}\n`);
      process.exit(1);
    },
  );
}
