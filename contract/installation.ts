/**
 * Where the archiver lives in the image and in the pod, and the commands the YAML runs. The init
 * container copies the image's tree (ARCHIVER_IMAGE_HOME) into an emptyDir mounted at
 * ARCHIVER_INSTALL_DIR in the PostgreSQL container, where PostgreSQL runs the launcher as
 * archive_command and restore_command; the `archiver` sidecar runs the image's own copy.
 */

/** Where the archiver is installed inside the PostgreSQL container (an emptyDir the init container fills). */
export const ARCHIVER_INSTALL_DIR = '/opt/archiver';

/** The archiver image's own copy, which its `install` command copies into ARCHIVER_INSTALL_DIR. */
export const ARCHIVER_IMAGE_HOME = '/archiver';

/** The files of an archiver tree (the image's, an installation, or archiver/dist), relative to its root. */
export const ARCHIVER_TREE = {
  /** The launcher PostgreSQL runs: a POSIX sh script that answers the fast paths without Node. */
  launcher: 'bin/archiver',
  /** The launcher's bash helper: one request to the background archiver over loopback TCP. */
  helper: 'bin/archiver-call',
  /** The Node runtime. */
  node: 'bin/node',
  /** The CLI bundle. */
  bundle: 'lib/archiver.cjs',
} as const;

/** The archiver's commands that the YAML and PostgreSQL's settings name. */
export const ARCHIVER_COMMANDS = {
  walPush: 'wal-push',
  walFetch: 'wal-fetch',
  daemon: 'daemon',
  stop: 'stop',
  check: 'check',
  install: 'install',
  backupPush: 'backup-push',
  backupList: 'backup-list',
  backupFetch: 'backup-fetch',
  delete: 'delete',
  walVerify: 'wal-verify',
  bootstrap: 'bootstrap',
} as const;

/** The launcher in an archiver tree installed at `installDir`. */
export function archiverLauncher(installDir: string = ARCHIVER_INSTALL_DIR): string {
  return `${installDir}/${ARCHIVER_TREE.launcher}`;
}

/**
 * The V8 setting the background archiver's Node runs with (every way it starts: the pod's
 * sidecar, archiverDaemonCommand; the launcher's `daemon` command; a call starting one). Its own
 * heap is small (~11 MB), but every segment it pushes or restores passes through it as a buffer
 * of megabytes; with V8's default starting limit
 * the collector ran a full mark-compact about once per segment, and the buffers it freed were
 * allocated afresh (page faults and zeroing) for the next. Starting the old generation at 64 MB
 * made them rare: on one archive pushing to s3rver, 41–51 full collections per 48 segments fell
 * to 1–8 and the CPU per segment from 72–85 to 42–52 ms, peak RSS 263–273 → 277–290 MB (a probe,
 * 2026-12-01). It is where the collector starts, not a cap: the heap grows and shrinks as before.
 */
export const DAEMON_NODE_FLAGS = ['--initial-old-space-size=64'] as const;

/** Node and the CLI bundle of the image's own copy: how the image's containers run a command. */
function imageCommand(...args: string[]): string[] {
  return [`${ARCHIVER_IMAGE_HOME}/${ARCHIVER_TREE.node}`, `${ARCHIVER_IMAGE_HOME}/${ARCHIVER_TREE.bundle}`, ...args];
}

/** The command the init container runs to copy the archiver (launcher, Node runtime, bundle) into the shared volume. */
export function archiverInstallCommand(installDir: string = ARCHIVER_INSTALL_DIR): string[] {
  return imageCommand(ARCHIVER_COMMANDS.install, installDir);
}

/** The `archiver` sidecar's command: the background archiver, in the foreground, from the image. */
export function archiverDaemonCommand(): string[] {
  // Node itself, as imageCommand, with the background archiver's V8 settings (DAEMON_NODE_FLAGS).
  return [`${ARCHIVER_IMAGE_HOME}/${ARCHIVER_TREE.node}`, ...DAEMON_NODE_FLAGS, `${ARCHIVER_IMAGE_HOME}/${ARCHIVER_TREE.bundle}`, ARCHIVER_COMMANDS.daemon];
}

/** Any other archiver command run from the image (a Job's, say), e.g. `archiverImageCommand('check', '--storage')`. */
export function archiverImageCommand(command: string, ...args: string[]): string[] {
  return imageCommand(command, ...args);
}

/**
 * `archive_command`. `%p` is the segment's path relative to the data directory, which is the
 * working directory PostgreSQL runs the command in.
 */
export function renderArchiveCommand(installDir: string = ARCHIVER_INSTALL_DIR): string {
  return `${archiverLauncher(installDir)} ${ARCHIVER_COMMANDS.walPush} %p`;
}

/** `restore_command`. `%f` is the file name wanted, `%p` the path to restore it to. */
export function renderRestoreCommand(installDir: string = ARCHIVER_INSTALL_DIR): string {
  return `${archiverLauncher(installDir)} ${ARCHIVER_COMMANDS.walFetch} %f %p`;
}
