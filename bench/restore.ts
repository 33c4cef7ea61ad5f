/**
 * Restore benchmark: PostgreSQL's archive recovery through restore_command, our archiver against
 * cp, pgBackRest archive-get and PostgreSQL's own replay (the floor), in one run on this machine.
 *
 *   npx tsx bench/restore.ts [--segments N] [--quick] [--repeats N] [--prefetch 0,4,8,16] [--no-build] [--skip-s3]
 *
 * Setup (untimed): a cluster archives every segment at once with cp, pgBackRest (posix repository,
 * lz4) and our archiver (a directory, and s3rver over TLS); a base backup is taken before the WAL
 * (SEGMENTS × 16 MiB of the md5 rows archive-bench.sh writes).
 *
 * 1. Recovery (../shared/bench/README.md, "Restore side"): a fresh copy of the base backup with
 *    recovery.signal and hot_standby=off recovers to the end of the archive, timed from `pg_ctl
 *    start` to the log line "database system is ready to accept connections". The floor: the same
 *    with all WAL already in pg_wal and no restore_command. Every run must end its redo at the same
 *    place as the floor ("redo done at"): a restore_command that fails early would look fast.
 *    PostgreSQL calls restore_command serially and replays between calls; prefetch workers
 *    compete with replay for the cores, hence our archiver with several ARCHIVER_PREFETCH values.
 *    The targets are judged on the default (ARCHIVER_PREFETCH unset, always run); the other
 *    values are information. Our S3 rows run with ARCHIVER_S3_CHECKSUMS=when_required (s3rver).
 * 2. restore_command alone: the same segments fetched by serial calls without replay between them
 *    (wal-fetch throughput; prefetch has less time to work ahead than during recovery).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readConfig } from '../archiver/src/config';
import { SPOOL_LAYOUT, spoolOwner } from '../contract';
import { PostgresCluster, postgresUser } from '../testkit/postgres';
import { killMentioning, Scratch } from '../testkit/processes';
import { S3Server, startS3Server } from '../testkit/s3-server';
import { archiverEnv, daemonCpuSeconds, daemonLog, PreparedArchiver, prepareArchiver, readableCertificate, S3_CHECKSUMS_NOTE, startSidecar, stopArchiverDaemon } from './lib/archiver';
import { S3Watch, writePgbackrestConfig } from './lib/reference-tools';
import { fixed, median, MiB, SEGMENT_BYTES, table, Target, targetLine } from './lib/report';
import { ensureTool, processCpuSeconds, progress, shAsPostgres, timeAsPostgres } from './lib/tools';

export interface RestoreBenchmarkOptions {
  /** WAL segments after the base backup.
   * @default 64 (1 GiB), 16 with `quick` */
  readonly segments?: number;
  /** Fewer segments, for development. @default false */
  readonly quick?: boolean;
  /** ARCHIVER_PREFETCH values to run our archiver with (the default, unset, is always added).
   * @default [0, 4, 8, 16] */
  readonly prefetch?: readonly number[];
  /** Recoveries per row, in interleaved rounds; the table shows the median and the range.
   * @default 3, 1 with `quick` */
  readonly repeats?: number;
  /** Also restore from s3rver. @default true */
  readonly s3?: boolean;
  /** Build archiver/dist first (archiver/scripts/build.ts). @default true */
  readonly build?: boolean;
  /** Where the tables go. @default console.log */
  readonly write?: (text: string) => void;
}

export interface RecoveryRow {
  readonly restoreCommand: string;
  /** Our archiver's rows. */
  readonly ours?: { readonly storage: 'local' | 's3'; readonly prefetch: number };
  readonly floor?: boolean;
  readonly error?: string;
  readonly segments?: number;
  readonly seconds?: number;
  readonly segmentsPerSecond?: number;
  readonly mibPerSecond?: number;
  /** This row's rate / the floor's rate. */
  readonly ofFloor?: number;
  /** (seconds - floor seconds) / segments, in ms. */
  readonly msPerCallOverFloor?: number;
  /** Over the repeated runs. */
  readonly minSegmentsPerSecond?: number;
  readonly maxSegmentsPerSecond?: number;
  readonly note?: string;
}

export interface FetchRow {
  readonly restoreCommand: string;
  readonly note?: string;
  readonly error?: string;
  readonly calls?: number;
  readonly seconds?: number;
  readonly segmentsPerSecond?: number;
  readonly mibPerSecond?: number;
  readonly msPerCall?: number;
}

export type { Target };

export interface RestoreBenchmarkResult {
  readonly recovery: readonly RecoveryRow[];
  readonly fetch: readonly FetchRow[];
  readonly targets: readonly Target[];
}

const BUCKET = 'bench';
/** The archiver's own default (ARCHIVER_PREFETCH unset): the row with this value runs with the variable unset. */
const DEFAULT_PREFETCH = readConfig({ ARCHIVER_REPOSITORY: '/nonexistent' }, '/').prefetch;

/** One way of getting WAL back: a restore_command and its environment. */
interface Source {
  readonly label: string;
  readonly ours?: { readonly storage: 'local' | 's3'; readonly prefetch: number };
  /** Shown beside the figures (our S3 rows: the request-checksum setting). */
  readonly note?: string;
  /** Unavailable tool: the reason. */
  readonly unavailable?: string;
  /** Every segment copied into pg_wal before the start, as for the floor. */
  readonly prefill?: boolean;
  /** restore_command for a cluster whose data directory is `dataDir`. */
  readonly restoreCommand: (dataDir: string, port: number, socketDir: string) => string;
  /** Environment of the postmaster (and so of restore_command). */
  readonly env: () => Record<string, string>;
  /** After `start`, before PostgreSQL starts: fills the spool (the hit-path row). */
  readonly prepare?: (env: Record<string, string>) => void;
  /** Before PostgreSQL starts (our sidecar); returns the postmaster's environment. */
  readonly start?: (env: Record<string, string>) => Promise<Record<string, string>>;
  /** After each use (stop daemons). */
  readonly after?: (env: Record<string, string>) => void;
}

interface Archives {
  readonly backup: string;
  /** Segments to replay, in order (from the backup's start segment on). */
  readonly segments: readonly string[];
  /** The cp archive: a directory of plain segments. */
  readonly cpDir: string;
  readonly sources: readonly Source[];
  readonly notes: string[];
  readonly s3: S3Server | undefined;
  readonly s3Watch: S3Watch | undefined;
}

/**
 * CPU seconds spent during one recovery besides PostgreSQL's: our sidecar's and s3rver's (on this
 * 2-core machine both compete with the replay's single process; a real S3 would cost nothing here).
 */
interface HelperCpu {
  readonly sidecar?: number;
  readonly s3rver?: number;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** The WAL insert loop of archive-bench.sh, until `segments` × 16 MiB of WAL are written. */
function generateWal(cluster: PostgresCluster, segments: number): void {
  cluster.sql('create table if not exists t(id bigint, a text, b text)');
  const start = cluster.sql('select pg_current_wal_lsn()');
  for (;;) {
    cluster.sql("insert into t select g, md5(g::text), repeat(md5((g%1000)::text), 4) from generate_series(1,200000) g");
    const written = Number(cluster.sql(`select (pg_current_wal_lsn() - '${start}'::pg_lsn) / (16*1024*1024)`));
    if (written >= segments) break;
  }
  cluster.sql('select pg_switch_wal()');
}

/**
 * Builds the archives: one cluster, archive_command = cp && pgBackRest && ours (local) && ours
 * (s3), a base backup before the WAL.
 */
async function buildArchives(scratch: Scratch, archiver: PreparedArchiver, s3: S3Server | undefined, caFile: string | undefined, segments: number, prefetch: readonly number[]): Promise<Archives> {
  const s3Watch = s3 ? new S3Watch(s3) : undefined;
  const notes: string[] = [];
  const cpDir = scratch.mkdir('cp-archive');
  const hasPgbackrest = ensureTool('pgbackrest', 'pgbackrest');
  const pgbrDir = scratch.mkdir('pgbr');
  const pgbrRepo = path.join(pgbrDir, 'repo');
  const oursLocalRepo = scratch.mkdir('ours-local-repo');
  const oursRepo = (storage: 'local' | 's3') => (storage === 'local' ? `file://${oursLocalRepo}` : `s3://${BUCKET}/ours`);
  const pushEnv = (storage: 'local' | 's3') => archiverEnv({ repository: oursRepo(storage), s3: storage === 's3' ? s3 : undefined, caFile, stateDir: scratch.mkdir(`push-ours-${storage}`) });
  const storages = s3 ? (['local', 's3'] as const) : (['local'] as const);

  const source = await PostgresCluster.create({ settings: { archive_mode: 'on', archive_command: "''", wal_level: 'replica', max_wal_size: '64GB', shared_buffers: '256MB' } });
  scratch.onCleanup(() => source.removeSync());
  source.start();
  // One script, not one long archive_command: PostgreSQL cuts archive_command at 1024 bytes.
  const commands = [`cp "$1" ${cpDir}/"$2"`];
  let pgbrPushConfig: string | undefined;
  if (hasPgbackrest.ok) {
    pgbrPushConfig = writePgbackrestConfig(path.join(pgbrDir, 'push'), [`repo1-path=${pgbrRepo}`, 'compress-type=lz4'], { dataDir: source.dataDir, port: source.port, socketDir: source.baseDir });
    shAsPostgres(`pgbackrest --config=${pgbrPushConfig} --stanza=demo stanza-create`);
    commands.push(`pgbackrest --config=${pgbrPushConfig} --stanza=demo archive-push "$1"`);
  }
  const pushEnvs: Record<string, string>[] = [];
  for (const storage of storages) {
    const env = pushEnv(storage);
    pushEnvs.push(env);
    commands.push(`${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} ${archiver.launcher} wal-push "$1"`);
  }
  const script = path.join(scratch.dir, 'archive-all.sh');
  fs.writeFileSync(script, `#!/bin/sh\n# archive_command = 'sh ${script} %p %f': every archive of the restore benchmark at once\nset -e\n${commands.join('\n')}\n`);
  fs.chmodSync(script, 0o755);
  source.configure({ archive_command: `'sh ${script} %p %f'` });
  source.reload();
  try {
    source.sql('create table t(id bigint, a text, b text)');
    const backup = source.baseBackup();
    const label = fs.readFileSync(path.join(backup, 'backup_label'), 'utf8');
    const startSegment = /START WAL LOCATION: .* \(file ([0-9A-F]{24})\)/.exec(label)?.[1];
    if (!startSegment) throw new Error(`no start segment in backup_label:\n${label}`);
    progress(`restore setup: writing ${segments} segments of WAL, archived by ${commands.length} commands`);
    generateWal(source, segments);
    // Restarting s3rver should it die meanwhile (see S3Watch).
    await source.waitForArchiving(900_000, async () => s3Watch?.revive());
    source.stop();
    const archived = fs.readdirSync(cpDir).filter((n) => /^[0-9A-F]{24}$/.test(n) && n >= startSegment).sort();
    const sources: Source[] = [
      // What archive recovery itself costs over the floor's crash recovery, with a restore_command
      // that costs only its call: PostgreSQL forks for it before every segment, finds nothing,
      // reads the segment from pg_wal, and at the end switches to a new timeline. No
      // restore_command that fetches anything can be faster than this row.
      { label: 'false, every segment already in pg_wal (archive recovery, a call that fetches nothing)', prefill: true, restoreCommand: () => 'false', env: () => ({}) },
      { label: 'cp DIR/%f %p', restoreCommand: () => `cp ${cpDir}/%f %p`, env: () => ({}) },
      {
        label: 'pgBackRest archive-get async, 2 processes, posix lz4',
        unavailable: hasPgbackrest.ok ? undefined : hasPgbackrest.reason,
        restoreCommand: (dataDir, port, socketDir) => {
          // Its own spool and pg1-path per cluster: archive-get reads the cluster's pg_control.
          const config = writePgbackrestConfig(scratch.mkdir(`pgbr-get-${port}-${Date.now()}`), [`repo1-path=${pgbrRepo}`, 'archive-async=y', 'process-max=2'], { dataDir, port, socketDir });
          return `pgbackrest --config=${config} --stanza=demo archive-get %f %p`;
        },
        env: () => ({}),
      },
    ];
    for (const storage of storages) {
      for (const p of prefetch) {
        const byDefault = p === DEFAULT_PREFETCH;
        sources.push({
          label: `our archiver, ${storage === 'local' ? 'local' : 's3rver'}, ${byDefault ? `ARCHIVER_PREFETCH unset (default ${p})` : `ARCHIVER_PREFETCH=${p}`}`,
          ours: { storage, prefetch: p },
          note: storage === 's3' ? S3_CHECKSUMS_NOTE : undefined,
          restoreCommand: () => archiver.restoreCommand,
          // As the pod runs it: the sidecar is up before PostgreSQL starts recovering. The default
          // row leaves ARCHIVER_PREFETCH unset, as a deployment does.
          env: () => archiverEnv({ repository: oursRepo(storage), s3: storage === 's3' ? s3 : undefined, caFile, stateDir: scratch.mkdir(`restore-ours-${storage}-p${p}-${Date.now()}`), prefetch: byDefault ? undefined : p }),
          start: (env) => startSidecar(archiver, env),
          after: (env) => stopArchiverDaemon(archiver, env),
        });
      }
    }
    // Our launcher's call when the prefetch is ahead of every call (dash, then mv from the spool),
    // with the sidecar running but idle: how close our restore_command can come to the `false`
    // row when fetching costs the replay nothing. Information beside the default rows.
    sources.push({
      label: 'our archiver, local, every segment already in the spool (the launcher\'s hit path alone)',
      restoreCommand: () => archiver.restoreCommand,
      env: () => archiverEnv({ repository: oursRepo('local'), stateDir: scratch.mkdir(`restore-ours-hits-${Date.now()}`) }),
      start: (env) => startSidecar(archiver, env),
      prepare: (env) => fillSpool(env, archived, cpDir),
      after: (env) => stopArchiverDaemon(archiver, env),
    });
    return { backup, segments: archived, cpDir, sources, notes, s3, s3Watch };
  } finally {
    for (const env of pushEnvs) stopArchiverDaemon(archiver, env);
  }
}

/** Every segment of `names`, plain from `cpDir`, as the prefetcher leaves it in the spool of `env`. */
function fillSpool(env: Record<string, string>, names: readonly string[], cpDir: string): void {
  const spool = env.ARCHIVER_SPOOL;
  const { uid, gid } = postgresUser();
  const give = (file: string) => fs.chownSync(file, uid, gid);
  fs.mkdirSync(path.join(spool, SPOOL_LAYOUT.prefetch), { recursive: true });
  fs.writeFileSync(path.join(spool, SPOOL_LAYOUT.owner), `${spoolOwner(env.ARCHIVER_REPOSITORY, env.ARCHIVER_S3_ENDPOINT)}\n`);
  fs.writeFileSync(path.join(spool, SPOOL_LAYOUT.boot), `${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n`);
  for (const name of names) fs.copyFileSync(path.join(cpDir, name), path.join(spool, SPOOL_LAYOUT.prefetch, name));
  for (const file of [spool, path.join(spool, SPOOL_LAYOUT.prefetch), path.join(spool, SPOOL_LAYOUT.owner), path.join(spool, SPOOL_LAYOUT.boot), ...names.map((n) => path.join(spool, SPOOL_LAYOUT.prefetch, n))]) give(file);
}

/** Runs `attempt`; when it reads from s3rver, repeated once should the server die during it (S3Watch). */
async function onS3rver<T>(archives: Archives, s3: boolean, attempt: () => Promise<T>): Promise<T> {
  return s3 && archives.s3Watch ? (await archives.s3Watch.guarded(attempt)).result : attempt();
}

/** "redo done at 0/4A000028": where replay ended. */
function redoEnd(log: string): string | undefined {
  return /redo done at ([0-9A-F]+\/[0-9A-F]+)/.exec(log)?.[1];
}

/** s3rver's CPU seconds so far, with its pid (a restart starts another count). */
function s3rverCpu(archives: Archives): { pid: number; seconds: number } | undefined {
  try {
    const pid = archives.s3!.pid;
    const seconds = processCpuSeconds(pid);
    return seconds === undefined ? undefined : { pid, seconds };
  } catch {
    return undefined;
  }
}

async function recover(archives: Archives, source: Source | 'floor'): Promise<{ seconds: number; redoEnd: string | undefined; log: string; cpu: HelperCpu } | { error: string }> {
  const floor = source === 'floor';
  const env = floor ? {} : source.env();
  // The postmaster's environment: with a sidecar, the calls use it and never start their own.
  const pgEnv = !floor && source.start ? await source.start(env) : env;
  if (!floor) source.prepare?.(env);
  const cluster = await PostgresCluster.create({
    fromDataDirectory: archives.backup,
    env: pgEnv,
    settings: { hot_standby: 'off', archive_mode: 'off', archive_command: "''", shared_buffers: '256MB', max_wal_size: '64GB' },
  });
  try {
    const { uid, gid } = postgresUser();
    if (floor || source.prefill) {
      // PostgreSQL's own replay: every segment already in pg_wal, crash recovery from the backup's
      // checkpoint (the floor), or archive recovery reading them there (prefill).
      for (const name of archives.segments) {
        const target = path.join(cluster.dataDir, 'pg_wal', name);
        fs.copyFileSync(path.join(archives.cpDir, name), target);
        fs.chownSync(target, uid, gid);
      }
    }
    if (!floor) {
      cluster.configure({ restore_command: `'${source.restoreCommand(cluster.dataDir, cluster.port, cluster.baseDir)}'` });
      const signal = path.join(cluster.dataDir, 'recovery.signal');
      fs.writeFileSync(signal, '');
      fs.chownSync(signal, uid, gid);
    }
    // Let the copies settle (page cache, writeback) before the clock starts.
    shAsPostgres('sync');
    await sleep(500);
    const ours = !floor && source.ours !== undefined;
    const sidecarBefore = ours ? daemonCpuSeconds(env) : undefined;
    const s3rverBefore = ours && source.ours?.storage === 's3' ? s3rverCpu(archives) : undefined;
    const start = process.hrtime.bigint();
    cluster.start(false);
    await cluster.waitForRecoveryEnd(900_000);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const sidecarAfter = ours ? daemonCpuSeconds(env) : undefined;
    const s3rverAfter = s3rverBefore ? s3rverCpu(archives) : undefined;
    const cpu: HelperCpu = {
      sidecar: sidecarBefore !== undefined && sidecarAfter !== undefined ? sidecarAfter - sidecarBefore : undefined,
      s3rver: s3rverBefore && s3rverAfter && s3rverAfter.pid === s3rverBefore.pid ? s3rverAfter.seconds - s3rverBefore.seconds : undefined,
    };
    const log = cluster.log();
    return { seconds, redoEnd: redoEnd(log), log, cpu };
  } catch (error) {
    return { error: `${(error as Error).message.split('\n').slice(0, 1).join(' ')} / ${cluster.log().trim().split('\n').slice(-3).join(' / ')}`.slice(0, 600) };
  } finally {
    await cluster.remove();
    if (!floor) source.after?.(env);
    if (!floor && source.ours) {
      const log = daemonLog(env);
      if (/level=(error|warn)/.test(log)) progress(`  daemon warnings: ${log.trim().split('\n').filter((l) => /level=(error|warn)/.test(l)).slice(-3).join(' / ').slice(0, 600)}`);
    }
  }
}

/**
 * Every row `repeats` times, in interleaved rounds (floor, then each source, then again), so that
 * the machine's drift touches every row alike; each row shows its median time and the range.
 */
async function runRecoveries(archives: Archives, repeats: number): Promise<RecoveryRow[]> {
  const n = archives.segments.length;
  const rowsOf: (Source | 'floor')[] = ['floor', ...archives.sources.filter((s) => !s.unavailable)];
  const times = new Map<Source | 'floor', number[]>();
  const errors = new Map<Source | 'floor', string>();
  const ends = new Map<Source | 'floor', Set<string>>();
  const cpus = new Map<Source | 'floor', HelperCpu[]>();
  for (let round = 0; round < repeats; round++) {
    for (const source of rowsOf) {
      if (errors.has(source)) continue;
      const label = source === 'floor' ? `the floor (${n} segments in pg_wal, no restore_command)` : source.label;
      progress(`recovery${repeats > 1 ? ` (round ${round + 1} of ${repeats})` : ''}: ${label}`);
      const result = await onS3rver(archives, source !== 'floor' && source.ours?.storage === 's3', () => recover(archives, source));
      if ('error' in result) {
        errors.set(source, result.error);
        progress(`  FAILED: ${result.error}`);
        continue;
      }
      times.set(source, [...(times.get(source) ?? []), result.seconds]);
      cpus.set(source, [...(cpus.get(source) ?? []), result.cpu]);
      ends.set(source, (ends.get(source) ?? new Set()).add(result.redoEnd ?? '(none)'));
      progress(`  ${result.seconds.toFixed(2)} s, ${(n / result.seconds).toFixed(1)} seg/s, redo done at ${result.redoEnd}`);
    }
  }
  const medianOf = (source: Source | 'floor') => median(times.get(source) ?? []);
  const floorSeconds = medianOf('floor');
  const floorEnd = [...(ends.get('floor') ?? [])][0];
  const rows: RecoveryRow[] = [];
  for (const source of ['floor' as const, ...archives.sources]) {
    const label = source === 'floor' ? 'none: all WAL already in pg_wal (PostgreSQL replay, the floor)' : source.label;
    const ours = source === 'floor' ? undefined : source.ours;
    if (source !== 'floor' && source.unavailable) {
      rows.push({ restoreCommand: label, error: source.unavailable });
      continue;
    }
    const error = errors.get(source);
    const samples = times.get(source) ?? [];
    if (samples.length === 0) {
      rows.push({ restoreCommand: label, ours, floor: source === 'floor', error: error ?? 'no run', note: source === 'floor' ? undefined : source.note });
      continue;
    }
    const seconds = median(samples);
    const rate = n / seconds;
    const endsHere = [...(ends.get(source) ?? [])];
    const incomplete = source !== 'floor' && endsHere.some((e) => e !== floorEnd);
    rows.push({
      restoreCommand: label,
      ours,
      floor: source === 'floor',
      segments: n,
      seconds,
      segmentsPerSecond: rate,
      minSegmentsPerSecond: n / Math.max(...samples),
      maxSegmentsPerSecond: n / Math.min(...samples),
      mibPerSecond: (rate * SEGMENT_BYTES) / MiB,
      ofFloor: floorSeconds / seconds,
      msPerCallOverFloor: source === 'floor' ? undefined : ((seconds - floorSeconds) / n) * 1000,
      note: [
        source === 'floor' ? `redo done at ${floorEnd}` : source.note,
        helperCpuNote(cpus.get(source) ?? [], n),
        incomplete ? `INCOMPLETE: redo done at ${endsHere.join(', ')}, the floor at ${floorEnd}` : '',
        error ? `a run failed: ${error}` : '',
      ].filter(Boolean).join('; '),
    });
  }
  return rows;
}

/** "sidecar 31 ms, s3rver 18 ms of CPU per segment (medians)", or nothing when unmeasured. */
function helperCpuNote(samples: readonly HelperCpu[], segments: number): string {
  const perSegment = (key: keyof HelperCpu) => {
    const known = samples.map((s) => s[key]).filter((v): v is number => v !== undefined);
    return known.length ? `${key} ${((median(known) * 1000) / segments).toFixed(0)} ms` : undefined;
  };
  const parts = [perSegment('sidecar'), perSegment('s3rver')].filter(Boolean);
  return parts.length ? `${parts.join(', ')} of CPU per segment (medians)` : '';
}

/** restore_command alone: serial calls for every segment, into pg_wal/RECOVERYXLOG as PostgreSQL does. */
async function fetchLoop(archives: Archives, source: Source): Promise<FetchRow> {
  // A stopped copy of the base backup: pgBackRest reads its pg_control; the files land in its pg_wal.
  const cluster = await PostgresCluster.create({ fromDataDirectory: archives.backup });
  const env = source.env();
  try {
    const callEnv = source.start ? await source.start(env) : env;
    const command = source.restoreCommand(cluster.dataDir, cluster.port, cluster.baseDir);
    const target = path.join(cluster.dataDir, 'pg_wal', 'RECOVERYXLOG');
    let total = 0;
    for (const name of archives.segments) {
      const result = timeAsPostgres(command.replace(/%f/g, name).replace(/%p/g, 'pg_wal/RECOVERYXLOG'), callEnv, cluster.dataDir);
      if (result.status !== 0) throw new Error(`${name}: exit ${result.status}: ${result.stderr.trim().split('\n').slice(-2).join(' / ')}`);
      total += result.ms;
      const size = fs.statSync(target).size;
      if (size !== SEGMENT_BYTES) throw new Error(`${name}: restored ${size} bytes`);
      fs.rmSync(target);
    }
    const seconds = total / 1000;
    const n = archives.segments.length;
    return { restoreCommand: source.label, note: source.note, calls: n, seconds, segmentsPerSecond: n / seconds, mibPerSecond: (n * SEGMENT_BYTES) / MiB / seconds, msPerCall: total / n };
  } catch (error) {
    return { restoreCommand: source.label, note: source.note, error: `failed: ${(error as Error).message}`.slice(0, 500) };
  } finally {
    await cluster.remove();
    source.after?.(env);
  }
}

async function runFetchLoops(archives: Archives): Promise<FetchRow[]> {
  const rows: FetchRow[] = [];
  const picks = archives.sources.filter((s) => !s.prefill && !s.prepare && (!s.ours || s.ours.prefetch === 0 || s.ours.prefetch === DEFAULT_PREFETCH));
  for (const source of picks) {
    if (source.unavailable) {
      rows.push({ restoreCommand: source.label, error: source.unavailable });
      continue;
    }
    progress(`restore_command alone: ${source.label}`);
    rows.push(await onS3rver(archives, source.ours?.storage === 's3', () => fetchLoop(archives, source)));
  }
  return rows;
}

function recoveryTable(rows: readonly RecoveryRow[], n: number, repeats: number): string {
  const range = (r: RecoveryRow) => (repeats > 1 ? ` (${fixed(r.minSegmentsPerSecond, 1)}–${fixed(r.maxSegmentsPerSecond, 1)})` : '');
  const body = rows.map((r) =>
    r.error !== undefined
      ? [r.restoreCommand, '—', '—', '—', '—', '—', [r.note, r.error].filter(Boolean).join('; ')]
      : [r.restoreCommand, fixed(r.seconds, 2), fixed(r.segmentsPerSecond, 1) + range(r), fixed(r.mibPerSecond, 0), r.ofFloor === undefined ? '—' : `${(r.ofFloor * 100).toFixed(0)}%`, r.floor ? '—' : fixed(r.msPerCallOverFloor, 0), r.note ?? ''],
  );
  const runs = repeats > 1 ? `, median of ${repeats} interleaved runs (range)` : '';
  return `\n### Restore: archive recovery of ${n} segments from a base backup (hot_standby=off, fsync=off; pg_ctl start → "ready to accept connections")${runs}\n\n${table(['restore_command', 'seconds', repeats > 1 ? 'seg/s (range)' : 'seg/s', 'MiB/s', 'of floor rate', 'ms per call over the floor', 'note'], body)}`;
}

function fetchTable(rows: readonly FetchRow[], n: number): string {
  const body = rows.map((r) =>
    r.error !== undefined
      ? [r.restoreCommand, '—', '—', '—', '—', [r.note, r.error].filter(Boolean).join('; ')]
      : [r.restoreCommand, fixed(r.seconds, 2), fixed(r.segmentsPerSecond, 1), fixed(r.mibPerSecond, 0), fixed(r.msPerCall, 1), r.note ?? ''],
  );
  return `\n### Restore: restore_command alone, ${n} serial calls (${((n * 16) / 1024).toFixed(2)} GiB) without replay between them (wal-fetch throughput)\n\n${table(['restore_command', 'seconds', 'seg/s', 'MiB/s', 'ms per call', 'note'], body)}`;
}

/**
 * The targets are judged on the default setting (ARCHIVER_PREFETCH unset: DEFAULT_PREFETCH), the
 * one a deployment runs; the other prefetch rows are information.
 */
function restoreTargets(rows: readonly RecoveryRow[]): Target[] {
  const targets: Target[] = [];
  for (const storage of ['local', 's3'] as const) {
    if (rows.every((r) => r.ours?.storage !== storage)) continue;
    const ours = rows.filter((r) => r.ours?.storage === storage && r.ofFloor !== undefined && !r.note?.includes('INCOMPLETE'));
    const byDefault = ours.find((r) => r.ours!.prefetch === DEFAULT_PREFETCH);
    const others = ours.filter((r) => r !== byDefault).map((r) => `${(r.ofFloor! * 100).toFixed(0)}% with ARCHIVER_PREFETCH=${r.ours!.prefetch}`);
    targets.push({
      description: `restore, ${storage}: our recovery with the default prefetch (ARCHIVER_PREFETCH unset = ${DEFAULT_PREFETCH}) ≥ 90% of the floor's rate`,
      met: byDefault === undefined ? undefined : byDefault.ofFloor! >= 0.9,
      detail: `${byDefault ? `${(byDefault.ofFloor! * 100).toFixed(0)}%` : 'not measured (no complete run with the default)'}${others.length ? ` (information: ${others.join(', ')})` : ''}`,
    });
  }
  return targets;
}

export async function runRestoreBenchmark(options: RestoreBenchmarkOptions = {}): Promise<RestoreBenchmarkResult> {
  const quick = options.quick ?? false;
  const segments = options.segments ?? (quick ? 16 : 64);
  // The default is always run: the targets are judged on it.
  const prefetch = [...new Set([...(options.prefetch ?? [0, 4, 8, 16]), DEFAULT_PREFETCH])].sort((a, b) => a - b);
  const repeats = options.repeats ?? (quick ? 1 : 3);
  const write = options.write ?? ((text: string) => console.log(text));
  const scratch = new Scratch('bench-restore-');
  let s3: S3Server | undefined;
  let recovery: RecoveryRow[] = [];
  let fetch: FetchRow[] = [];
  let targets: Target[] = [];
  try {
    const archiver = await prepareArchiver(scratch, { build: options.build });
    if (options.s3 ?? true) s3 = await startS3Server({ tls: true, buckets: [BUCKET] });
    const caFile = s3 ? readableCertificate(s3, scratch) : undefined;
    const archives = await buildArchives(scratch, archiver, s3, caFile, segments, prefetch);
    recovery = await runRecoveries(archives, repeats);
    write(recoveryTable(recovery, archives.segments.length, repeats));
    targets = restoreTargets(recovery);
    write(`\n${targets.map((t) => targetLine(t.description, t.met, t.detail)).join('\n')}`);
    fetch = await runFetchLoops(archives);
    write(fetchTable(fetch, archives.segments.length));
    if (archives.s3Watch?.restarts) archives.notes.push(`s3rver died ${archives.s3Watch.restarts} time(s) during this run; it was restarted and the runs it broke were repeated`);
    for (const note of archives.notes) write(`\nNote: ${note}.`);
  } finally {
    const left = scratch.leftovers().filter((p) => /archiver\.cjs/.test(p.cmdline));
    if (left.length) progress(`archiver processes left running (ended): ${killMentioning(scratch.dir).join('; ')}`);
    await s3?.stop();
    scratch.cleanupSync();
  }
  return { recovery, fetch, targets };
}

function parseArgs(argv: readonly string[]): RestoreBenchmarkOptions {
  const options: { -readonly [K in keyof RestoreBenchmarkOptions]: RestoreBenchmarkOptions[K] } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') options.quick = true;
    else if (arg === '--segments') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`--segments needs a positive whole number, got ${JSON.stringify(argv[i])}`);
      options.segments = v;
    } else if (arg === '--prefetch') {
      const values = (argv[++i] ?? '').split(',').map(Number);
      if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`--prefetch needs whole numbers like 0,4,8,16, got ${JSON.stringify(argv[i])}`);
      options.prefetch = values;
    } else if (arg === '--repeats') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`--repeats needs a positive whole number, got ${JSON.stringify(argv[i])}`);
      options.repeats = v;
    } else if (arg === '--no-build') options.build = false;
    else if (arg === '--skip-s3') options.s3 = false;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}: use --segments N, --quick, --repeats N, --prefetch 0,4,8,16, --no-build, --skip-s3`);
  }
  return options;
}

if (require.main === module) {
  runRestoreBenchmark(parseArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? error}\n`);
      process.exit(1);
    },
  );
}
