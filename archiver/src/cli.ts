/**
 * The archiver's entry point: parses the command line, runs one command (loaded lazily: the
 * archiver starts once per WAL segment), and maps errors to exit codes. The only place that
 * calls process.exit.
 */
import { EXIT_CODES } from '../../contract';
import { UsageError, exitCodeOf } from './errors';

declare const ARCHIVER_VERSION: string | undefined;
export const VERSION = typeof ARCHIVER_VERSION === 'string' ? ARCHIVER_VERSION : '0.0.0-dev';

const HELP = `archiver ${VERSION}: PostgreSQL WAL archiving to S3-compatible storage, GCS or a directory

Usage: archiver <command> [arguments]

Commands:
  wal-push <path>               archive one WAL file (archive_command = 'archiver wal-push %p')
  wal-fetch <name> <destination>
                                restore one WAL file (restore_command = 'archiver wal-fetch %f %p')
  daemon                        run the background archiver in the foreground
  stop                          stop the background archiver of this configuration
  check [--storage]             print the configuration; with --storage, read the archive's identity
  install <directory>           copy the archiver into <directory> (the init container's job)

Exit codes: 0 done; 1 failed (nothing reported as stored); 2 bad command line or configuration;
74 wal-fetch: the file is not in the archive.

Configuration comes from the environment: ARCHIVER_REPOSITORY (s3://BUCKET/PATH, gs://BUCKET/PATH,
file:///PATH), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ARCHIVER_S3_ENDPOINT,
GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_PROJECT_ID, ARCHIVER_SPOOL, ARCHIVER_COMPRESSION and more:
see archiver/README.md.

Run 'archiver <command> --help' for one command.
`;

const COMMAND_HELP: Record<string, string> = {
  'wal-push': `Usage: archiver wal-push <path>

Archives the WAL file at <path> (relative to the working directory, which for archive_command is
the data directory). Exits 0 only once it is durably stored; a file already archived with the same
contents succeeds; a different file under the same name is refused (exit 1). Also pushes the other
files PostgreSQL marked ready, in parallel, so that later calls return at once.
`,
  'wal-fetch': `Usage: archiver wal-fetch <name> <destination>

Restores the WAL file <name> from the archive to <destination>, verifying its checksum. Exits 74
when the archive does not have it (PostgreSQL then ends recovery or keeps streaming), 1 on any other
failure. Downloads the following segments ahead into the spool.
`,
  daemon: `Usage: archiver daemon

Runs the background archiver in the foreground (normally the first wal-push or wal-fetch starts it).
`,
  stop: `Usage: archiver stop

Stops the background archiver serving this configuration, after its pushes in flight.
`,
  check: `Usage: archiver check [--storage]

Prints the configuration read from the environment (credentials masked); with --storage, also reads
the archive's identity to prove the storage answers.
`,
  install: `Usage: archiver install <directory>

Copies the archiver (launcher, Node runtime, bundle) into <directory>.
`,
};

type Command = (args: readonly string[]) => Promise<void>;

function load(command: string): Command | undefined {
  switch (command) {
    case 'wal-push':
      return require('./commands/wal-push').walPush;
    case 'wal-fetch':
      return require('./commands/wal-fetch').walFetch;
    case 'daemon':
      return require('./commands/daemon').daemon;
    case 'stop':
      return require('./commands/daemon').stop;
    case 'check':
      return require('./commands/check').check;
    case 'install':
      return require('./commands/install').install;
    default:
      return undefined;
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? EXIT_CODES.usage : EXIT_CODES.ok;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return EXIT_CODES.ok;
  }
  if (args.includes('--help') || args.includes('-h')) {
    if (!COMMAND_HELP[command]) {
      process.stderr.write(`archiver: unknown command ${JSON.stringify(command)}; run 'archiver --help'\n`);
      return EXIT_CODES.usage;
    }
    process.stdout.write(COMMAND_HELP[command]);
    return EXIT_CODES.ok;
  }
  const run = load(command);
  try {
    if (!run) throw new UsageError(`unknown command ${JSON.stringify(command)}; run 'archiver --help' for the commands`);
    await run(args);
    return EXIT_CODES.ok;
  } catch (error) {
    const code = exitCodeOf(error);
    const e = error as Error;
    process.stderr.write(`archiver ${command}: ${code === EXIT_CODES.notFound ? 'not found' : e.name}: ${e.message}\n`);
    return code;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    // Exit now: keep-alive sockets must not hold PostgreSQL's archive_command open.
    process.exit(code);
  });
}
