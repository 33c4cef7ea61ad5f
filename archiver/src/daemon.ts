/**
 * The background archiver: one long-lived process per spool and configuration. It keeps the
 * storage client (and its connections) warm, pushes ready WAL ahead of PostgreSQL's requests,
 * prefetches WAL for restore, and answers the per-call clients over a Unix socket.
 *
 * It is started on demand by the first client (and in Kubernetes lives as long as the
 * PostgreSQL container), exits after a configurable idle time, and can be stopped with a `stop`
 * request. When it is down, clients do the work themselves: it is a speed-up, never a
 * requirement.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Archive } from './archive';
import { CodecPool, bundledWorkerScript } from './codec-pool';
import { ArchiverConfig } from './config';
import { Logger } from './logger';
import { Prefetcher } from './prefetcher';
import { Request, Response } from './protocol';
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
  const pusher = new Pusher(archive, spool, config.pushConcurrency, log);
  const prefetcher = new Prefetcher(archive, spool, config.prefetch, Math.min(2, Math.max(1, config.prefetch)), log);
  // Markers and prefetched files of an earlier run may belong to another configuration.
  await spool.clear();
  await spool.claim();

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

  const server = net.createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      let request: Request;
      try {
        request = JSON.parse(buffer.slice(0, newline)) as Request;
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: { name: 'UsageError', message: 'unreadable request' } })}\n`);
        return;
      }
      void handle(request).then((response) => socket.end(`${JSON.stringify(response)}\n`));
    });
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

  const idleTimer = setInterval(() => {
    if (Date.now() - lastActivity > config.daemonIdleSeconds * 1000 && pusher.pending === 0) void stop();
  }, Math.min(1000, config.daemonIdleSeconds * 250));

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(idleTimer);
      server.close();
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
