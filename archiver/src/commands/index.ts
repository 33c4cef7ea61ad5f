/**
 * The command table: every command's name, synopsis, help and loader, in one place. The CLI
 * (cli.ts) builds its help from it and loads only the command it runs: the archiver starts once
 * per WAL segment, and a command's module (with what it imports) costs start-up time. A new
 * command is one entry here and one module beside this one exporting `run`.
 */
import { ARCHIVER_COMMANDS, ARCHIVER_ENV, DEFAULT_GONE_TIMEOUT, GONE_POLL_SECONDS, GONE_TIMEOUT_FLAG, KUBERNETES_SERVICE_ENV, ONLY_WHEN_GONE_FLAG, SERVICE_ACCOUNT_DIR } from '../../../contract';

export type CommandRun = (args: readonly string[]) => Promise<void>;

export interface Command {
  readonly name: string;
  /** The arguments, for the usage line. */
  readonly synopsis: string;
  /** One line for the overview. */
  readonly summary: string;
  /** `archiver <name> --help`. */
  readonly help: string;
  readonly load: () => CommandRun;
}

export const COMMANDS: readonly Command[] = [
  {
    name: ARCHIVER_COMMANDS.walPush,
    synopsis: '<path>',
    summary: "archive one WAL file (archive_command = 'archiver wal-push %p')",
    help: `Archives the WAL file at <path> (relative to the working directory, which for archive_command is
the data directory). Exits 0 only once it is durably stored; a file already archived with the same
contents succeeds; a different file under the same name is refused (exit 1). Also pushes the other
files PostgreSQL marked ready, in parallel, so that later calls return at once.`,
    load: () => require('./wal-push').run,
  },
  {
    name: ARCHIVER_COMMANDS.walFetch,
    synopsis: '<name> <destination>',
    summary: "restore one WAL file (restore_command = 'archiver wal-fetch %f %p')",
    help: `Restores the WAL file <name> from the archive to <destination>, verifying its checksum. Exits 74
when the archive does not have it (PostgreSQL then ends recovery or keeps streaming), 1 on any other
failure. Downloads the following segments ahead into the spool.

In archive recovery (recovery.signal without standby.signal in the data directory) a failure must
not read as the end of the archive, which PostgreSQL answers by promoting with WAL missing: the
archive is retried for ARCHIVER_RECOVERY_DEADLINE_SECONDS (default 60), a damaged object, a gap (a
segment missing while a later one of its timeline is archived) or any other failure exits 128, and
PostgreSQL stops recovery instead; 74 only at the true end of the archive.`,
    load: () => require('./wal-fetch').run,
  },
  {
    name: ARCHIVER_COMMANDS.daemon,
    synopsis: '',
    summary: 'run the background archiver in the foreground (the pod\'s archiver sidecar)',
    help: `Runs the background archiver of the spool in the foreground: it pushes ready WAL ahead of
PostgreSQL's calls, prefetches WAL for recovery and answers the calls. At most one runs per spool;
another exits at once. Outside a pod the first call starts one (ARCHIVER_DAEMON=on).

As the pod's sidecar (ARCHIVER_DAEMON_IDLE_SECONDS=0) with POD_NAME set, it also takes the
database's base backups: a first one once the server at PGHOST accepts connections and the archive
holds none of its timeline (ARCHIVER_BACKUP_AT_READY, default on), one at each tick of
ARCHIVER_BACKUP_SCHEDULE (five-field cron, UTC) followed by retention (ARCHIVER_BACKUP_RETAIN,
ARCHIVER_BACKUP_WINDOW), from the member ARCHIVER_BACKUP_FROM names (primary, default, or
standby), one member at a time (the lease basebackups/.lease).`,
    load: () => require('./daemon').run,
  },
  {
    name: ARCHIVER_COMMANDS.stop,
    synopsis: '',
    summary: 'stop the background archiver of the spool',
    help: `Stops the spool's background archiver after its pushes in flight, waits until it is gone and
says so. Exits 74 when none runs.`,
    load: () => require('./stop').run,
  },
  {
    name: ARCHIVER_COMMANDS.check,
    synopsis: '[--storage]',
    summary: "print the configuration; with --storage, read the archive's identity",
    help: `Prints the configuration read from the environment (credentials masked) as JSON; with --storage,
also reads the archive's identity to prove the storage answers, and exits 74 when the location holds
no archive yet.`,
    load: () => require('./check').run,
  },
  {
    name: ARCHIVER_COMMANDS.install,
    synopsis: '<directory>',
    summary: 'copy the archiver into <directory> (the init container\'s job)',
    help: 'Copies the archiver (launcher, Node runtime, bundle and native modules) into <directory>.',
    load: () => require('./install').run,
  },
  {
    name: ARCHIVER_COMMANDS.backupPush,
    synopsis: '[options]',
    summary: 'take a base backup of the running database (in the archiver sidecar)',
    help: `Options: --spread, --concurrency N, --part-size-mib N, --wal-timeout SECONDS, --delta,
--delta-max-steps N, --json, --no-progress.

Takes a base backup of the server at PGHOST (a Unix socket directory; default /var/run/postgresql)
into the archive, reading its data directory directly between pg_backup_start and pg_backup_stop
(primary or standby). Runs where the data volume is mounted at the server's path: the archiver
sidecar. Parts (--part-size-mib, default 64; a larger file is cut into ranges) are compressed on
worker threads and stored in parallel (--concurrency, default 2); the backup is listed only once every part and the WAL up to its stop position are in the archive
(waits up to --wal-timeout seconds, default 300). One backup per database at a time. Prints the
backup's name (--json: its summary). A progress bar on a terminal, log lines otherwise.
--spread: a spread checkpoint at the start instead of an immediate one.
--delta: store only the pages changed since the newest backup (same database and timeline) began,
and every other file whole; a full backup when there is no such backup or its chain already holds
--delta-max-steps deltas (default 6).`,
    load: () => require('./backups').runBackupPush,
  },
  {
    name: ARCHIVER_COMMANDS.bootstrap,
    synopsis: '<data directory>',
    summary: 'restore an empty data directory from the archive, or say to initdb (pod 0\'s start script)',
    help: `Decides what an empty data directory becomes, from what this database's archive holds, and
prints it: 'restored' (the newest complete backup was restored into it, with recovery settings:
start the server and it replays every archived segment, then promotes), 'initdb' (the archive is
empty: initialise a new database) or 'present' (it already holds a database). Refuses (exit 1,
nothing done) when the archive holds WAL but no complete backup, or when ARCHIVER_BOOTSTRAP=initdb
and it holds a backup. With ARCHIVER_BOOTSTRAP_SOURCE (another database's archive) and an empty own
archive, restores the source to ARCHIVER_BOOTSTRAP_TARGET (latest, immediate, time:<ISO with zone>,
lsn:<X/Y>, xid:<n>, name:<point>) instead. The restore goes to <data directory>.restore first.`,
    load: () => require('./backups').runBootstrap,
  },
  {
    name: ARCHIVER_COMMANDS.backupList,
    synopsis: '[--json]',
    summary: 'list the complete base backups, oldest first',
    help: `Lists the archive's complete base backups, oldest first: name, start and finish time (UTC), start and
stop LSN, timeline, original and stored size, duration, taken on primary or standby. --json: the
same as JSON. An unfinished backup (interrupted, or running now) is not listed.`,
    load: () => require('./backups').runBackupList,
  },
  {
    name: ARCHIVER_COMMANDS.backupFetch,
    synopsis: '<name|LATEST> <directory> [target] [--recovery ...]',
    summary: 'restore a base backup into an empty directory, optionally set up for point-in-time recovery',
    help: `Restores the backup <name> (LATEST: the newest that reaches the target) into <directory>, which must be
empty or absent: parts in parallel (--concurrency, default 2), every file checked against the
manifest, modes restored, backup_label written, everything fsynced (--no-sync: not). A failed
restore removes what it wrote.

Recovery targets (at most one; the backup chosen is the newest that finished before it):
  --target-time T       an ISO 8601 time WITH a zone (2026-11-30T06:00:00Z); zone-less is refused
  --target-lsn L        e.g. 0/3000028
  --target-xid X        a transaction id
  --target-name N       a restore point (pg_create_restore_point); the newest backup is used
  --target-immediate    the end of the backup
  (none)                replay the whole archive
--recovery writes the recovery settings into postgresql.auto.conf and creates recovery.signal:
  --restore-command C   default: this archiver's launcher, '<tree>/bin/archiver wal-fetch %f %p'
  --target-exclusive    stop just before the target (default: just after)
  --target-timeline T   latest (default), current or a number
  --target-action A     promote (default), pause or shutdown
A target before every backup, or inside a backup's own start-stop window with no earlier backup,
is refused (exit 2) with the earliest reachable point.`,
    load: () => require('./backups').runBackupFetch,
  },
  {
    name: ARCHIVER_COMMANDS.delete,
    synopsis: 'retain <N> | before <time|backup> | everything [options]',
    summary: 'delete old backups and the WAL no kept backup needs (a dry run without --confirm)',
    help: `Options: --window <duration>, --confirm, --json; for everything: ${ONLY_WHEN_GONE_FLAG} <namespace>/<statefulset>,
${GONE_TIMEOUT_FLAG} <duration>.

Deletes what the rules no longer keep; without --confirm it only prints what it would delete.
  retain <N>             keep the N newest complete backups (deltas count as backups)
  before <time|backup>   keep the backups finished at or after an ISO 8601 time WITH a zone
                         (2026-11-30T06:00:00Z), or the backup named and the newer ones
  --window <duration>    keep what a recovery to any point of the last <duration> needs (30d, 12h,
                         1d12h; units s m h d w): the newest backup finished before now - duration,
                         and everything newer. With retain or before, the union is kept.
  everything             every object of the archive: WAL, backups, archive.json
The newest complete backup is always kept (except by everything), so is every backup a kept delta
rests on, and every WAL file from the earliest start of the kept backups on, on every timeline, and every .history file. Older WAL goes.
Unfinished backups (no manifest) go when last written over a day ago or started before the newest
complete backup; a newer one may be running and stays. Manifests are deleted first, then the
backups' other objects, then WAL. --json: the plan as JSON.

${ONLY_WHEN_GONE_FLAG} <namespace>/<statefulset> (everything only; the WipeOut Job's guard): before
anything is deleted, asks the Kubernetes API, as the pod's ServiceAccount, for the StatefulSet and
its pod 0. Deletes only when the API server answers "not found" for both; while either exists
(terminating pods too) it asks again every ${GONE_POLL_SECONDS} s for ${GONE_TIMEOUT_FLAG} (default ${DEFAULT_GONE_TIMEOUT}), then refuses
(exit 1, DatabaseStillExistsError). Any other answer (401, 403, 5xx, an unreachable API, a
certificate not signed by the ServiceAccount's CA) refuses at once (exit 1, KubernetesApiError).
Nothing is deleted on a refusal. Reads ${KUBERNETES_SERVICE_ENV.host}, ${KUBERNETES_SERVICE_ENV.port}, and the
token and ca.crt in ${SERVICE_ACCOUNT_DIR} (${ARCHIVER_ENV.serviceAccountDir}).`,
    load: () => require('./retention').runDelete,
  },
  {
    name: ARCHIVER_COMMANDS.walVerify,
    synopsis: '[--json]',
    summary: 'check that the archived WAL is continuous from the oldest backup to the newest segment',
    help: `Checks that every WAL segment from the oldest complete backup's start to the newest archived segment
is in the archive, on every timeline a recovery may follow (timeline switches read from the .history
files), and that every later timeline has its history file. Prints a summary per timeline (first and
last segment, count) and each gap (first .. last missing segment); --json: the same as JSON. Exits 1
when there is a gap, 0 otherwise. With no backup, checks from the oldest archived segment.`,
    load: () => require('./retention').runWalVerify,
  },
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}
