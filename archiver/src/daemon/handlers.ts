/**
 * What the background archiver does for each request: one handler per operation, in one table.
 * A new operation is a line here and a line in contract/protocol.ts.
 */
import * as path from 'node:path';
import type { Prefetcher } from '../prefetcher';
import type { Pusher } from '../pusher';
import type { Request } from './protocol';

/** What the handlers work with: the running background archiver's parts. */
export interface DaemonContext {
  readonly pusher: Pusher;
  readonly prefetcher: Prefetcher;
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
    return JSON.stringify(await context.prefetcher.fetch(request.name, request.destination));
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
