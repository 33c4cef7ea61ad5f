/**
 * The archiver's entry point: parses the command line, runs one command from the table
 * (commands/index.ts), and turns its error into an exit code (errors.ts `exitCodeOf`, by the one
 * table in contract/exit-codes.ts) and one log line on stderr — the same logfmt lines as the
 * rest of the archiver and its bash helper, so that PostgreSQL's log reads as one. The only place
 * that calls process.exit.
 */
import { EXIT_CODES } from '../../contract';
import { COMMANDS, findCommand } from './commands';
import { UsageError, exitCodeOf } from './errors';
import { Logger } from './logger';

declare const ARCHIVER_VERSION: string | undefined;
export const VERSION = typeof ARCHIVER_VERSION === 'string' ? ARCHIVER_VERSION : '0.0.0-dev';

const HELP_WORDS = new Set(['--help', '-h', 'help']);
const VERSION_WORDS = new Set(['--version', '-v', '-V', 'version']);

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.synopsis}`.trim().length));
  const lines = COMMANDS.map((c) => `  ${`${c.name} ${c.synopsis}`.trim().padEnd(width)}  ${c.summary}`);
  return `archiver ${VERSION}: PostgreSQL WAL archiving to S3-compatible storage, GCS or a directory

Usage: archiver <command> [arguments]

Commands:
${lines.join('\n')}

Exit codes: 0 done; 1 failed (nothing reported as stored); 2 bad command line or configuration;
74 not found (wal-fetch: the file is not in the archive); 128 wal-fetch in archive recovery could
not read the archive, found it damaged or with a gap: recovery stops rather than ends early.

Configuration comes from the environment: ARCHIVER_REPOSITORY (s3://BUCKET/PATH, gs://BUCKET/PATH,
file:///PATH), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ARCHIVER_S3_ENDPOINT,
GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_PROJECT_ID, ARCHIVER_SPOOL, ARCHIVER_COMPRESSION and more:
see archiver/README.md.

Run 'archiver <command> --help' for one command.
`;
}

export async function main(argv: readonly string[], log: Logger = new Logger()): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || HELP_WORDS.has(name)) {
    process.stdout.write(overview());
    return name === undefined ? EXIT_CODES.usage : EXIT_CODES.ok;
  }
  if (VERSION_WORDS.has(name)) {
    process.stdout.write(`${VERSION}\n`);
    return EXIT_CODES.ok;
  }
  const command = findCommand(name);
  try {
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; run 'archiver --help' for the commands`);
    if (args.some((a) => HELP_WORDS.has(a))) {
      process.stdout.write(`Usage: archiver ${`${command.name} ${command.synopsis}`.trim()}\n\n${command.help}\n`);
      return EXIT_CODES.ok;
    }
    await command.load()(args);
    return EXIT_CODES.ok;
  } catch (error) {
    const code = exitCodeOf(error);
    const e = error instanceof Error ? error : new Error(String(error));
    // "Not found" is a normal answer (a standby asks ahead of the primary): info, not error.
    const notFound = code === EXIT_CODES.notFound;
    log.log(notFound ? 'info' : 'error', notFound ? `not found: ${e.message}` : e.message, { command: name, error: e.name, exit: code });
    return code;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    // Exit now: keep-alive sockets must not hold PostgreSQL's archive_command open.
    process.exit(code);
  });
}
