/**
 * The background archiver: one long-lived process per spool and configuration. It keeps the
 * storage client (and its connections) warm, pushes ready WAL ahead of PostgreSQL's requests,
 * prefetches WAL for restore, and answers the per-call clients over a Unix socket.
 *
 * In Kubernetes it runs as the pod's `archiver` sidecar container (ARCHIVER_DAEMON_IDLE_SECONDS=0:
 * it never exits on its own), so that it is warm before the first segment is ready and is never
 * a child of the postmaster; elsewhere the first client starts it on demand
 * (ARCHIVER_DAEMON=on) and it exits after a configurable idle time. It can be stopped with a
 * `stop` request. When it is down, clients do the work themselves: it is a speed-up, never a
 * requirement.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Archive } from './archive';
import { CodecPool, bundledWorkerScript } from './codec-pool';
import { ArchiverConfig } from './config';
import { Logger } from './logger';
import { Prefetcher } from './prefetcher';
import { Request, Response, parseShellRequest, shellResponse } from './protocol';
import { Pusher } from './pusher';
import { Spool } from './spool';
import { openStorage } from './storage/open';

export interface DaemonHandle {
  readonly socketPath: string;
  /** Resolves when the daemon has stopped. */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

/** The archive of `config`; with `workers`, (de)compression runs on that many worker threads when the bundled worker script exists. */
export async function openArchive(config: ArchiverConfig, workers = 0): Promise<Archive> {
  const storage = await openStorage(config.storage);
  const script = workers > 0 ? bundledWorkerScript() : undefined;
  const pool = script ? new CodecPool(script, workers, config.compression, config.compressionLevel) : undefined;
  pool?.warm();
  return new Archive({ storage, compression: config.compression, compressionLevel: config.compressionLevel, pool });
}

function timingSafeEqualStrings(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The longest request line either protocol accepts: a request is a few paths long. */
const MAX_REQUEST_LINE = 8192;

/**
 * A server whose connections each carry one request line and get one answer: `onLine` runs once
 * per connection, with the first line; anything after it is ignored, and a connection that sends
 * more than MAX_REQUEST_LINE bytes without a newline is dropped.
 */
function oneLineServer(onLine: (line: string, socket: net.Socket) => void): net.Server {
  return net.createServer((socket) => {
    let buffer = '';
    let answered = false;
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      if (answered) return;
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) {
        if (buffer.length > MAX_REQUEST_LINE) socket.destroy();
        return;
      }
      answered = true;
      onLine(buffer.slice(0, newline), socket);
    });
  });
}

/** Whether something answers on `socketPath`. */
function alive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection(socketPath);
    socket.on('connect', () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Runs the background archiver until it is stopped or idle. Returns undefined when another one already serves this socket. */
export async function runDaemon(config: ArchiverConfig, log: Logger): Promise<DaemonHandle | undefined> {
  const spool = new Spool(config.spool, config.spoolOwner);
  await spool.ensure();
  const socketPath = spool.socketPath(config.fingerprint);
  if (await alive(socketPath)) return undefined;

  const archive = await openArchive(config, config.workers);
  // Another configuration claimed the spool: this background archiver is obsolete.
  const disowned = () => {
    log.warn('the spool now belongs to another archive location; stopping', { location: archive.location });
    setImmediate(() => void stop());
  };
  const pusher = new Pusher(archive, spool, config.pushConcurrency, log, disowned);
  const prefetcher = new Prefetcher(archive, spool, config.prefetch, Math.min(config.prefetchConcurrency, Math.max(1, config.prefetch)), log, disowned);
  // Markers and prefetched files of an earlier run may belong to another configuration.
  await spool.clear();
  await spool.claim();
  await spool.recordBoot();

  const watchers = new Map<string, fs.FSWatcher>();
  /** Pushes ahead as soon as PostgreSQL marks a file ready, not only when it asks. */
  const watchWalDirectory = (walDirectory: string) => {
    if (watchers.has(walDirectory)) return;
    try {
      const watcher = fs.watch(path.join(walDirectory, 'archive_status'), (_event, file) => {
        if (file?.endsWith('.ready')) void pusher.pushAhead(walDirectory);
      });
      watcher.on('error', () => undefined);
      watchers.set(walDirectory, watcher);
    } catch {
      // not a data directory's pg_wal
    }
  };

  let lastActivity = Date.now();
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));

  const handle = async (request: Request): Promise<Response> => {
    lastActivity = Date.now();
    try {
      switch (request.op) {
        case 'push': {
          watchWalDirectory(path.dirname(request.file));
          const result = await pusher.push(request.file);
          return { ok: true, detail: { status: result.status } };
        }
        case 'fetch': {
          prefetcher.watch();
          const result = await prefetcher.fetch(request.name, request.destination);
          return { ok: true, detail: result };
        }
        case 'ping':
          return { ok: true, detail: { pid: process.pid, pending: pusher.pending } };
        case 'stop':
          setImmediate(() => void stop());
          return { ok: true };
        default:
          return { ok: false, error: { name: 'UsageError', message: `unknown request ${JSON.stringify((request as { op?: unknown }).op)}` } };
      }
    } catch (error) {
      const e = error as Error;
      return { ok: false, error: { name: e.name, message: e.message } };
    } finally {
      lastActivity = Date.now();
    }
  };

  // The shell path: the launcher's bash helper reaches this over loopback TCP with the token
  // from the spool, so that a call the spool cannot answer costs milliseconds, not a Node start.
  const token = randomBytes(16).toString('hex');
  const shellServer = oneLineServer((line, socket) => {
    const parsed = parseShellRequest(line);
    if (parsed.kind === 'invalid') return void socket.end(`usage ${parsed.reason}\n`);
    if (!timingSafeEqualStrings(parsed.token, token)) return void socket.destroy();
    if (parsed.owner !== config.spoolOwner) return void socket.end('mismatch\n');
    void handle(parsed.request).then((response) => socket.end(`${shellResponse(response)}\n`));
  });
  await new Promise<void>((resolve, reject) => {
    shellServer.once('error', reject);
    shellServer.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const portLine = `${(shellServer.address() as net.AddressInfo).port} ${token}\n`;
  const portTemporary = `${spool.portFile}.${process.pid}.tmp`;
  fs.writeFileSync(portTemporary, portLine, { mode: 0o600 });
  fs.renameSync(portTemporary, spool.portFile);

  const server = oneLineServer((line, socket) => {
    let request: Request;
    try {
      request = JSON.parse(line) as Request;
    } catch {
      return void socket.end(`${JSON.stringify({ ok: false, error: { name: 'UsageError', message: 'unreadable request' } })}\n`);
    }
    void handle(request).then((response) => socket.end(`${JSON.stringify(response)}\n`));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE') return reject(error);
      // A socket file without a listener: left by a daemon that died.
      fs.rmSync(socketPath, { force: true });
      server.listen(socketPath, resolve);
    });
    server.listen(socketPath, resolve);
  });
  fs.chmodSync(socketPath, 0o600);

  const idleTimer =
    config.daemonIdleSeconds > 0
      ? setInterval(() => {
          if (Date.now() - lastActivity > config.daemonIdleSeconds * 1000 && pusher.pending === 0) void stop();
        }, Math.min(1000, config.daemonIdleSeconds * 250))
      : undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(idleTimer);
      server.close();
      shellServer.close();
      // Only our own port file: a newer background archiver may have replaced it.
      if ((fs.existsSync(spool.portFile) ? fs.readFileSync(spool.portFile, 'utf8') : '') === portLine) fs.rmSync(spool.portFile, { force: true });
      for (const watcher of watchers.values()) watcher.close();
      prefetcher.close();
      await pusher.drain();
      await archive.close();
      fs.rmSync(socketPath, { force: true });
      log.info('background archiver stopped', { pid: process.pid });
      resolveStopped();
    })();
    return stopping;
  };

  log.info('background archiver started', { pid: process.pid, location: archive.location, concurrency: config.pushConcurrency, prefetch: config.prefetch });
  return { socketPath, stopped, stop };
}
