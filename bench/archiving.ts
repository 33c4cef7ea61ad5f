/**
 * WAL archiving benchmark: our archiver against pgBackRest (asynchronous archive-push),
 * barman-cloud-wal-archive, a durable copy and cp, in one run on this machine.
 *
 *   npx tsx bench/archiving.ts [--segments N] [--quick] [--samples N] [--repeats N] [--no-build] [--skip-backlog] [--skip-per-call] [--only s3|local]
 *
 * 1. Backlog catch-up (../shared/bench/archive-bench.sh, pgbackrest.sh): SEGMENTS × 16 MiB of
 *    WAL wait with archiving off, then archive_command is switched on and timed until none is
 *    left ready. Once against one S3-compatible server (s3rver over TLS on 127.0.0.1, shared by
 *    every tool: pgBackRest speaks only TLS), once against the local filesystem. The local floor
 *    is a durable copy, `cp %p DIR/%f && sync DIR/%f DIR` (GNU sync fsyncs the file, then the
 *    directory: once it exits 0 the segment and its name survive a crash, as with our local
 *    backend and pgBackRest's posix repository); plain `cp` is shown too, as a reference only:
 *    it leaves the segment in the page cache and is no archive_command. Our S3 rows run with
 *    ARCHIVER_S3_CHECKSUMS=when_required (s3rver stores the SDK's default aws-chunked uploads
 *    corrupted). Ours runs as the pod runs it (the `archiver` sidecar already up, the calls with
 *    ARCHIVER_DAEMON=external; the targets are judged on this row) and cold (the first call
 *    starts the background archiver). Rounds rotate the order of the tools; writes are flushed
 *    (sync) between runs.
 * 2. Per-call cost when nothing is waiting: one archive_command call (sh -c, as the postgres
 *    user, in the data directory, as PostgreSQL runs it) for a fresh segment that is the only one
 *    ready; for a segment the tool's background process already pushed ahead; and for a segment
 *    already in the archive (a retry).
 *
 * Rates are only comparable within one run: the machine is shared and noisy.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../testkit/ports';
import { PostgresCluster, postgresUser } from '../testkit/postgres';
import { killMentioning, Scratch } from '../testkit/processes';
import { S3Server, startS3Server } from '../testkit/s3-server';
import { archiverEnv, daemonCpuSeconds, daemonLog, PreparedArchiver, prepareArchiver, readableCertificate, S3_CHECKSUMS_NOTE, startSidecar, stopArchiverDaemon } from './lib/archiver';
import { fixed, median, MiB, percentile, SEGMENT_BYTES, table, Target, targetLine, times } from './lib/report';
import { barmanEnv, pgbackrestS3Options as s3Options, S3Watch, writePgbackrestConfig } from './lib/reference-tools';
import { ensureTool, pgenv, progress, run, SHARED_BENCH, shAsPostgres, storedSegments, timeAsPostgres } from './lib/tools';

export interface ArchivingBenchmarkOptions {
  /** WAL segments waiting in the backlog runs.
   * @default 64 (1 GiB), 16 with `quick` */
  readonly segments?: number;
  /** Fewer segments and samples, for development. @default false */
  readonly quick?: boolean;
  /** Timed calls per column of the per-call table.
   * @default 10, 5 with `quick` */
  readonly samples?: number;
  /** Build archiver/dist first (archiver/scripts/build.ts). @default true */
  readonly build?: boolean;
  /** Run the backlog catch-up part. @default true */
  readonly backlog?: boolean;
  /** Run the per-call part. @default true */
  readonly perCall?: boolean;
  /** The backlog's storages. @default ['s3', 'local'] */
  readonly storages?: readonly StorageKind[];
  /** Backlog runs per tool, in interleaved rounds; the table shows the median run and the range.
   * @default 1 */
  readonly repeats?: number;
  /** Where the tables go. @default console.log */
  readonly write?: (text: string) => void;
}

export type StorageKind = 's3' | 'local';

/** What a backlog row is, for the targets: ours (the row they are judged on), a reference tool, or information. */
export type BacklogRole = 'ours' | 'ours-cold' | 'pgbackrest' | 'barman' | 'durable-copy' | 'cp';

export interface BacklogRow {
  readonly storage: StorageKind;
  readonly tool: string;
  readonly role: BacklogRole;
  /** The row the targets are judged on (role 'ours'). */
  readonly ours: boolean;
  /** Set when the tool could not run; the other fields are then absent. */
  readonly error?: string;
  readonly segments?: number;
  readonly seconds?: number;
  readonly segmentsPerSecond?: number;
  readonly mibPerSecond?: number;
  /** Bytes stored / bytes of WAL. */
  readonly sizeRatio?: number;
  readonly note?: string;
  /** With repeats: the runs that succeeded, and their slowest and fastest rates. */
  readonly runs?: number;
  readonly minSegmentsPerSecond?: number;
  readonly maxSegmentsPerSecond?: number;
}

/** The median run of a tool (by time), with the range of the successful ones; the first error when none succeeded. */
function combineRuns(runs: readonly BacklogRow[]): BacklogRow {
  const ok = runs.filter((r) => r.error === undefined).sort((a, b) => a.seconds! - b.seconds!);
  if (ok.length === 0) return runs[0];
  const rates = ok.map((r) => r.segmentsPerSecond!);
  const failures = runs.length - ok.length;
  const middle = ok[Math.floor((ok.length - 1) / 2)];
  return {
    ...middle,
    runs: ok.length,
    minSegmentsPerSecond: Math.min(...rates),
    maxSegmentsPerSecond: Math.max(...rates),
    note: [middle.note, failures ? `${failures} of ${runs.length} runs failed: ${runs.find((r) => r.error)!.error}` : ''].filter(Boolean).join('; ') || undefined,
  };
}

export interface PerCallRow {
  readonly tool: string;
  readonly error?: string;
  /** The first call, nothing running yet (our daemon starts here). */
  readonly firstMs?: number;
  /** Median and 90th percentile of calls for a fresh segment, the only one ready. */
  readonly freshMs?: number;
  readonly freshP90Ms?: number;
  /** Median of calls for a segment the tool's background process already pushed. */
  readonly aheadMs?: number;
  /** Median of calls for a segment already archived (a retry). */
  readonly againMs?: number;
  readonly note?: string;
}

export type { Target };

export interface ArchivingBenchmarkResult {
  readonly backlog: readonly BacklogRow[];
  readonly perCall: readonly PerCallRow[];
  readonly targets: readonly Target[];
}

const BUCKET = 'bench';
const pgbackrestS3Options = (s3: S3Server, repoPath?: string) => s3Options(s3, BUCKET, repoPath);

interface Context {
  readonly scratch: Scratch;
  readonly archiver: PreparedArchiver;
  readonly s3: S3Server;
  readonly caFile: string | undefined;
  readonly s3Watch: S3Watch;
}

// ---------------------------------------------------------------------------------------------
// 1. Backlog catch-up

interface BacklogRun {
  readonly name: string;
  readonly tool: string;
  readonly storage: StorageKind;
  readonly role: BacklogRole;
  /** A missing tool: [command, Debian package]. */
  readonly needs?: readonly [string, string];
  /** pgBackRest [global] options: runs pgbackrest.sh instead of archive-bench.sh. */
  readonly pgbackrest?: readonly string[];
  readonly command?: string;
  readonly env?: Record<string, string>;
  /** Run before archive-bench.sh starts (the sidecar). */
  readonly before?: () => Promise<void>;
  /** Shown beside the result. */
  readonly note?: string;
  /** Segments stored and their bytes, once the run is over. `base` is archive-bench.sh's BASE. */
  readonly stored: (base: string) => { count: number; bytes: number };
  /** After the run (stop daemons). */
  readonly after?: () => void;
  /** Extra text for a failure report. */
  readonly diagnose?: () => string;
  /** Extra text for the note column after a successful run (read before `after`). */
  readonly summary?: () => string;
}

/**
 * `command` as archive-bench.sh's third argument: the script puts it into postgresql.conf with
 * `sed "s|^archive_command=''|archive_command='CMD'|"` inside double quotes, where `&` stands for
 * the matched text (escaped here) and `|`, `'`, `\` and `"` would break the substitution.
 */
function forArchiveBench(command: string): string {
  if (/[|'"\\]/.test(command)) throw new Error(`archive-bench.sh cannot take an archive_command with | ' " or \\: ${command}`);
  return command.replace(/&/g, '\\&');
}

/** One run; on s3, a run during which s3rver died is repeated once after restarting it. */
async function runBacklog(ctx: Context, spec: BacklogRun, segments: number): Promise<BacklogRow> {
  if (spec.needs) {
    const tool = ensureTool(spec.needs[0], spec.needs[1]);
    if (!tool.ok) return { storage: spec.storage, tool: spec.tool, role: spec.role, ours: spec.role === 'ours', error: tool.reason };
  }
  if (spec.storage !== 's3') return runBacklogOnce(ctx, spec, segments);
  const { result, repeated } = await ctx.s3Watch.guarded(() => runBacklogOnce(ctx, spec, segments));
  if (!repeated) return result;
  const note = `s3rver died during a first attempt${(await ctx.s3Watch.revive()) ? ' and again during the second' : ''}`;
  return { ...result, note: [result.note, note].filter(Boolean).join('; ') };
}

async function runBacklogOnce(ctx: Context, spec: BacklogRun, segments: number): Promise<BacklogRow> {
  const row = { storage: spec.storage, tool: spec.tool, role: spec.role, ours: spec.role === 'ours', note: spec.note };
  const base = ctx.scratch.mkdir(`backlog-${spec.name}`);
  // KEEP=1: the cluster directory stays (stopped) for the failure report; `base` goes after the run.
  const env = { ...process.env, BASE: base, PORT: String(await freePort()), KEEP: '1', PGENV: pgenv(spec.env ?? {}) };
  const args = spec.pgbackrest
    ? [path.join(SHARED_BENCH, 'pgbackrest.sh'), spec.name, String(segments), ...spec.pgbackrest]
    : [path.join(SHARED_BENCH, 'archive-bench.sh'), spec.name, String(segments), forArchiveBench(spec.command!)];
  progress(`backlog ${spec.storage}: ${spec.tool} (${segments} segments)`);
  try {
    // The previous run's writes are flushed before this one starts, not during it.
    execFileSync('sync');
    await spec.before?.();
    // Generous (barman-cloud manages ~1 segment/s), but a tool that keeps failing must not hold the run.
    const out = await run('bash', args, { env, timeoutMs: (180 + segments * 6) * 1000, alive: spec.storage === 's3' ? () => ctx.s3Watch.dead() : undefined, forceKill: () => killMentioning(base) });
    const match = /segments=(\d+) seconds=([\d.]+)/.exec(out.stdout);
    if (out.status !== 0 || !match) {
      const extra = spec.diagnose?.() ?? '';
      // What the command itself printed: PostgreSQL logs the archive command's stderr.
      let pgLog = '';
      try {
        pgLog = fs.readFileSync(path.join(base, spec.name, 'pg.log'), 'utf8').split('\n').filter((l) => l && !/^\S+ \S+ UTC \[\d+\] (LOG|DETAIL|WARNING|HINT):/.test(l)).slice(-4).join(' / ');
      } catch {
        // no log
      }
      progress(`  FAILED: ${out.stderr.trim().split('\n').slice(-2).join(' / ')} / ${pgLog}`.slice(0, 2000));
      return { ...row, error: `failed (exit ${out.status}): ${pgLog || (out.stdout + out.stderr).trim().split('\n').slice(-3).join(' / ')}${extra ? ` / ${extra}` : ''}`.slice(0, 600) };
    }
    const count = Number(match[1]);
    const seconds = Number(match[2]);
    const summary = spec.summary?.();
    const result: BacklogRow = {
      ...row,
      note: [row.note, summary].filter(Boolean).join('; ') || undefined,
      segments: count,
      seconds,
      segmentsPerSecond: count / seconds,
      mibPerSecond: (count * SEGMENT_BYTES) / MiB / seconds,
      sizeRatio: (() => {
        const stored = spec.stored(base);
        return stored.count ? stored.bytes / (stored.count * SEGMENT_BYTES) : undefined;
      })(),
    };
    progress(`  ${count} segments in ${seconds.toFixed(2)} s: ${(count / seconds).toFixed(1)} seg/s, size ratio ${result.sizeRatio?.toFixed(3)}${result.note ? ` (${result.note})` : ''}`);
    return result;
  } finally {
    spec.after?.();
    const killed = killMentioning(base);
    if (killed.length) progress(`  left running after the run, ended: ${killed.join('; ')}`);
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/**
 * The durable copy, the floor of an archive_command on local storage: cp, then GNU sync fsyncs
 * the file and then the directory (`sync FILE DIR`: one process, two fsyncs). Once it exits 0 the
 * segment's data and its name are on disk, as after our local backend's put (fsync of the data,
 * then of the directory) and pgBackRest's posix repository. Unlike those it is not atomic (a crash
 * during cp leaves a partial file under the name, which PostgreSQL's retry overwrites): an atomic
 * copy (cp to a temporary name, sync, mv, sync DIR) costs two more processes per segment.
 */
function durableCopyCommand(dir: string): string {
  return `cp %p ${dir}/%f && sync ${dir}/%f ${dir}`;
}

const DURABLE_COPY_TOOL = 'durable copy: cp %p DIR/%f && sync DIR/%f DIR (floor)';
const PLAIN_COPY_TOOL = 'cp %p DIR/%f (not durable: no fsync; reference only)';

/** The runs of one round: fresh repositories (every run's cluster is a new one: another system identifier). */
function backlogRuns(ctx: Context, storage: StorageKind, round: number): BacklogRun[] {
  const { archiver, s3, caFile, scratch } = ctx;
  const runs: BacklogRun[] = [];
  const r = `r${round}`;
  const s3Dir = (prefix: string) => path.join(s3.directory, BUCKET, prefix);
  // Ours twice: as the pod runs it (the sidecar already running when archiving starts, the calls
  // with ARCHIVER_DAEMON=external) and cold (no sidecar: the first call starts the background
  // archiver, as outside Kubernetes). The targets are judged on the first.
  for (const mode of ['sidecar', 'cold'] as const) {
    const id = `ours-${mode}-${storage}-${r}`;
    const oursState = scratch.mkdir(id);
    const oursRepo = storage === 'local' ? scratch.mkdir(`${id}-repo`) : undefined;
    const oursEnv = archiverEnv({
      repository: storage === 'local' ? `file://${oursRepo}` : `s3://${BUCKET}/${id}`,
      s3: storage === 's3' ? s3 : undefined,
      caFile,
      stateDir: oursState,
    });
    runs.push({
      name: `ours-${mode}-${storage}`,
      tool: mode === 'sidecar' ? 'our archiver (zstd, push-ahead 8), sidecar running as in the pod' : 'our archiver, cold: no sidecar, the first call starts it',
      storage,
      role: mode === 'sidecar' ? 'ours' : 'ours-cold',
      note: storage === 's3' ? S3_CHECKSUMS_NOTE : undefined,
      command: archiver.archiveCommand,
      env: mode === 'sidecar' ? { ...oursEnv, ARCHIVER_DAEMON: 'external' } : oursEnv,
      before: mode === 'sidecar' ? async () => void (await startSidecar(archiver, oursEnv)) : undefined,
      stored: () => (oursRepo ? storedSegments(oursRepo) : storedSegments(s3Dir(id), true)),
      after: () => {
        stopArchiverDaemon(archiver, oursEnv);
        fs.rmSync(oursRepo ?? s3Dir(id), { recursive: true, force: true });
      },
      diagnose: () => `daemon log: ${daemonLog(oursEnv).trim().split('\n').slice(-3).join(' / ')}`,
      summary: () => pushSummary(daemonLog(oursEnv), daemonCpuSeconds(oursEnv)),
    });
  }
  for (const compress of ['lz4', 'zst']) {
    const name = `pgbr-${compress}-${storage}`;
    runs.push({
      name,
      tool: `pgBackRest async, 4 processes, ${compress}`,
      storage,
      role: 'pgbackrest',
      needs: ['pgbackrest', 'pgbackrest'],
      pgbackrest: ['archive-async=y', 'process-max=4', `compress-type=${compress}`, ...(storage === 's3' ? pgbackrestS3Options(s3) : [])],
      stored: (base) => {
        const archive = path.join(base, `pgbr-${name}`, 'repo', 'archive');
        return storage === 's3' ? storedSegments(s3Dir(archive), true) : storedSegments(archive);
      },
      // On s3rver the repository path is the scratch directory's (see pgbackrestS3Options).
      after: () => fs.rmSync(s3Dir(ctx.scratch.dir), { recursive: true, force: true }),
    });
  }
  if (storage === 's3') {
    runs.push({
      name: 'barman',
      tool: 'barman-cloud-wal-archive (no compression)',
      storage,
      role: 'barman',
      needs: ['barman-cloud-wal-archive', 'barman-cli-cloud'],
      command: `barman-cloud-wal-archive --endpoint-url ${s3.endpoint} s3://${BUCKET}/barman-${r} demo %p`,
      env: barmanEnv(s3, caFile),
      stored: () => storedSegments(s3Dir(`barman-${r}`), true),
      after: () => fs.rmSync(s3Dir(`barman-${r}`), { recursive: true, force: true }),
    });
  } else {
    const durableDir = scratch.mkdir(`cp-durable-archive-${r}`);
    runs.push({
      name: 'cp-durable',
      tool: DURABLE_COPY_TOOL,
      storage,
      role: 'durable-copy',
      command: durableCopyCommand(durableDir),
      stored: () => storedSegments(durableDir),
      after: () => fs.rmSync(durableDir, { recursive: true, force: true }),
    });
    const cpDir = scratch.mkdir(`cp-archive-${r}`);
    runs.push({
      name: 'cp',
      tool: PLAIN_COPY_TOOL,
      storage,
      role: 'cp',
      command: `cp %p ${cpDir}/%f`,
      stored: () => storedSegments(cpDir),
      after: () => fs.rmSync(cpDir, { recursive: true, force: true }),
    });
  }
  return runs;
}

/**
 * From the daemon's log: how many of PostgreSQL's calls found their segment not yet pushed (the
 * launcher then asks the daemon through bin/archiver-call and waits: `ahead=false`) and how many
 * pushes failed; and the background archiver's CPU time per segment (start-up included).
 */
function pushSummary(log: string, cpuSeconds: number | undefined): string {
  const pushed = log.split('\n').filter((l) => /msg="?(pushed|already archived)/.test(l));
  const requested = pushed.filter((l) => /ahead=false/.test(l)).length;
  const failed = log.split('\n').filter((l) => /push failed/.test(l)).length;
  const cpu = cpuSeconds !== undefined && pushed.length ? `; background archiver ${((cpuSeconds * 1000) / pushed.length).toFixed(0)} ms CPU per segment` : '';
  return `${requested} of ${pushed.length} segments not pushed ahead in time (a call waited)${failed ? `, ${failed} failed pushes` : ''}${cpu}`;
}

function backlogTable(rows: readonly BacklogRow[], storage: StorageKind, segments: number, repeats: number): string {
  const ours = rows.find((r) => r.ours && r.segmentsPerSecond !== undefined);
  const title = storage === 's3' ? 'S3-compatible server (one s3rver over TLS on 127.0.0.1, shared by every tool)' : "local filesystem (pgBackRest: posix repository; ours: file://)";
  const body = rows.map((r) =>
    r.error !== undefined
      ? [r.tool, '—', '—', '—', '—', '—', [r.note, r.error].filter(Boolean).join('; ')]
      : [
          r.tool,
          fixed(r.seconds, 2),
          fixed(r.segmentsPerSecond, 1) + (repeats > 1 && r.minSegmentsPerSecond !== undefined ? ` (${fixed(r.minSegmentsPerSecond, 1)}–${fixed(r.maxSegmentsPerSecond, 1)})` : ''),
          fixed(r.mibPerSecond, 0),
          fixed(r.sizeRatio, 3),
          r.ours ? '1.00× (ours)' : times(ours?.segmentsPerSecond !== undefined && r.segmentsPerSecond ? ours.segmentsPerSecond / r.segmentsPerSecond : undefined),
          r.note ?? '',
        ],
  );
  const runs = repeats > 1 ? `, median of ${repeats} interleaved runs (range)` : '';
  return `\n### WAL archiving, backlog catch-up of ${segments} segments (${(segments * 16) / 1024} GiB)${runs}: ${title}\n\n${table(['tool', 'seconds', repeats > 1 ? 'seg/s (range)' : 'seg/s', 'MiB/s', 'size ratio', 'ours ÷ this (speed)', 'note'], body)}`;
}

/** The fastest row of `role` on `storage` (its median run): pgBackRest's faster setting, say. */
function fastest(rows: readonly BacklogRow[], storage: StorageKind, role: BacklogRole): BacklogRow | undefined {
  return rows
    .filter((r) => r.storage === storage && r.role === role && r.segmentsPerSecond !== undefined)
    .reduce<BacklogRow | undefined>((best, r) => (!best || r.segmentsPerSecond! > best.segmentsPerSecond! ? r : best), undefined);
}

/** `ours 43.2 seg/s vs pgBackRest async, 4 processes, lz4 31.5 seg/s = 1.37×`, and the ratio. */
function compareRates(ours: BacklogRow | undefined, other: BacklogRow | undefined, name: string): { ratio: number | undefined; detail: string } {
  const a = ours?.segmentsPerSecond;
  const b = other?.segmentsPerSecond;
  if (a === undefined || b === undefined) return { ratio: undefined, detail: `not measured (ours ${fixed(a)} seg/s, ${name} ${fixed(b)} seg/s)` };
  return { ratio: a / b, detail: `ours ${fixed(a)} seg/s vs ${name} ${fixed(b)} seg/s = ${times(a / b)}` };
}

/**
 * The targets, judged on the sidecar row of each storage against rows of the same run:
 * ≥ 1.5× pgBackRest's faster setting (local and S3), and on local storage at least the durable
 * copy's rate (we write about a sixth of its bytes).
 */
function backlogTargets(rows: readonly BacklogRow[]): Target[] {
  const targets: Target[] = [];
  for (const storage of ['s3', 'local'] as const) {
    if (!rows.some((r) => r.storage === storage)) continue;
    const ours = fastest(rows, storage, 'ours');
    const fasterPgbackrest = fastest(rows, storage, 'pgbackrest');
    const pgbackrest = compareRates(ours, fasterPgbackrest, fasterPgbackrest ? `pgBackRest's faster setting (${fasterPgbackrest.tool})` : 'pgBackRest');
    targets.push({ description: `archiving, ${storage}: ≥ 1.5× pgBackRest's faster setting, same run`, met: pgbackrest.ratio === undefined ? undefined : pgbackrest.ratio >= 1.5, detail: pgbackrest.detail });
    if (storage === 'local') {
      const copy = compareRates(ours, fastest(rows, storage, 'durable-copy'), 'the durable copy');
      targets.push({ description: 'archiving, local: ≥ the durable copy (cp + sync of the file and its directory)', met: copy.ratio === undefined ? undefined : copy.ratio >= 1, detail: copy.detail });
    }
  }
  return targets;
}

/** Ratios shown for information, not targets: barman-cloud on S3, plain (not durable) cp on local storage. */
function backlogInformation(rows: readonly BacklogRow[]): string[] {
  const lines: string[] = [];
  for (const [storage, role, name] of [['s3', 'barman', 'barman-cloud-wal-archive'], ['local', 'cp', 'cp, not durable']] as const) {
    if (!rows.some((r) => r.storage === storage && r.role === role)) continue;
    lines.push(`- information, archiving, ${storage}: ${compareRates(fastest(rows, storage, 'ours'), fastest(rows, storage, role), name).detail}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// 2. Per-call cost

interface PerCallTool {
  readonly tool: string;
  readonly command: string;
  readonly env: Record<string, string>;
  readonly needs?: readonly [string, string];
  /** The file that shows the tool's background process pushed `name` ahead (none: no push-ahead). */
  readonly aheadMarker?: (name: string) => string;
  readonly after?: () => void;
  /** Talks to s3rver (watched: see S3Watch). */
  readonly s3?: boolean;
  /** Shown beside the figures. */
  readonly note?: string;
}

/** A WAL file name on timeline 1: log `log`, segment `seg` (hex, 8 digits each). */
function walName(log: number, seg: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `00000001${hex(log)}${hex(seg)}`;
}

function substitute(command: string, name: string): string {
  return command.replace(/%p/g, `pg_wal/${name}`).replace(/%f/g, name);
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function measurePerCall(cluster: PostgresCluster, segment: Buffer, tool: PerCallTool, log: number, samples: number): Promise<PerCallRow> {
  if (tool.needs) {
    const available = ensureTool(tool.needs[0], tool.needs[1]);
    if (!available.ok) return { tool: tool.tool, error: available.reason };
  }
  progress(`per call: ${tool.tool}`);
  const { uid, gid } = postgresUser();
  const walDir = path.join(cluster.dataDir, 'pg_wal');
  const status = path.join(walDir, 'archive_status');
  const placed: string[] = [];
  let next = 1;
  /** A new segment in pg_wal, marked ready as PostgreSQL does once it is complete. */
  const place = (): string => {
    const name = walName(log, next++);
    const file = path.join(walDir, name);
    fs.writeFileSync(file, segment);
    fs.chownSync(file, uid, gid);
    placed.push(file);
    const ready = path.join(status, `${name}.ready`);
    fs.writeFileSync(ready, '');
    fs.chownSync(ready, uid, gid);
    return name;
  };
  /** What PostgreSQL does after a successful call. */
  const done = (name: string) => fs.renameSync(path.join(status, `${name}.ready`), path.join(status, `${name}.done`));
  const call = (name: string): number => {
    const result = timeAsPostgres(substitute(tool.command, name), tool.env, cluster.dataDir);
    if (result.status !== 0) throw new Error(`exit ${result.status}: ${result.stderr.trim().split('\n').slice(-3).join(' / ')}`);
    return result.ms;
  };
  try {
    const firstName = place();
    const firstMs = call(firstName);
    done(firstName);
    const fresh: number[] = [];
    const freshNames: string[] = [];
    for (let i = 0; i < samples; i++) {
      await sleep(100); // untimed: let the previous call's background work settle
      // PostgreSQL calls archive_command right after marking the segment ready: so do we (a
      // background process watching archive_status may start on it first, as it would there).
      const name = place();
      fresh.push(call(name));
      done(name);
      freshNames.push(name);
    }
    const again: number[] = [];
    for (const name of freshNames) {
      // A retry: the file is in the archive; PostgreSQL calls again for it (e.g. after a crash).
      fs.renameSync(path.join(status, `${name}.done`), path.join(status, `${name}.ready`));
      again.push(call(name));
      done(name);
    }
    const ahead: number[] = [];
    if (tool.aheadMarker) {
      for (let i = 0; i < samples; i++) {
        const a = place();
        const b = place();
        call(a);
        done(a);
        const marker = tool.aheadMarker(b);
        const deadline = Date.now() + 10_000;
        while (!fs.existsSync(marker) && Date.now() < deadline) await sleep(10);
        if (!fs.existsSync(marker)) throw new Error(`${b} was not pushed ahead within 10 s (no ${marker})`);
        ahead.push(call(b));
        done(b);
      }
    }
    return {
      tool: tool.tool,
      note: tool.note,
      firstMs,
      freshMs: median(fresh),
      freshP90Ms: percentile(fresh, 0.9),
      aheadMs: tool.aheadMarker ? median(ahead) : undefined,
      againMs: median(again),
    };
  } catch (error) {
    return { tool: tool.tool, note: tool.note, error: `failed: ${(error as Error).message}`.slice(0, 500) };
  } finally {
    tool.after?.();
    for (const file of placed) fs.rmSync(file, { force: true });
  }
}

async function runPerCall(ctx: Context, samples: number): Promise<PerCallRow[]> {
  const { scratch, archiver, s3, caFile } = ctx;
  const cluster = await PostgresCluster.create({ settings: { archive_mode: 'on', archive_command: "''", wal_level: 'replica' } });
  const rows: PerCallRow[] = [];
  try {
    cluster.start();
    // pgBackRest stanzas need the running cluster.
    const pgbackrestConfigs: Record<string, string> = {};
    const hasPgbackrest = ensureTool('pgbackrest', 'pgbackrest').ok;
    for (const repo of ['posix', 's3', 'posix-sync'] as const) {
      const dir = scratch.mkdir(`percall-pgbr-${repo}`);
      const repoOptions = repo === 's3' ? pgbackrestS3Options(s3, '/percall-pgbr') : [`repo1-path=${dir}/repo`];
      const mode = repo === 'posix-sync' ? [] : ['archive-async=y', 'process-max=4'];
      const config = writePgbackrestConfig(dir, [...repoOptions, ...mode, 'compress-type=lz4'], { dataDir: cluster.dataDir, port: cluster.port, socketDir: cluster.baseDir });
      if (hasPgbackrest) shAsPostgres(`pgbackrest --config=${config} --stanza=demo stanza-create`);
      pgbackrestConfigs[repo] = config;
    }
    // A few real segments of the benchmark's kind of rows; one full one is the template.
    cluster.sql('create table t(id bigint, a text, b text)');
    cluster.sql("insert into t select g, md5(g::text), repeat(md5((g%1000)::text), 4) from generate_series(1,200000) g");
    cluster.sql('select pg_switch_wal()');
    const ready = cluster.readyFiles().filter((n) => /^[0-9A-F]{24}$/.test(n));
    if (ready.length < 2) throw new Error(`expected full WAL segments, got ${ready.join(', ')}`);
    const segment = fs.readFileSync(path.join(cluster.dataDir, 'pg_wal', ready[ready.length - 2]));
    cluster.stop();
    // Nothing waiting: PostgreSQL would have archived these.
    const status = path.join(cluster.dataDir, 'pg_wal/archive_status');
    for (const f of fs.readdirSync(status)) if (f.endsWith('.ready')) fs.renameSync(path.join(status, f), path.join(status, f.replace(/\.ready$/, '.done')));

    const oursTool = (label: string, storage: StorageKind): PerCallTool => {
      const state = scratch.mkdir(`percall-ours-${storage}`);
      const env = archiverEnv({
        repository: storage === 'local' ? `file://${scratch.mkdir('percall-ours-local-repo')}` : `s3://${BUCKET}/percall-ours`,
        s3: storage === 's3' ? s3 : undefined,
        caFile,
        stateDir: state,
      });
      return { tool: label, s3: storage === 's3', note: storage === 's3' ? S3_CHECKSUMS_NOTE : undefined, command: archiver.archiveCommand, env, aheadMarker: (name) => path.join(env.ARCHIVER_SPOOL, 'pushed', name), after: () => stopArchiverDaemon(archiver, env) };
    };
    const pgbrTool = (label: string, repo: 'posix' | 's3' | 'posix-sync'): PerCallTool => ({
      tool: label,
      s3: repo === 's3',
      command: `pgbackrest --config=${pgbackrestConfigs[repo]} --stanza=demo archive-push %p`,
      env: {},
      needs: ['pgbackrest', 'pgbackrest'],
      aheadMarker: repo === 'posix-sync' ? undefined : (name) => path.join(path.dirname(pgbackrestConfigs[repo]), 'spool/archive/demo/out', `${name}.ok`),
    });
    const cpDir = scratch.mkdir('percall-cp');
    const durableDir = scratch.mkdir('percall-cp-durable');
    const tools: PerCallTool[] = [
      { tool: DURABLE_COPY_TOOL, command: durableCopyCommand(durableDir), env: {} },
      { tool: PLAIN_COPY_TOOL, command: `cp %p ${cpDir}/%f`, env: {} },
      oursTool('our archiver, local', 'local'),
      pgbrTool('pgBackRest async lz4, posix', 'posix'),
      pgbrTool('pgBackRest sync lz4, posix', 'posix-sync'),
      oursTool('our archiver, s3rver', 's3'),
      pgbrTool('pgBackRest async lz4, s3rver', 's3'),
      {
        tool: 'barman-cloud-wal-archive, s3rver',
        command: `barman-cloud-wal-archive --endpoint-url ${s3.endpoint} s3://${BUCKET}/percall-barman demo %p`,
        env: barmanEnv(s3, caFile),
        needs: ['barman-cloud-wal-archive', 'barman-cli-cloud'],
        s3: true,
      },
    ];
    for (const [i, tool] of tools.entries()) {
      // Each attempt measures other segments (another log number).
      const measure = (round: number) => measurePerCall(cluster, segment, tool, 0x40 * (round + 1) + i, samples);
      if (!tool.s3) {
        rows.push(await measure(0));
        continue;
      }
      const { result, repeated } = await ctx.s3Watch.guarded(measure);
      rows.push(repeated ? { ...result, note: [result.note, 's3rver died during a first attempt'].filter(Boolean).join('; ') } : result);
    }
  } finally {
    await cluster.remove();
  }
  return rows;
}

function perCallTable(rows: readonly PerCallRow[], samples: number): string {
  const ms = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(0));
  const body = rows.map((r) =>
    r.error !== undefined
      ? [r.tool, '—', '—', '—', '—', '—', [r.note, r.error].filter(Boolean).join('; ')]
      : [r.tool, ms(r.firstMs), `${ms(r.freshMs)} (${ms(r.freshP90Ms)})`, fixed(r.freshMs ? 1000 / r.freshMs : undefined, 1), r.aheadMs === undefined ? 'n/a' : ms(r.aheadMs), ms(r.againMs), r.note ?? ''],
  );
  return (
    `\n### WAL archiving, cost of one archive_command call when nothing else is waiting (ms, median of ${samples}; sh -c as postgres, as PostgreSQL runs it)\n\n` +
    table(['tool', 'first call (cold)', 'fresh segment: median (p90)', 'seg/s at that rate', 'already pushed ahead', 'already archived (retry)', 'note'], body)
  );
}

// ---------------------------------------------------------------------------------------------

export async function runArchivingBenchmark(options: ArchivingBenchmarkOptions = {}): Promise<ArchivingBenchmarkResult> {
  const quick = options.quick ?? false;
  const segments = options.segments ?? (quick ? 16 : 64);
  const samples = options.samples ?? (quick ? 5 : 10);
  const repeats = options.repeats ?? 1;
  const write = options.write ?? ((text: string) => console.log(text));
  const scratch = new Scratch('bench-archiving-');
  let s3: S3Server | undefined;
  const backlog: BacklogRow[] = [];
  let perCall: PerCallRow[] = [];
  const targets: Target[] = [];
  try {
    const archiver = await prepareArchiver(scratch, { build: options.build });
    s3 = await startS3Server({ tls: true, buckets: [BUCKET] });
    const caFile = readableCertificate(s3, scratch);
    const ctx: Context = { scratch, archiver, s3, caFile, s3Watch: new S3Watch(s3) };
    if (options.backlog ?? true) {
      for (const storage of options.storages ?? (['s3', 'local'] as const)) {
        const byTool = new Map<string, BacklogRow[]>();
        for (let round = 0; round < repeats; round++) {
          if (repeats > 1) progress(`backlog ${storage}: round ${round + 1} of ${repeats}`);
          // Each round starts with another tool, so that no tool always runs first (or after barman).
          const specs = backlogRuns(ctx, storage, round);
          const rotated = [...specs.slice(round % specs.length), ...specs.slice(0, round % specs.length)];
          for (const spec of rotated) {
            const row = await runBacklog(ctx, spec, segments);
            byTool.set(row.tool, [...(byTool.get(row.tool) ?? []), row]);
          }
        }
        const rows = [...byTool.values()].map(combineRuns);
        backlog.push(...rows);
        write(backlogTable(rows, storage, segments, repeats));
      }
      if (ctx.s3Watch.restarts) write(`\nNote: s3rver died ${ctx.s3Watch.restarts} time(s) during the backlog runs; it was restarted and the runs it broke were repeated.`);
      targets.push(...backlogTargets(backlog));
      write(`\n${[...targets.map((t) => targetLine(t.description, t.met, t.detail)), ...backlogInformation(backlog)].join('\n')}`);
    }
    if (options.perCall ?? true) {
      const restartsBefore = ctx.s3Watch.restarts;
      perCall = await runPerCall(ctx, samples);
      write(perCallTable(perCall, samples));
      if (ctx.s3Watch.restarts > restartsBefore) write(`\nNote: s3rver died ${ctx.s3Watch.restarts - restartsBefore} time(s) during the per-call measurements; it was restarted and the measurement repeated.`);
    }
  } finally {
    const left = scratch.leftovers().filter((p) => /archiver\.cjs/.test(p.cmdline));
    if (left.length) progress(`archiver processes left running (killed): ${left.map((p) => p.pid).join(', ')}`);
    await s3?.stop();
    scratch.cleanupSync();
  }
  return { backlog, perCall, targets };
}

function parseArgs(argv: readonly string[]): ArchivingBenchmarkOptions {
  const options: { -readonly [K in keyof ArchivingBenchmarkOptions]: ArchivingBenchmarkOptions[K] } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${arg} needs a positive whole number, got ${JSON.stringify(argv[i])}`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--segments') options.segments = value();
    else if (arg === '--samples') options.samples = value();
    else if (arg === '--repeats') options.repeats = value();
    else if (arg === '--no-build') options.build = false;
    else if (arg === '--skip-backlog') options.backlog = false;
    else if (arg === '--skip-per-call') options.perCall = false;
    else if (arg === '--only') {
      const storage = argv[++i];
      if (storage !== 's3' && storage !== 'local') throw new Error(`--only takes s3 or local, got ${JSON.stringify(storage)}`);
      options.storages = [storage];
    }
    else throw new Error(`unknown argument ${JSON.stringify(arg)}: use --segments N, --quick, --samples N, --repeats N, --no-build, --skip-backlog, --skip-per-call, --only s3|local`);
  }
  return options;
}

if (require.main === module) {
  runArchivingBenchmark(parseArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? error}\n`);
      process.exit(1);
    },
  );
}
