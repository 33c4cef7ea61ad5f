/**
 * The sidecar until it can work: its configuration read and its archive open. A sidecar that
 * exited on a bad ARCHIVER_* variable, a missing credential or a storage it cannot open would be
 * restarted with a back-off, and a container that is not running makes the pod NotReady: the
 * primary Service would lose its only endpoint, and writes would stop because archiving has a
 * problem. So the sidecar stays up instead:
 *
 * 1. Try (`attempt`: read the configuration, open the archive).
 * 2. It failed: log one line naming what failed, the variable and the fix (again only when the
 *    failure changes), and until the next success
 *    - answer every WAL call on the spool's address with ArchiveUnavailableError (exit 1; in
 *      archive recovery a fetch stops recovery rather than end it early): PostgreSQL keeps the
 *      segment and retries, nothing is lost;
 *    - serve archiver_configuration_ok 0 on the metrics port (the full metrics need the archive).
 * 3. Try again after a back-off (1 s, doubling, at most 60 s). Once it works, close both: the
 *    working server takes the spool's address and the metrics port over.
 */
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type * as net from 'node:net';
import { ARCHIVER_METRICS, METRICS_PATH } from '../../../contract';
import { ArchiveUnavailableError, ConfigError } from '../errors';
import type { Logger } from '../logger';
import { recoveryFailure } from '../recovery';
import { Spool } from '../spool';
import { DaemonAddress, removeAddress, writeAddress } from './address';
import { listenOnLoopback, oneLineServer } from './one-line-server';
import { failure, formatAnswer, parseRequest } from './protocol';

export interface OpenWhenPossibleOptions {
  readonly log: Logger;
  /** The spool whose address the waiting sidecar answers on. @default - none: calls find no sidecar */
  readonly spool?: string;
  /** Where archiver_configuration_ok 0 is served meanwhile. @default - not served */
  readonly metrics?: { readonly port: number; readonly host?: string };
  /** The first wait between attempts. @default 1000 */
  readonly initialBackoffMs?: number;
  /** The longest wait between attempts. @default 60000 */
  readonly maxBackoffMs?: number;
  /** Gives up waiting (the sidecar is being stopped): resolves undefined. */
  readonly signal?: AbortSignal;
}

/** The fix to suggest for a failure, by what failed. */
function fixFor(error: Error): string {
  if (error instanceof ConfigError) return `set ${error.variable} to a valid value in the archiver's environment (the storage Secret or the ArchivedPostgres props), then restart the pod's archiver container`;
  return 'check the storage settings and credentials (ARCHIVER_REPOSITORY, ARCHIVER_S3_ENDPOINT, the storage Secret); the sidecar retries on its own';
}

/**
 * Runs `attempt` until it succeeds, keeping the sidecar useful meanwhile (see above). Resolves
 * with its result, or undefined when `signal` aborts first. Never rejects.
 */
export async function openWhenPossible<T>(what: string, attempt: () => Promise<T>, options: OpenWhenPossibleOptions): Promise<T | undefined> {
  const { log } = options;
  let waiting: WaitingSidecar | undefined;
  let lastMessage: string | undefined;
  let backoff = options.initialBackoffMs ?? 1000;
  const maxBackoff = options.maxBackoffMs ?? 60_000;
  try {
    for (let attempts = 1; ; attempts++) {
      if (options.signal?.aborted) return undefined;
      try {
        const result = await attempt();
        if (attempts > 1) log.info(`${what}: works now; the sidecar starts its work`, { attempts });
        return result;
      } catch (caught) {
        const error = caught instanceof Error ? caught : new Error(String(caught));
        const reason = `${what} failed: ${error.message}`;
        waiting ??= await startWaiting(options);
        waiting.reason = reason;
        // One line per distinct failure: a retry every minute must not flood the log.
        if (error.message !== lastMessage) {
          log.error(`${reason}; the sidecar stays up, answers WAL calls with a failure (PostgreSQL keeps the WAL and retries) and tries again`, {
            error: error.name,
            variable: error instanceof ConfigError ? error.variable : undefined,
            fix: fixFor(error),
            retry_seconds: Math.round(backoff / 1000),
          });
          lastMessage = error.message;
        } else {
          log.debug(`${what} still fails`, { attempts, retry_seconds: Math.round(backoff / 1000) });
        }
      }
      await sleep(backoff, options.signal);
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  } finally {
    await waiting?.close();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

interface WaitingSidecar {
  /** What the failure answers say. */
  reason: string;
  close(): Promise<void>;
}

/** Starts the failure answers and the metrics; whatever cannot start is logged and left out. */
async function startWaiting(options: OpenWhenPossibleOptions): Promise<WaitingSidecar> {
  const { log } = options;
  const state: WaitingSidecar = { reason: 'the sidecar cannot work yet', close: async () => undefined };
  const closers: (() => Promise<void>)[] = [];
  if (options.spool !== undefined) {
    try {
      const spool = new Spool(options.spool, '');
      await spool.ensure();
      const token = randomBytes(16).toString('hex');
      const server = oneLineServer((line, socket) => answerUnavailable(line, socket, token, state.reason));
      const address: DaemonAddress = { port: await listenOnLoopback(server), token, pid: process.pid };
      writeAddress(spool.portFile, address);
      closers.push(async () => {
        removeAddress(spool.portFile, address);
        await new Promise<void>((resolve) => server.close(() => resolve()));
      });
    } catch (error) {
      log.warn('the sidecar cannot answer WAL calls while it waits: they find no sidecar and fail', { error: (error as Error).message });
    }
  }
  if (options.metrics) {
    try {
      const server = await serveWaitingMetrics(options.metrics);
      closers.push(() => new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would hold the port the working metrics take over.
        server.closeAllConnections();
      }));
    } catch (error) {
      log.warn('metrics are off while the sidecar waits', { error: (error as Error).message, port: options.metrics.port });
    }
  }
  state.close = async () => void (await Promise.all(closers.map((close) => close())));
  return state;
}

/** Every push and fetch fails with the reason; ping and stop are answered (the sidecar is alive). */
function answerUnavailable(line: string, socket: net.Socket, token: string, reason: string): void {
  const parsed = parseRequest(line);
  if (parsed.kind === 'invalid') return void socket.end(`${formatAnswer(failure(Object.assign(new Error(parsed.reason), { name: 'UsageError' })))}\n`);
  if (parsed.token !== token) return void socket.destroy();
  const request = parsed.request;
  if (request.op === 'ping') return void socket.end(`${formatAnswer({ kind: 'ok', detail: JSON.stringify({ pid: process.pid, unavailable: reason }) })}\n`);
  // A stop request is for a working background archiver: this one waits for its configuration, and a pod restarts it anyway.
  const error = new ArchiveUnavailableError(`the archiver sidecar cannot work: ${reason}`);
  const answer = request.op === 'fetch' ? recoveryFailure(request.mode, error) : error;
  socket.end(`${formatAnswer(failure(answer))}\n`);
}

/** archiver_configuration_ok 0, in Prometheus's text format: all that is known without the archive. */
async function serveWaitingMetrics(options: { readonly port: number; readonly host?: string }): Promise<http.Server> {
  const metric = ARCHIVER_METRICS.configurationOk;
  const body = `# HELP ${metric.name} ${metric.help}\n# TYPE ${metric.name} gauge\n${metric.name} 0\n`;
  const server = http.createServer((request, response) => {
    if (request.url?.split('?')[0] !== METRICS_PATH) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host: options.host }, resolve);
  });
  return server;
}
