/**
 * The command table: every command's name, synopsis, help and loader, in one place. The CLI
 * (cli.ts) builds its help from it and loads only the command it runs: the archiver starts once
 * per WAL segment, and a command's module (with what it imports) costs start-up time. A new
 * command is one entry here and one module beside this one exporting `run`.
 */
import { ARCHIVER_COMMANDS } from '../../../contract';

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
another exits at once. Outside a pod the first call starts one (ARCHIVER_DAEMON=on).`,
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
    synopsis: '[--spread] [--concurrency N] [--part-size-mib N] [--wal-timeout SECONDS] [--json] [--no-progress]',
    summary: 'take a base backup of the running database (in the archiver sidecar)',
    help: `Takes a base backup of the server at PGHOST (a Unix socket directory; default /var/run/postgresql)
into the archive, reading its data directory directly between pg_backup_start and pg_backup_stop
(primary or standby). Runs where the data volume is mounted at the server's path: the archiver
sidecar. Parts are compressed on worker threads and stored in parallel (--concurrency, default 2);
the backup is listed only once every part and the WAL up to its stop position are in the archive
(waits up to --wal-timeout seconds, default 300). One backup per database at a time. Prints the
backup's name (--json: its summary). A progress bar on a terminal, log lines otherwise.
--spread: a spread checkpoint at the start instead of an immediate one.`,
    load: () => require('./backups').runBackupPush,
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
    synopsis: '<name|LATEST> <directory> [--target-time T | --target-lsn L | --target-xid X | --target-name N | --target-immediate] [--recovery ...]',
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
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}
