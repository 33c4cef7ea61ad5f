/**
 * The per-call side: asks the background archiver to do the work, starting it when it is not
 * running. When it cannot be reached, the caller falls back to doing the work itself; a request
 * that was sent but not answered (the background archiver died) is a failure, never a success.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { ArchiverConfig } from './config';
import { reviveError } from './errors';
import { Request, Response } from './protocol';
import { Spool } from './spool';

/** The background archiver could not be reached: nothing was sent. */
export class DaemonUnavailableError extends Error {
  public override readonly name = 'DaemonUnavailableError';
}

/** Sends one request and waits for its answer. */
export function send(socketPath: string, request: Request, timeoutMs: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let buffer = '';
    const socket = net.createConnection(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the background archiver did not answer ${request.op} within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline >= 0) {
        clearTimeout(timer);
        socket.end();
        try {
          resolve(JSON.parse(buffer.slice(0, newline)) as Response);
        } catch (error) {
          reject(new Error(`unreadable answer from the background archiver: ${(error as Error).message}`));
        }
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connected ? new Error(`the background archiver failed during ${request.op}: ${error.message}`) : new DaemonUnavailableError(error.message));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`the background archiver closed the connection before answering ${request.op}`));
    });
  });
}

/**
 * Starts the background archiver, detached, with this process's environment. Its parent exits
 * at once, so it is adopted by PID 1: in a container where that is the postmaster, a crash of
 * the adopted process would look like a crashed backend (a restart of every session) — which is
 * why the pod runs it as a sidecar instead (ARCHIVER_DAEMON=external).
 */
function startDaemon(config: ArchiverConfig): void {
  const logFile = process.env.ARCHIVER_DAEMON_LOG;
  const stderr = logFile ? fs.openSync(logFile, 'a') : 'inherit';
  const child = spawn(process.execPath, [process.argv[1], 'daemon'], {
    detached: true,
    stdio: ['ignore', 'ignore', stderr],
    cwd: process.cwd(),
    env: process.env,
  });
  child.unref();
  if (typeof stderr === 'number') fs.closeSync(stderr);
  void config;
}

/**
 * Sends `request` to the background archiver for `config`, starting it if needed and allowed
 * (ARCHIVER_DAEMON=on; with `external` the sidecar's is used or none). Throws
 * DaemonUnavailableError when it cannot be reached (the caller then works alone), the reported
 * named error when the work failed.
 */
export async function requestDaemon(config: ArchiverConfig, request: Request, timeoutMs: number): Promise<Response & { ok: true }> {
  const spool = new Spool(config.spool, config.spoolOwner);
  const socketPath = spool.socketPath(config.fingerprint);
  let response: Response | undefined;
  try {
    response = await send(socketPath, request, timeoutMs);
  } catch (error) {
    // An external background archiver (the sidecar) is never started here: the caller works alone.
    if (!(error instanceof DaemonUnavailableError) || config.daemon !== 'on') throw error;
    await spool.ensure();
    startDaemon(config);
    const deadline = Date.now() + 5000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 15));
      try {
        response = await send(socketPath, request, timeoutMs);
        break;
      } catch (retry) {
        if (!(retry instanceof DaemonUnavailableError) || Date.now() > deadline) throw retry;
      }
    }
  }
  if (!response.ok) throw reviveError(response.error);
  return response;
}
