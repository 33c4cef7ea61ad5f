/**
 * At most one background archiver per spool. The lock is a Linux abstract Unix socket named
 * after the spool's real path: binding it is atomic (a second bind fails with EADDRINUSE), it has
 * no file whose path length could exceed a socket path's 108 bytes, and the kernel releases it
 * when its process dies, however it dies. Abstract sockets belong to the network namespace, which
 * a pod's containers share: the sidecar's lock is seen by the PostgreSQL container's calls.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface SpoolLock {
  release(): Promise<void>;
}

/** The lock's abstract socket name for `spool`. */
export function lockName(spool: string): string {
  let real = spool;
  try {
    real = fs.realpathSync(spool);
  } catch {
    // not there yet: its path as given
  }
  return `\0pg-wal-archiver/${createHash('sha256').update(real).digest('hex').slice(0, 32)}`;
}

/** Takes the lock of `spool`; undefined when another process holds it. */
export function acquireSpoolLock(spool: string): Promise<SpoolLock | undefined> {
  const server = net.createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error)));
    server.listen(lockName(spool), () => {
      server.unref();
      resolve({ release: () => new Promise((done) => server.close(() => done())) });
    });
  });
}
