/**
 * The per-call side: asks the background archiver of the spool to do the work, over loopback TCP
 * (the same lines the launcher's bash helper sends), and with ARCHIVER_DAEMON=on starts one when
 * none answers.
 *
 * How a request can end, and what the caller does:
 * - an answer: `ok`, or `exit CODE`, which becomes the named error of that exit code;
 * - DaemonUnavailableError: nothing was sent (no address, nothing listening, another location's
 *   background archiver): the caller works alone;
 * - DaemonLostError: the request was sent, then the background archiver went away or said
 *   nothing for the silence limit (frozen): the caller works alone. The work is idempotent (an
 *   identical re-push succeeds, a fetch rewrites the same file), so working alone after a lost
 *   answer is never a false success.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { ARCHIVER_COMMANDS, DAEMON_NODE_FLAGS } from '../../../contract';
import { ArchiverConfig } from '../config';
import { DaemonLostError, DaemonUnavailableError, reviveError } from '../errors';
import { Spool } from '../spool';
import { DaemonAddress, readAddress } from './address';
import { Answer, Request, formatRequest, parseAnswer } from './protocol';

export interface SendOptions {
  /** Taken for frozen after this long without a line. */
  readonly silenceMs: number;
}

/** Sends one request to the background archiver at `address`; resolves with its final answer (`ok`, `exit` or `mismatch`). */
export function send(address: DaemonAddress, owner: string, request: Request, options: SendOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let sent = false;
    let settled = false;
    let buffer = '';
    const socket = net.createConnection({ host: '127.0.0.1', port: address.port });
    const settle = (outcome: { answer: Answer } | { error: Error }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if ('answer' in outcome) resolve(outcome.answer);
      else reject(outcome.error);
    };
    let timer = setTimeout(() => undefined, 0);
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        settle({
          error: sent
            ? new DaemonLostError(`the background archiver (pid ${address.pid}) said nothing for ${Math.round(options.silenceMs / 1000)} s after taking the ${request.op} request`)
            : new DaemonUnavailableError(`the background archiver (pid ${address.pid}) did not accept a connection within ${Math.round(options.silenceMs / 1000)} s`),
        });
      }, options.silenceMs);
    };
    arm();
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      sent = true;
      socket.write(`${formatRequest(address.token, owner, request)}\n`);
      arm();
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const answer = parseAnswer(line);
        if (!answer) return settle({ error: new DaemonLostError(`unreadable answer from the background archiver: ${JSON.stringify(line.slice(0, 200))}`) });
        if (answer.kind === 'wait') {
          arm();
          continue;
        }
        return settle({ answer });
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      settle({ error: sent ? new DaemonLostError(`the background archiver failed during ${request.op}: ${error.message}`) : new DaemonUnavailableError(error.message) });
    });
    socket.on('close', () => {
      settle({ error: new DaemonLostError(`the background archiver (pid ${address.pid}) closed the connection before answering ${request.op}`) });
    });
  });
}

/**
 * Sends `request` to the spool's background archiver, starting one if needed and allowed
 * (ARCHIVER_DAEMON=on; with `external` the sidecar's is used or none). Resolves with the `ok`
 * answer's detail; rejects with the answer's named error, DaemonUnavailableError or
 * DaemonLostError (see above).
 */
export async function requestDaemon(config: ArchiverConfig & { spool: string }, request: Request): Promise<string | undefined> {
  const spool = new Spool(config.spool, config.spoolOwner);
  const options = { silenceMs: config.daemonSilenceSeconds * 1000 };
  const attempt = async (): Promise<Answer> => {
    const address = readAddress(spool.portFile);
    if (!address) throw new DaemonUnavailableError(`no background archiver has written ${spool.portFile}`);
    return send(address, config.spoolOwner, request, options);
  };
  let answer: Answer;
  try {
    answer = await attempt();
  } catch (error) {
    // An external background archiver (the sidecar) is never started here: the caller works alone.
    if (!(error instanceof DaemonUnavailableError) || config.daemon !== 'on') throw error;
    await spool.ensure();
    startDaemon(config);
    const deadline = Date.now() + 5000;
    for (;;) {
      await new Promise((r) => setTimeout(r, 15));
      try {
        answer = await attempt();
        break;
      } catch (retry) {
        if (!(retry instanceof DaemonUnavailableError) || Date.now() > deadline) throw retry;
      }
    }
  }
  switch (answer.kind) {
    case 'ok':
      return answer.detail;
    case 'exit':
      throw reviveError({ name: answer.name, message: answer.message });
    case 'mismatch':
      throw new DaemonUnavailableError('the running background archiver serves another archive location');
    default:
      throw new DaemonLostError(`unexpected answer ${answer.kind}`);
  }
}

/**
 * Starts a background archiver for the spool, detached, with this process's environment and
 * working directory (the data directory: it watches the postmaster there and stops with it). Its
 * parent exits at once, so it is adopted by PID 1: in a container where that is the postmaster, a
 * crash of the adopted process would look like a crashed backend (a restart of every session) —
 * which is why the pod runs it as a sidecar instead (ARCHIVER_DAEMON=external). Several calls may
 * start one at the same moment: the spool's lock lets one live.
 */
function startDaemon(config: ArchiverConfig): void {
  const stderr = config.daemonLog ? fs.openSync(config.daemonLog, 'a') : 'inherit';
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, process.argv[1], ARCHIVER_COMMANDS.daemon], {
    detached: true,
    stdio: ['ignore', 'ignore', stderr],
    cwd: process.cwd(),
    env: process.env,
  });
  child.unref();
  if (typeof stderr === 'number') fs.closeSync(stderr);
}
