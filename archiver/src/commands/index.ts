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
failure. Downloads the following segments ahead into the spool.`,
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
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}
