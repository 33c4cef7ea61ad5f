/**
 * The launcher (archiver/bin/archiver), its bash helper (archiver/bin/archiver-call) and the
 * background archiver they hand work to, as PostgreSQL runs them: real files, real processes.
 * Each spec pins a fault found by fault injection (issue "Room to grow"); run against an earlier
 * build (ARCHIVER_UNDER_TEST=.../bin/archiver) it fails.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS, EXIT_CODES, pushedMarker, spoolOwner } from '../../contract';
import {
  LAUNCHER,
  daemonProcesses,
  eventually,
  fakeDataDirectory,
  logLines,
  makeSegment,
  runArchiver,
  runArchiverAsync,
  startSidecar,
  stopArchiver,
  stopSidecar,
} from '../../testkit/archiver';
import { freePort } from '../../testkit/ports';

const SYSID = 7311676708303809017n;
const SIZE = 1 << 20;
const name = (n: number) => `0000000100000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'launcher-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let base: string;
let pg: ReturnType<typeof fakeDataDirectory>;
let env: Record<string, string>;
const children: ChildProcess[] = [];

beforeEach(() => {
  base = fs.mkdtempSync(path.join(scratch, 'case-'));
  pg = fakeDataDirectory(base);
  env = { ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_IDLE_SECONDS: '30' };
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      await stopSidecar(child, 'SIGKILL');
    }
  }
  stopArchiver(env);
  for (const pid of daemonProcesses(env.ARCHIVER_SPOOL)) process.kill(pid, 'SIGKILL');
});

const archived = (walName: string) => fs.existsSync(path.join(base, 'repo/wal', walName));
const relative = (file: string) => path.relative(pg.dataDir, file);

describe('a background archiver that took the request and then stopped answering', () => {
  it('is given up after the silence limit: a call started by PostgreSQL outside the pod (ARCHIVER_DAEMON=on) works alone and stores the file (no wait without end, no false success)', async () => {
    const sidecar = await startSidecar([LAUNCHER, 'daemon'], { ...env, ARCHIVER_DAEMON_IDLE_SECONDS: '0' }, { logFile: path.join(base, 'sidecar.log'), cwd: base });
    children.push(sidecar);
    sidecar.kill('SIGSTOP'); // frozen: the kernel still accepts its connections
    const file = pg.addReady(name(1), makeSegment(SYSID, 1, SIZE));
    const started = Date.now();
    const result = await runArchiverAsync(['wal-push', relative(file)], { ...env, ARCHIVER_DAEMON: 'on', ARCHIVER_DAEMON_SILENCE_SECONDS: '3' }, pg.dataDir);
    const seconds = (Date.now() - started) / 1000;
    expect(result.status).toBe(0);
    expect(archived(name(1))).toBe(true);
    expect(seconds).toBeGreaterThanOrEqual(3);
    expect(seconds).toBeLessThan(30);
    expect(logLines(result.stderr)[0]).toMatchObject({ level: 'warn', msg: expect.stringContaining('background archiver lost') });
  });

  it('is given up after the silence limit: a call in the pod (ARCHIVER_DAEMON=external, no storage credentials) fails with exit 1 and leaves the file for the next call', async () => {
    const sidecar = await startSidecar([LAUNCHER, 'daemon'], { ...env, ARCHIVER_DAEMON_IDLE_SECONDS: '0' }, { logFile: path.join(base, 'sidecar.log'), cwd: base });
    children.push(sidecar);
    sidecar.kill('SIGSTOP');
    const file = pg.addReady(name(1), makeSegment(SYSID, 1, SIZE));
    const result = await runArchiverAsync(['wal-push', relative(file)], { ...env, ARCHIVER_DAEMON: 'external', ARCHIVER_DAEMON_SILENCE_SECONDS: '3' }, pg.dataDir);
    expect(result.status).toBe(EXIT_CODES.error);
    expect(archived(name(1))).toBe(false);
    expect(fs.existsSync(file)).toBe(true);
    expect(logLines(result.stderr).at(-1)).toMatchObject({ level: 'error', error: 'SidecarUnavailableError', exit: '1' });
  });

  /** A stand-in for a background archiver that takes one request line and then closes the connection (a crash mid-request). */
  async function dyingDaemon(spool: string, afterRequest: (socket: net.Socket) => void): Promise<net.Server> {
    fs.mkdirSync(spool, { recursive: true });
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => afterRequest(socket));
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    fs.writeFileSync(path.join(spool, 'daemon.port'), `${(server.address() as net.AddressInfo).port} ${'a'.repeat(32)} 1\n`, { mode: 0o600 });
    return server;
  }

  it.each([
    ['closes the connection at once', (socket: net.Socket) => socket.destroy()],
    ['says it is working, then goes away', (socket: net.Socket) => (socket.write('wait\n'), setTimeout(() => socket.destroy(), 200))],
  ])('never exits 0 when it %s and the file cannot be stored otherwise', async (_case, afterRequest) => {
    // The archive is unreachable: only a false success could exit 0.
    const unreachable: Record<string, string> = { ...env, ARCHIVER_REPOSITORY: 's3://kubedb/archive', ARCHIVER_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}`, ARCHIVER_TIMEOUT_SECONDS: '1', ARCHIVER_MAX_ATTEMPTS: '1' };
    const server = await dyingDaemon(unreachable.ARCHIVER_SPOOL, afterRequest);
    try {
      const result = await runArchiverAsync(['wal-push', relative(pg.addReady(name(1), makeSegment(SYSID, 1, SIZE)))], { ...unreachable, ARCHIVER_DAEMON: 'external' }, pg.dataDir);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(logLines(result.stderr).at(-1)).toMatchObject({ level: 'error', command: 'wal-push' });
    } finally {
      server.close();
    }
  });

  it('still stores the file when it went away and the archive is reachable: a call outside the pod (ARCHIVER_DAEMON=on) did the work itself', async () => {
    const server = await dyingDaemon(env.ARCHIVER_SPOOL, (socket) => socket.destroy());
    try {
      const result = await runArchiverAsync(['wal-push', relative(pg.addReady(name(1), makeSegment(SYSID, 1, SIZE)))], { ...env, ARCHIVER_DAEMON: 'on' }, pg.dataDir);
      expect(result.status).toBe(0);
      expect(archived(name(1))).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('pushed-ahead markers', () => {
  it('answer only the pg_wal file they were made from: another file under the same name is compared, and refused', async () => {
    const first = pg.addReady(name(1), makeSegment(SYSID, 1, SIZE));
    const second = pg.addReady(name(2), makeSegment(SYSID, 2, SIZE));
    expect(runArchiver(['wal-push', relative(first)], env, pg.dataDir).status).toBe(0);
    const marker = path.join(env.ARCHIVER_SPOOL, 'pushed', name(2));
    expect(await eventually(() => fs.existsSync(marker))).toBe(true);
    expect(fs.readFileSync(marker, 'utf8')).toBe(`${pushedMarker(spoolOwner(env.ARCHIVER_REPOSITORY, undefined), second)}\n`);
    // The same name elsewhere, with other contents: not archived, whatever the marker says.
    const elsewhere = path.join(base, name(2));
    fs.writeFileSync(elsewhere, makeSegment(SYSID, 99, SIZE));
    const impostor = runArchiver(['wal-push', elsewhere], env, pg.dataDir);
    expect(impostor.status).toBe(EXIT_CODES.error);
    expect(logLines(impostor.stderr).at(-1)).toMatchObject({ error: 'ArchiveConflictError' });
    // The marker still answers PostgreSQL's own call.
    expect(fs.existsSync(marker)).toBe(true);
    expect(runArchiver(['wal-push', relative(second)], env, pg.dataDir).status).toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
  });
});

describe('the spool', () => {
  it('may have a path of any length: no Unix socket is named after it', async () => {
    const deep = path.join(base, 'a-rather-long-directory-name-for-a-spool'.repeat(4), 'archiver-spool');
    expect(deep.length).toBeGreaterThan(200);
    const long = { ...env, ARCHIVER_SPOOL: deep, ARCHIVER_PREFETCH: '2' };
    const files = [1, 2, 3].map((n) => pg.addReady(name(n), makeSegment(SYSID, n, SIZE)));
    try {
      for (const file of files) expect(runArchiver(['wal-push', relative(file)], long, pg.dataDir).status).toBe(0);
      expect(daemonProcesses(deep)).toHaveLength(1);
      // A point-in-time recovery asks for history files and segments: every answer arrives.
      expect(runArchiver(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY'], long, pg.dataDir).status).toBe(EXIT_CODES.notFound);
      for (const n of [1, 2, 3]) {
        expect(runArchiver(['wal-fetch', name(n), 'pg_wal/RECOVERYXLOG'], long, pg.dataDir).status).toBe(0);
        expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(fs.readFileSync(files[n - 1]))).toBe(true);
      }
    } finally {
      stopArchiver(long);
    }
  });
});

describe('background archivers started by calls (ARCHIVER_DAEMON=on)', () => {
  it('are one per spool, however many first calls come at once; `stop` stops it', async () => {
    const files = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => pg.addReady(name(n), makeSegment(SYSID, n, SIZE)));
    const results = await Promise.all(files.map((file) => runArchiverAsync(['wal-push', relative(file)], env, pg.dataDir)));
    expect(results.map((r) => r.status)).toStrictEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    // Losers of the race exit at once; one stays.
    expect(await eventually(() => daemonProcesses(env.ARCHIVER_SPOOL).length === 1)).toBe(true);
    const stopped = runArchiver(['stop'], env);
    expect(stopped.status).toBe(0);
    expect(stopped.stdout).toMatch(/^stopped the background archiver \(pid \d+\) of the spool /);
    expect(daemonProcesses(env.ARCHIVER_SPOOL)).toStrictEqual([]);
  });

  it('run with the daemon\'s V8 settings (contract DAEMON_NODE_FLAGS), as the sidecar started by `archiver daemon` does', async () => {
    const argvOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(runArchiver(['wal-push', relative(pg.addReady(name(1), makeSegment(SYSID, 1, SIZE)))], env, pg.dataDir).status).toBe(0);
    const [started] = daemonProcesses(env.ARCHIVER_SPOOL);
    expect(argvOf(started).slice(1, 1 + DAEMON_NODE_FLAGS.length)).toStrictEqual([...DAEMON_NODE_FLAGS]);
    expect(runArchiver(['stop'], env).status).toBe(0);
    const sidecar = await startSidecar([LAUNCHER, 'daemon'], env, { logFile: path.join(base, 'sidecar.log'), cwd: base });
    children.push(sidecar);
    expect(argvOf(sidecar.pid!).slice(1, 1 + DAEMON_NODE_FLAGS.length)).toStrictEqual([...DAEMON_NODE_FLAGS]);
  });

  it('stop when the PostgreSQL server they were started for stops', async () => {
    // A stand-in postmaster: postmaster.pid names a live process of ours.
    const postmaster = spawn('sleep', ['600'], { stdio: 'ignore' });
    children.push(postmaster);
    fs.writeFileSync(path.join(pg.dataDir, 'postmaster.pid'), `${postmaster.pid}\n${pg.dataDir}\n`);
    expect(runArchiver(['wal-push', relative(pg.addReady(name(1), makeSegment(SYSID, 1, SIZE)))], { ...env, ARCHIVER_DAEMON_IDLE_SECONDS: '3600' }, pg.dataDir).status).toBe(0);
    expect(daemonProcesses(env.ARCHIVER_SPOOL)).toHaveLength(1);
    postmaster.kill('SIGKILL');
    expect(await eventually(() => daemonProcesses(env.ARCHIVER_SPOOL).length === 0, 10_000)).toBe(true);
  });
});
