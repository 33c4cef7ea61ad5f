/**
 * The background archiver's server (archiver/src/daemon/server.ts), run in this process with the
 * real local backend (an S3 test double where a request must take long): one per spool, its
 * address published, requests answered by the table, `wait` said every HEARTBEAT_SECONDS while
 * one works, nothing done for a caller without the token or of another location.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HEARTBEAT_SECONDS, SPOOL_LAYOUT } from '../../../contract';
import { ArchiverConfig, readConfig } from '../../../archiver/src/config';
import { readAddress } from '../../../archiver/src/daemon/address';
import { DaemonHandle, runDaemon } from '../../../archiver/src/daemon/server';
import { makeSegment } from '../../../testkit/archiver';
import { Gate, TinyS3Server, capturingLogger, startTinyS3Server, waitUntil, within } from '../../../testkit/doubles';

const SYSID = 7311676708303809017n;
const NAME = '000000010000000000000001';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'daemon-server-test-'));
const running: DaemonHandle[] = [];
const servers: TinyS3Server[] = [];
afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((daemon) => daemon.stop()));
  await Promise.allSettled(servers.splice(0).map((server) => server.close()));
});
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

type Config = ArchiverConfig & { spool: string };

function configFor(env: Record<string, string>): Config {
  const base = fs.mkdtempSync(path.join(scratch, 'case-'));
  const config = readConfig({ ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_WORKERS: '0', ARCHIVER_DAEMON_IDLE_SECONDS: '0', ARCHIVER_PREFETCH: '0', ...env }, base, () => false);
  return config as Config;
}

async function start(config: Config): Promise<DaemonHandle | undefined> {
  const daemon = await runDaemon(config, capturingLogger().log);
  if (daemon) running.push(daemon);
  return daemon;
}

interface Heard {
  readonly text: string;
  readonly at: number;
}

/** One connection: sends `line`, collects the answer lines with their arrival times until the server closes it. */
function converse(port: number, line: string): { readonly heard: Heard[]; readonly sentAt: number; readonly closed: Promise<Heard[]> } {
  const heard: Heard[] = [];
  let buffer = '';
  const socket = net.createConnection({ host: '127.0.0.1', port }, () => socket.write(`${line}\n`));
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
      heard.push({ text: buffer.slice(0, newline), at: Date.now() });
      buffer = buffer.slice(newline + 1);
    }
  });
  const closed = new Promise<Heard[]>((resolve) => {
    socket.on('close', () => resolve(heard));
    socket.on('error', () => undefined);
  });
  return { heard, sentAt: Date.now(), closed: within(closed, 30_000, 'the answer') };
}

const texts = (heard: readonly Heard[]) => heard.map((h) => h.text);

/** A segment outside any pg_wal: nothing pushes it ahead, only a request can. */
function segmentFile(config: Config): string {
  const file = path.join(path.dirname(config.spool), 'elsewhere', NAME);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, makeSegment(SYSID, 1, 1 << 20));
  return file;
}

describe('runDaemon', () => {
  it('runs one background archiver per spool: a second one on the same spool returns undefined', async () => {
    const config = configFor({});
    const first = await start(config);
    expect(first).toBeDefined();
    expect(await start({ ...config })).toBeUndefined();
    await first!.stop();
    expect(await start(config)).toBeDefined();
  });

  it('publishes PORT TOKEN PID in daemon.port (mode 0600) and answers ping', async () => {
    const config = configFor({});
    const daemon = (await start(config))!;
    const portFile = path.join(config.spool, SPOOL_LAYOUT.port);
    expect(readAddress(portFile)).toEqual(daemon.address);
    expect(fs.statSync(portFile).mode & 0o777).toBe(0o600);
    const answer = await converse(daemon.address.port, `${daemon.address.token}\tping\t${config.spoolOwner}`).closed;
    expect(texts(answer)).toEqual([`ok\t${JSON.stringify({ pid: process.pid, pending: 0 })}`]);
  });

  it('pushes a file on request and answers ok with its status', async () => {
    const config = configFor({});
    const daemon = (await start(config))!;
    const file = segmentFile(config);
    const answer = await converse(daemon.address.port, `${daemon.address.token}\tpush\t${config.spoolOwner}\t${file}`).closed;
    expect(texts(answer)).toEqual(['ok\t{"status":"stored"}']);
    expect(fs.existsSync(path.join(path.dirname(config.spool), 'repo', 'wal', NAME))).toBe(true);
  });

  it('says wait every HEARTBEAT_SECONDS while a request works longer, then answers', async () => {
    // The archive is on an S3 test double whose answer to the GET is held by the test.
    const gate = new Gate();
    const server = await startTinyS3Server({
      onRequest: async (request) => {
        if (request.method === 'GET' && request.key.endsWith(`wal/${NAME}`)) await gate.wait();
      },
    });
    servers.push(server);
    const config = configFor({ ARCHIVER_REPOSITORY: 's3://archive/heartbeat', ARCHIVER_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    const daemon = (await start(config))!;
    const destination = path.join(path.dirname(config.spool), 'RECOVERYXLOG');
    const conversation = converse(daemon.address.port, `${daemon.address.token}\tfetch\t${config.spoolOwner}\t${NAME}\t${destination}\tnone`);
    try {
      await gate.reached;
      await waitUntil(() => conversation.heard.length >= 3, 'three heartbeats', 10 * HEARTBEAT_SECONDS * 1000);
    } finally {
      gate.open();
    }
    const heard = await conversation.closed;
    const waits = heard.slice(0, -1);
    expect(texts(waits).every((text) => text === 'wait')).toBe(true);
    expect(heard[heard.length - 1].text).toMatch(/^exit\t74\tWalNotFoundError: /);
    // Paced, not a flood: each wait comes about HEARTBEAT_SECONDS after the one before.
    const intervals = waits.map((wait, i) => wait.at - (i === 0 ? conversation.sentAt : waits[i - 1].at));
    for (const interval of intervals) expect(interval).toBeGreaterThanOrEqual(HEARTBEAT_SECONDS * 1000 * 0.5);
  });

  it('gives no answer to a request with a wrong token, and does not act on it', async () => {
    const config = configFor({});
    const daemon = (await start(config))!;
    const file = segmentFile(config);
    const wrong = daemon.address.token.replace(/./, (c) => (c === '0' ? '1' : '0'));
    expect(texts(await converse(daemon.address.port, `${wrong}\tpush\t${config.spoolOwner}\t${file}`).closed)).toEqual([]);
    // Nothing was pushed by it: the first real push stores the file.
    expect(texts(await converse(daemon.address.port, `${daemon.address.token}\tpush\t${config.spoolOwner}\t${file}`).closed)).toEqual(['ok\t{"status":"stored"}']);
  });

  it('answers mismatch to a caller of another archive location, and does not act on it', async () => {
    const config = configFor({});
    const daemon = (await start(config))!;
    const file = segmentFile(config);
    expect(texts(await converse(daemon.address.port, `${daemon.address.token}\tpush\tfile:///another/location|\t${file}`).closed)).toEqual(['mismatch']);
    expect(texts(await converse(daemon.address.port, `${daemon.address.token}\tpush\t${config.spoolOwner}\t${file}`).closed)).toEqual(['ok\t{"status":"stored"}']);
  });

  it('answers an unreadable request with the usage exit code', async () => {
    const config = configFor({});
    const daemon = (await start(config))!;
    expect(texts(await converse(daemon.address.port, 'hello').closed)).toEqual(['exit\t2\tUsageError: expected TOKEN OP OWNER ARGUMENTS, separated by tabs']);
  });

  it('stops on a stop request: answers, removes its address, releases the spool', async () => {
    const config = configFor({});
    const daemon = (await start(config))!;
    expect(texts(await converse(daemon.address.port, `${daemon.address.token}\tstop\t${config.spoolOwner}`).closed)).toEqual([`ok\t{"pid":${process.pid}}`]);
    await within(daemon.stopped, 10_000, 'the stop');
    expect(fs.existsSync(path.join(config.spool, SPOOL_LAYOUT.port))).toBe(false);
    expect(await start(config)).toBeDefined();
  });
});
