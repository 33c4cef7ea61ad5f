/**
 * The line protocol between a call (the launcher's bash helper, or the Node CLI) and the background
 * archiver, over loopback TCP on the port in the spool's daemon.port file. One request line per
 * connection; fields are separated by tabs (a path may hold spaces):
 *
 *   TOKEN  OP  OWNER  ARGUMENTS...
 *
 *   push   ABSOLUTE-PATH                  archive one WAL file (wal-push)
 *   fetch  NAME  ABSOLUTE-DESTINATION  MODE
 *                                         restore one WAL file (wal-fetch); MODE is how the
 *                                         caller's PostgreSQL runs restore_command (recovery.ts
 *                                         RECOVERY_MODES), which decides the answer to a failure
 *   ping                                  is it alive; the answer's detail is JSON
 *   stop                                  stop after the pushes in flight
 *
 * TOKEN is the secret in daemon.port (readable by the spool's owner only); OWNER the caller's
 * archive location (spool.ts spoolOwner). Answer lines:
 *
 *   wait                      the request is being worked on (every HEARTBEAT_SECONDS)
 *   ok [DETAIL]               done: exit 0
 *   exit CODE NAME: MESSAGE   failed: exit CODE (exit-codes.ts ERROR_EXIT_CODES; for a fetch in
 *                             archive recovery only EXIT_CODES.notFound or stopRecovery)
 *   mismatch                  it serves another archive location: the caller works another way
 *
 * A call that hears nothing for SILENCE_LIMIT_SECONDS takes the background archiver for frozen
 * and works alone: never a false success, never a wait without end.
 */

export const PROTOCOL_SEPARATOR = '\t';

export const REQUEST_OPS = { push: 'push', fetch: 'fetch', ping: 'ping', stop: 'stop' } as const;
export type RequestOp = (typeof REQUEST_OPS)[keyof typeof REQUEST_OPS];

export const ANSWERS = { wait: 'wait', ok: 'ok', exit: 'exit', mismatch: 'mismatch' } as const;

/** How often a background archiver working on a request says so. */
export const HEARTBEAT_SECONDS = 1;

/**
 * How long a call waits without hearing anything before it takes the background archiver for
 * frozen (ARCHIVER_DAEMON_SILENCE_SECONDS overrides it).
 */
export const SILENCE_LIMIT_SECONDS = 30;

/** The longest request line a background archiver accepts: a request is a few paths long. */
export const MAX_REQUEST_LINE = 8192;
