/**
 * What the background archiver does for each request: one handler per operation, in one table.
 * A new operation is a line here and a line in contract/protocol.ts.
 */
import * as path from 'node:path';
import { EXIT_CODES } from '../../../contract';
import { WalNotFoundError, exitCodeOf } from '../errors';
import type { Logger } from '../logger';
import { MetricsRecorder, NO_METRICS, errorReason } from '../metrics/recorder';
import type { Prefetcher } from '../prefetcher';
import type { Pusher } from '../pusher';
import { recoveryFailure, restoreWal } from '../recovery';
import type { Request } from './protocol';

/** What the handlers work with: the running background archiver's parts. */
export interface DaemonContext {
  readonly pusher: Pusher;
  readonly prefetcher: Prefetcher;
  /** Archive recovery: how long a fetch retries an archive it cannot read (ARCHIVER_RECOVERY_DEADLINE_SECONDS). */
  readonly recoveryDeadlineSeconds: number;
  readonly log: Logger;
  /** The metrics' recorder. @default NO_METRICS */
  readonly metrics?: MetricsRecorder;
  /** Pushes ahead as soon as PostgreSQL marks a file ready in this pg_wal. */
  watchWalDirectory(walDirectory: string): void;
  /** Stops the background archiver after this answer. */
  stop(): void;
}

type Handler<R extends Request> = (context: DaemonContext, request: R) => Promise<string | undefined>;
type Handlers = { readonly [Op in Request['op']]: Handler<Extract<Request, { op: Op }>> };

/** The answer's detail is JSON, for people and tests; calls need only `ok`. */
export const HANDLERS: Handlers = {
  async push(context, request) {
    context.watchWalDirectory(path.dirname(request.file));
    const result = await context.pusher.push(request.file);
    return JSON.stringify({ status: result.status });
  },
  async fetch(context, request) {
    context.prefetcher.watch();
    // The caller's mode decides: in archive recovery the answer is the file, "not in the archive"
    // (the true end) or a code that stops recovery — what the call itself would answer.
    const options = { mode: request.mode, deadlineMs: context.recoveryDeadlineSeconds * 1000, log: context.log };
    try {
      return JSON.stringify(await restoreWal(context.prefetcher, request.name, request.destination, options));
    } catch (error) {
      const answer = recoveryFailure(request.mode, error);
      const metrics = context.metrics ?? NO_METRICS;
      if (error instanceof WalNotFoundError || exitCodeOf(answer) === EXIT_CODES.notFound) metrics.walFetchNotFound();
      else metrics.walFetchFailed(errorReason(error));
      throw answer;
    }
  },
  async ping(context) {
    return JSON.stringify({ pid: process.pid, pending: context.pusher.pending });
  },
  async stop(context) {
    context.stop();
    return JSON.stringify({ pid: process.pid });
  },
};

/** Runs `request` by the table. */
export function dispatch(context: DaemonContext, request: Request): Promise<string | undefined> {
  const handler = HANDLERS[request.op] as Handler<Request>;
  return handler(context, request);
}
