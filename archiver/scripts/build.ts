/**
 * Builds the archiver into archiver/dist, the tree the container image ships (and `install`
 * copies into the PostgreSQL pod):
 *
 *   bin/archiver           the launcher (POSIX sh; answers fast paths without Node)
 *   bin/archiver-call      its bash helper: one request to the background archiver over loopback TCP
 *   bin/node               the Node runtime (here: a symlink to this machine's node; the image
 *                          build replaces it with the binary)
 *   lib/archiver.cjs       the CLI, client, background archiver, local storage: no cloud SDK
 *   lib/errors.cjs         the named errors (src/errors.ts), shared by all bundles so that
 *                          `instanceof ObjectNotFoundError` holds for every backend
 *   lib/worker.cjs   the worker thread that hashes and (de)compresses for the background archiver
 *   lib/storage-s3.cjs     the S3 backend with @aws-sdk/client-s3, loaded only for s3://
 *   lib/storage-gcs.cjs    the GCS backend with @google-cloud/storage, loaded only for gs://
 *   lib/backups.cjs        the base-backup commands with pg and tar-stream, loaded only for them
 *   lib/backup-worker.cjs  a worker thread that stores or restores the parts of a base backup
 *   lib/retention.cjs      delete (retention) and wal-verify, loaded only for them
 *   lib/scheduler.cjs      the sidecar's base-backup scheduler with croner, pg and the backup and
 *                          retention code, loaded only by the background archiver in a pod (and check)
 *   lib/metrics.cjs        the sidecar's metrics with prom-client and pg, loaded only by the background
 *                          archiver in a pod with ARCHIVER_METRICS_PORT set
 *   lib/node_modules/      the native compression modules (zstd-napi, lz4-napi)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, Plugin } from 'esbuild';
import {
  ANSWERS,
  ARCHIVER_COMMANDS,
  DAEMON_NODE_FLAGS,
  ARCHIVER_ENV,
  DATA_DIRECTORY_MARKER,
  EXIT_CODES,
  HEARTBEAT_SECONDS,
  PGDATA_ENV,
  RECOVERY_MODES,
  RECOVERY_SIGNAL_FILES,
  REQUEST_OPS,
  SILENCE_LIMIT_SECONDS,
  SPOOL_DEFAULT_FROM_DATA_DIRECTORY,
  SPOOL_LAYOUT,
} from '../../contract';

/** The archiver package (archiver/). */
const root = path.resolve(__dirname, '..');
const out = path.join(root, 'dist');
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version as string;

const ERRORS = path.join(root, 'src/errors.ts');
const SCHEDULER = path.join(root, 'src/backup/backup-scheduler.ts');
const METRICS = path.join(root, 'src/metrics/metrics.ts');

/**
 * The backends' modules stay out of the main bundle (open.ts requires their own bundles), and
 * every bundle requires the one errors.cjs instead of carrying its own copy of the error
 * classes: they must be the same classes everywhere.
 */
function splitBundles(self: string): Plugin {
  return {
    name: 'split-bundles',
    setup(build) {
      build.onResolve({ filter: /^\.\/(s3|gcs)$/ }, (args) =>
        args.importer.endsWith(path.join('storage', 'open.ts')) ? { path: `./storage-${args.path.slice(2)}.cjs`, external: true } : undefined,
      );
      build.onResolve({ filter: /^\.\/(backups|retention)$/ }, (args) =>
        args.importer.endsWith(path.join('commands', 'index.ts')) ? { path: `${args.path}.cjs`, external: true } : undefined,
      );
      // The background archiver and `check` load the scheduler's bundle only when they need it.
      build.onResolve({ filter: /(^|\/)backup-scheduler$/ }, (args) => {
        const resolved = path.resolve(args.resolveDir, `${args.path}.ts`);
        return resolved === SCHEDULER && self !== SCHEDULER ? { path: './scheduler.cjs', external: true } : undefined;
      });
      // Likewise the metrics' bundle (prom-client); the recorder interface is in every bundle.
      build.onResolve({ filter: /(^|\/)metrics\/metrics$/ }, (args) => {
        const resolved = path.resolve(args.resolveDir, `${args.path}.ts`);
        return resolved === METRICS && self !== METRICS ? { path: './metrics.cjs', external: true } : undefined;
      });
      build.onResolve({ filter: /(^|\/)errors$/ }, (args) => {
        const resolved = path.resolve(args.resolveDir, `${args.path}.ts`);
        return resolved === ERRORS && self !== ERRORS ? { path: './errors.cjs', external: true } : undefined;
      });
    },
  };
}

/**
 * What the launcher scripts (bin/archiver, bin/archiver-call) need from the contract, filled in
 * for their @@NAME@@ placeholders at build time: the scripts run without Node and cannot import
 * it. A placeholder without a value, or a value without a placeholder, fails the build.
 */
export const LAUNCHER_CONSTANTS: Readonly<Record<string, string | number>> = {
  /** The templates refuse to run unfilled: "@@BUILT@@" is not "built" until the build says so. */
  BUILT: 'built',
  ENV_SPOOL: ARCHIVER_ENV.spool,
  ENV_REPOSITORY: ARCHIVER_ENV.repository,
  ENV_S3_ENDPOINT: ARCHIVER_ENV.s3Endpoint,
  ENV_DAEMON: ARCHIVER_ENV.daemon,
  ENV_SILENCE: ARCHIVER_ENV.daemonSilenceSeconds,
  PGDATA_ENV,
  DATA_DIRECTORY_MARKER,
  SPOOL_DEFAULT: SPOOL_DEFAULT_FROM_DATA_DIRECTORY,
  SPOOL_OWNER: SPOOL_LAYOUT.owner,
  SPOOL_BOOT: SPOOL_LAYOUT.boot,
  SPOOL_PUSHED: SPOOL_LAYOUT.pushed,
  SPOOL_PREFETCH: SPOOL_LAYOUT.prefetch,
  SPOOL_PORT: SPOOL_LAYOUT.port,
  CMD_WAL_PUSH: ARCHIVER_COMMANDS.walPush,
  CMD_WAL_FETCH: ARCHIVER_COMMANDS.walFetch,
  CMD_DAEMON: ARCHIVER_COMMANDS.daemon,
  // One flag today; a second would be spliced with a space, which the safety check below refuses.
  DAEMON_NODE_FLAGS: DAEMON_NODE_FLAGS.join(' '),
  OP_PUSH: REQUEST_OPS.push,
  OP_FETCH: REQUEST_OPS.fetch,
  ANSWER_WAIT: ANSWERS.wait,
  ANSWER_OK: ANSWERS.ok,
  ANSWER_EXIT: ANSWERS.exit,
  ANSWER_MISMATCH: ANSWERS.mismatch,
  HEARTBEAT_SECONDS,
  SILENCE_SECONDS: SILENCE_LIMIT_SECONDS,
  EXIT_NOT_FOUND: EXIT_CODES.notFound,
  EXIT_ERROR: EXIT_CODES.error,
  EXIT_STOP_RECOVERY: EXIT_CODES.stopRecovery,
  RECOVERY_SIGNAL: RECOVERY_SIGNAL_FILES.recovery,
  STANDBY_SIGNAL: RECOVERY_SIGNAL_FILES.standby,
  MODE_ARCHIVE_RECOVERY: RECOVERY_MODES.archiveRecovery,
  MODE_STANDBY: RECOVERY_MODES.standby,
  MODE_NONE: RECOVERY_MODES.none,
};

/** `template` with every @@NAME@@ replaced; fails naming what is missing or unused. */
export function fillLauncher(template: string, name: string, constants: Readonly<Record<string, string | number>> = LAUNCHER_CONSTANTS): string {
  const used = new Set<string>();
  const filled = template.replace(/@@([A-Z0-9_]+)@@/g, (_match, key: string) => {
    if (!(key in constants)) throw new Error(`${name}: @@${key}@@ has no value in LAUNCHER_CONSTANTS (archiver/scripts/build.ts)`);
    used.add(key);
    const value = String(constants[key]);
    // Values are spliced into shell code unquoted: only names, numbers and --flag=value may be
    // ('=' after the command word is an argument, not an assignment).
    if (!/^[A-Za-z0-9_./-]+(=[A-Za-z0-9_./-]+)?$/.test(value)) throw new Error(`${name}: the value of @@${key}@@ (${JSON.stringify(value)}) is not safe unquoted in a shell script`);
    return value;
  });
  if (filled.includes('@@')) throw new Error(`${name}: a malformed @@placeholder@@ is left`);
  return filled;
}

const NATIVE = ['zstd-napi', 'lz4-napi', '@antoniomuso/lz4-napi-linux-x64-gnu', '@node-rs/crc32', '@node-rs/crc32-linux-x64-gnu'];
/** Optional modules the bundled libraries require only when asked for (pg's native client). */
const ABSENT_OPTIONAL = ['pg-native'];

/** Builds into a staging directory and swaps it in: concurrent builds (two test runs) never see half a tree. */
export async function buildArchiver(): Promise<void> {
  const staging = `${out}.staging-${process.pid}-${Date.now()}`;
  fs.mkdirSync(path.join(staging, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(staging, 'lib'), { recursive: true });
  try {
    await buildInto(staging);
    const old = `${out}.old-${process.pid}-${Date.now()}`;
    try {
      fs.renameSync(out, old);
    } catch {
      // no earlier build
    }
    fs.renameSync(staging, out);
    fs.rmSync(old, { recursive: true, force: true });
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

async function buildInto(staging: string): Promise<void> {
  const common = {
    bundle: true,
    platform: 'node' as const,
    target: 'node20',
    format: 'cjs' as const,
    external: [...NATIVE, ...ABSENT_OPTIONAL],
    define: { ARCHIVER_VERSION: JSON.stringify(version) },
    logLevel: 'warning' as const,
    legalComments: 'none' as const,
  };
  const bundles: [string, string][] = [
    ['src/cli.ts', 'lib/archiver.cjs'],
    ['src/errors.ts', 'lib/errors.cjs'],
    ['src/worker.ts', 'lib/worker.cjs'],
    ['src/storage/s3.ts', 'lib/storage-s3.cjs'],
    ['src/storage/gcs.ts', 'lib/storage-gcs.cjs'],
    ['src/commands/backups.ts', 'lib/backups.cjs'],
    ['src/commands/retention.ts', 'lib/retention.cjs'],
    ['src/backup/part-worker.ts', 'lib/backup-worker.cjs'],
    ['src/backup/backup-scheduler.ts', 'lib/scheduler.cjs'],
    ['src/metrics/metrics.ts', 'lib/metrics.cjs'],
  ];
  for (const [entry, outfile] of bundles) {
    const entryPoint = path.join(root, entry);
    await build({ ...common, entryPoints: [entryPoint], outfile: path.join(staging, outfile), plugins: [splitBundles(entryPoint)] });
  }

  for (const name of NATIVE) {
    const from = path.join(root, 'node_modules', name);
    if (!fs.existsSync(from)) continue; // an optional platform package of another platform
    const to = path.join(staging, 'lib/node_modules', name);
    fs.cpSync(from, to, {
      recursive: true,
      // Sources, build intermediates and docs are not needed at run time.
      filter: (src) => {
        const relative = path.relative(from, src);
        return relative === '' || (!/(^|\/)(deps|src|obj\.target|node_modules)(\/|$)/.test(relative) && !/\.(md|a|gyp|gypi|ts)$/.test(relative));
      },
    });
  }
  const used = new Set<string>();
  for (const script of ['archiver', 'archiver-call']) {
    const template = fs.readFileSync(path.join(root, 'bin', script), 'utf8');
    for (const match of template.matchAll(/@@([A-Z0-9_]+)@@/g)) used.add(match[1]);
    fs.writeFileSync(path.join(staging, 'bin', script), fillLauncher(template, `bin/${script}`), { mode: 0o755 });
  }
  const unused = Object.keys(LAUNCHER_CONSTANTS).filter((key) => !used.has(key));
  if (unused.length > 0) throw new Error(`LAUNCHER_CONSTANTS has values no launcher script uses: ${unused.join(', ')}`);
  fs.symlinkSync(process.execPath, path.join(staging, 'bin/node'));
}

if (require.main === module) {
  buildArchiver().then(
    () => process.stdout.write(`archiver built into ${path.relative(process.cwd(), out) || '.'}\n`),
    (error) => {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
