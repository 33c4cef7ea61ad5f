/**
 * The per-call side (archiver/src/daemon/client.ts) against servers of the test's own (net.Server
 * on 127.0.0.1, published with address.ts writeAddress): how each way a request can end reaches
 * the caller. Never a false success: only `ok` resolves; a request taken and then left unanswered
 * is DaemonLostError, one never sent is DaemonUnavailableError.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ArchiveConflictError, DaemonLostError, DaemonUnavailableError, WalNotFoundError } from '../../../archiver/src/errors';
import { ArchiverConfig, readConfig } from '../../../archiver/src/config';
import { writeAddress } from '../../../archiver/src/daemon/address';
import { requestDaemon } from '../../../archiver/src/daemon/client';
import { Request, formatRequest } from '../../../archiver/src/daemon/protocol';
import { Spool } from '../../../archiver/src/spool';
import { within } from '../../../testkit/doubles';
import { freePort } from '../../../testkit/ports';

const TOKEN = 'feedfacefeedfacefeedfacefeedface';
const PUSH: Request = { op: 'push', file: '/data/pg_wal/000000010000000000000001' };

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'daemon-client-test-'));
const servers: net.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

type Config = ArchiverConfig & { spool: string };

/** A call's configuration: `external`, so that nothing here ever starts a background archiver. */
function callConfig(silenceSeconds = 30): Config {
  const base = fs.mkdtempSync(path.join(scratch, 'case-'));
  const config = readConfig({ ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON: 'external' }, base, () => false) as Config;
  fs.mkdirSync(config.spool, { recursive: true });
  // The configuration accepts 3 s at least; a shorter limit keeps these tests short.
  return { ...config, daemonSilenceSeconds: silenceSeconds };
}

/**
 * A stand-in background archiver: `onRequest` gets each connection's request line and its socket.
 * Its address is written into the spool as the real one writes it.
 */
async function fakeDaemon(config: Config, onRequest: (line: string, socket: net.Socket) => void): Promise<{ readonly lines: string[] }> {
  const lines: string[] = [];
  const server = net.createServer((socket) => {
    let buffer = '';
    let taken = false;
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      if (taken) return;
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      taken = true;
      lines.push(buffer.slice(0, newline));
      onRequest(buffer.slice(0, newline), socket);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  writeAddress(new Spool(config.spool, config.spoolOwner).portFile, { port: (server.address() as net.AddressInfo).port, token: TOKEN, pid: 4242 });
  return { lines };
}

const outcome = (promise: Promise<unknown>) => within(promise.then((value) => ({ value }), (error: unknown) => ({ error })), 20_000, 'the request');

describe('requestDaemon', () => {
  it('sends TOKEN OP OWNER ARGUMENTS as one line and resolves with the ok answer\'s detail', async () => {
    const config = callConfig();
    const daemon = await fakeDaemon(config, (_line, socket) => socket.end('ok\t{"status":"stored"}\n'));
    expect(await outcome(requestDaemon(config, PUSH))).toEqual({ value: '{"status":"stored"}' });
    expect(daemon.lines).toEqual([formatRequest(TOKEN, config.spoolOwner, PUSH)]);
  });

  it('fails with DaemonUnavailableError when no address was published', async () => {
    const { error } = (await outcome(requestDaemon(callConfig(), PUSH))) as { error: unknown };
    expect(error).toBeInstanceOf(DaemonUnavailableError);
  });

  it('fails with DaemonUnavailableError when nothing listens at the published address', async () => {
    const config = callConfig();
    writeAddress(new Spool(config.spool, config.spoolOwner).portFile, { port: await freePort(), token: TOKEN, pid: 4242 });
    const { error } = (await outcome(requestDaemon(config, PUSH))) as { error: unknown };
    expect(error).toBeInstanceOf(DaemonUnavailableError);
  });

  it('fails with DaemonLostError when the server closes the connection after taking the request', async () => {
    const config = callConfig();
    const daemon = await fakeDaemon(config, (_line, socket) => socket.end());
    const { error } = (await outcome(requestDaemon(config, PUSH))) as { error: unknown };
    expect(error).toBeInstanceOf(DaemonLostError);
    expect((error as Error).message).toContain('closed the connection before answering push');
    expect(daemon.lines).toHaveLength(1);
  });

  it('fails with DaemonLostError when the server says nothing for the silence limit after taking the request', async () => {
    const config = callConfig(1);
    await fakeDaemon(config, () => undefined);
    const started = Date.now();
    const { error } = (await outcome(requestDaemon(config, PUSH))) as { error: unknown };
    expect(error).toBeInstanceOf(DaemonLostError);
    expect((error as Error).message).toContain('said nothing for 1 s after taking the push request');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('waits beyond the silence limit for a server that keeps saying wait, then resolves', async () => {
    const config = callConfig(2);
    await fakeDaemon(config, (_line, socket) => {
      let waits = 0;
      const heartbeat = setInterval(() => {
        if (++waits <= 11) return void socket.write('wait\n');
        clearInterval(heartbeat);
        socket.end('ok\t{"status":"stored"}\n');
      }, 250);
    });
    // 12 × 250 ms: longer than the 2 s limit, never near 2 s without a word.
    expect(await outcome(requestDaemon(config, PUSH))).toEqual({ value: '{"status":"stored"}' });
  });

  it.each([
    ['exit\t74\tWalNotFoundError: 000000010000000000000009 is not in the archive', WalNotFoundError],
    ['exit\t1\tArchiveConflictError: already archived with different contents', ArchiveConflictError],
  ])('fails with the named error of an exit answer (%s)', async (answer, Type) => {
    const config = callConfig();
    await fakeDaemon(config, (_line, socket) => socket.end(`${answer}\n`));
    const { error } = (await outcome(requestDaemon(config, PUSH))) as { error: Error };
    expect(error).toBeInstanceOf(Type);
    expect(error.message).toBe(answer.slice(answer.indexOf(': ') + 2));
  });

  it('fails with DaemonUnavailableError when the server serves another archive location (mismatch)', async () => {
    const config = callConfig();
    await fakeDaemon(config, (_line, socket) => socket.end('mismatch\n'));
    const { error } = (await outcome(requestDaemon(config, PUSH))) as { error: unknown };
    expect(error).toBeInstanceOf(DaemonUnavailableError);
  });

  it('fails with DaemonLostError on an answer it cannot read', async () => {
    const config = callConfig();
    await fakeDaemon(config, (_line, socket) => socket.end('stored, probably\n'));
    const { error } = (await outcome(requestDaemon(config, PUSH))) as { error: unknown };
    expect(error).toBeInstanceOf(DaemonLostError);
  });
});
