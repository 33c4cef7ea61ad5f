/**
 * The archive_command / restore_command contract, through the launcher PostgreSQL runs, against a
 * real directory. Every spec runs twice: with the background archiver (the default) and with each
 * call working alone (ARCHIVER_DAEMON=off, what happens when the background archiver is down).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../contract';
import { readAddress } from '../../archiver/src/daemon/address';
import { acquireSpoolLock } from '../../archiver/src/daemon/lock';
import { fakeDataDirectory, LAUNCHER, lastLog, makeSegment, runArchiver, runArchiverAsync, startSidecar, stopArchiver, stopSidecar, waitForFile } from '../../testkit/archiver';
import { waitUntil } from '../../testkit/doubles';

const SYSID = 7311676708303809017n;
const SEGMENT_SIZE = 1 << 20; // small segments keep the suite fast; the format is the same
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'wal-contract-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const name = (n: number) => `0000000100000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

describe.each([
  ['with the background archiver', 'on'],
  ['with each call working alone', 'off'],
])('wal-push and wal-fetch %s', (_mode, daemon) => {
  let base: string;
  let env: Record<string, string>;
  let repo: string;
  let pg: ReturnType<typeof fakeDataDirectory>;
  const push = (file: string) => runArchiver(['wal-push', path.relative(pg.dataDir, file)], env, pg.dataDir);
  const fetch = (walName: string, destination: string) => runArchiver(['wal-fetch', walName, destination], env, pg.dataDir);

  beforeEach(() => {
    base = fs.mkdtempSync(path.join(scratch, 'case-'));
    repo = path.join(base, 'repo');
    pg = fakeDataDirectory(base);
    env = { ARCHIVER_REPOSITORY: `file://${repo}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON: daemon, ARCHIVER_PREFETCH: '3', ARCHIVER_DAEMON_IDLE_SECONDS: '30' };
  });
  afterEach(() => stopArchiver(env));

  it('exits 0 once the segment is stored, and wal-fetch restores the same bytes', () => {
    const segment = makeSegment(SYSID, 1, SEGMENT_SIZE);
    const file = pg.addReady(name(1), segment);
    const pushed = push(file);
    expect(pushed.stderr).not.toMatch(/level=(warn|error)/);
    expect(pushed.status).toBe(0);
    expect(fs.existsSync(path.join(repo, 'wal', name(1)))).toBe(true);
    const restored = fetch(name(1), 'pg_wal/RECOVERYXLOG');
    expect(restored.status).toBe(0);
    expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(segment)).toBe(true);
  });

  it('records the system identifier and segment size on the first push', () => {
    expect(push(pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE))).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(repo, 'archive.json'), 'utf8'))).toMatchObject({ systemIdentifier: SYSID.toString(), walSegmentSize: SEGMENT_SIZE });
  });

  it('succeeds when the same content is pushed again (a retry after a crash)', () => {
    const file = pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE));
    expect(push(file).status).toBe(0);
    const stored = fs.readFileSync(path.join(repo, 'wal', name(1)));
    expect(push(file).status).toBe(0);
    expect(fs.readFileSync(path.join(repo, 'wal', name(1))).equals(stored)).toBe(true);
  });

  it('refuses, non-zero, a different file under an archived name and keeps the archived one', () => {
    const original = makeSegment(SYSID, 1, SEGMENT_SIZE);
    expect(push(pg.addReady(name(1), original)).status).toBe(0);
    const different = push(pg.addReady(name(1), makeSegment(SYSID, 2, SEGMENT_SIZE)));
    expect(different.status).toBe(EXIT_CODES.error);
    expect(different.stderr).toContain('error=ArchiveConflictError');
    expect(different.stderr).toContain(`${name(1)} is already archived at file://${repo} with different contents`);
    expect(fetch(name(1), 'pg_wal/RECOVERYXLOG').status).toBe(0);
    expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(original)).toBe(true);
  });

  it('refuses to push into an archive another cluster started', () => {
    expect(push(pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE))).status).toBe(0);
    const foreign = push(pg.addReady(name(2), makeSegment(SYSID + 1n, 2, SEGMENT_SIZE)));
    expect(foreign.status).toBe(EXIT_CODES.error);
    expect(foreign.stderr).toContain('error=ForeignArchiveError');
    expect(foreign.stderr).toContain(`the archive at file://${repo} belongs to another database cluster (system identifier ${SYSID}); this cluster is ${SYSID + 1n}`);
    expect(fs.existsSync(path.join(repo, 'wal', name(2)))).toBe(false);
  });

  it('exits with the distinct not-found code for a file the archive does not have', () => {
    expect(push(pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE))).status).toBe(0);
    const missing = fetch(name(9), 'pg_wal/RECOVERYXLOG');
    expect(missing.signal).toBeNull();
    expect(missing.status).toBe(EXIT_CODES.notFound);
    expect(missing.stderr).toContain(`not found: ${name(9)} is not in the archive at file://${repo}`);
    expect(fs.existsSync(path.join(pg.walDir, 'RECOVERYXLOG'))).toBe(false);
    expect(fetch('00000002.history', 'pg_wal/RECOVERYHISTORY').status).toBe(EXIT_CODES.notFound);
  });

  it('detects a corrupted object on fetch: non-zero, not "not found", nothing written', () => {
    expect(push(pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE))).status).toBe(0);
    const object = path.join(repo, 'wal', name(1));
    const bytes = fs.readFileSync(object);
    bytes[bytes.length - 100] ^= 0xff;
    fs.writeFileSync(object, bytes);
    const corrupted = fetch(name(1), 'pg_wal/RECOVERYXLOG');
    expect(corrupted.status).toBe(EXIT_CODES.error);
    expect(corrupted.stderr).toContain('error=CorruptObjectError');
    expect(corrupted.stderr).toMatch(/msg="wal\/0+10+1 at file:\/\/.* (is corrupted|cannot be decompressed)/);
    expect(fs.existsSync(path.join(pg.walDir, 'RECOVERYXLOG'))).toBe(false);
  });

  it('lets two concurrent pushes of one segment both succeed, storing it once', async () => {
    const segment = makeSegment(SYSID, 1, SEGMENT_SIZE);
    const file = path.relative(pg.dataDir, pg.addReady(name(1), segment));
    const results = await Promise.all([1, 2, 3].map(() => runArchiverAsync(['wal-push', file], env, pg.dataDir)));
    expect(results.map((r) => r.status)).toStrictEqual([0, 0, 0]);
    expect(fs.readdirSync(path.join(repo, 'wal'))).toStrictEqual([name(1)]);
    expect(fetch(name(1), 'pg_wal/RECOVERYXLOG').status).toBe(0);
    expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(segment)).toBe(true);
  });

  it('pushes the other ready files ahead; their later calls are answered by the launcher alone', async () => {
    const files = [1, 2, 3, 4, 5].map((n) => pg.addReady(name(n), makeSegment(SYSID, n, SEGMENT_SIZE)));
    expect(push(files[0]).status).toBe(0);
    const pushedAhead = () => [2, 3, 4, 5].every((n) => fs.existsSync(path.join(env.ARCHIVER_SPOOL, 'pushed', name(n))));
    for (let i = 0; i < 200 && !pushedAhead(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(fs.readdirSync(path.join(repo, 'wal')).sort()).toStrictEqual([1, 2, 3, 4, 5].map(name));
    // With the background archiver stopped and a setting Node would reject (the launcher does
    // not read it), only the launcher's own fast path can succeed.
    stopArchiver(env);
    const broken = { ...env, ARCHIVER_COMPRESSION: 'bogus' };
    for (const file of files.slice(1)) {
      expect(runArchiver(['wal-push', path.relative(pg.dataDir, file)], broken, pg.dataDir).status).toBe(0);
    }
    expect(fs.readdirSync(path.join(env.ARCHIVER_SPOOL, 'pushed'))).toStrictEqual([]);
    // Without a marker the launcher runs Node, which names the bad variable.
    const unmarked = runArchiver(['wal-push', path.relative(pg.dataDir, files[1])], broken, pg.dataDir);
    expect(unmarked.status).toBe(EXIT_CODES.usage);
    expect(lastLog(unmarked.stderr)).toMatchObject({ level: 'error', error: 'CompressionConfigError', msg: expect.stringContaining('ARCHIVER_COMPRESSION="bogus" is not a compression') });
  });

  it('does not take a segment pushed ahead to another location as archived after the configuration changes', async () => {
    const files = [1, 2, 3].map((n) => pg.addReady(name(n), makeSegment(SYSID, n, SEGMENT_SIZE)));
    expect(push(files[0]).status).toBe(0);
    const marked = () => fs.existsSync(path.join(env.ARCHIVER_SPOOL, 'pushed', name(3)));
    for (let i = 0; i < 200 && !marked(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(marked()).toBe(true);
    stopArchiver(env);
    // The same data directory and spool, now archiving elsewhere (a new bucket, say).
    const elsewhere = path.join(base, 'elsewhere');
    env = { ...env, ARCHIVER_REPOSITORY: `file://${elsewhere}` };
    for (const file of files.slice(1)) expect(push(file).status).toBe(0);
    expect(fs.readdirSync(path.join(elsewhere, 'wal')).sort()).toEqual(expect.arrayContaining([name(2), name(3)]));
  });

  it('does not take a marker that names another location (a background archiver of the old location writing it while a new configuration claims the spool)', () => {
    const first = pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE));
    expect(push(first).status).toBe(0);
    expect(fs.readFileSync(path.join(env.ARCHIVER_SPOOL, '.owner'), 'utf8')).toBe(`file://${repo}|\n`);
    const later = pg.addReady(name(5), makeSegment(SYSID, 5, SEGMENT_SIZE));
    fs.writeFileSync(path.join(env.ARCHIVER_SPOOL, 'pushed', name(5)), `file://${path.join(base, 'old-location')}|\n`);
    expect(push(later).status).toBe(0);
    expect(fs.existsSync(path.join(repo, 'wal', name(5)))).toBe(true);
  });

  it('archives .history, .backup and .partial files', () => {
    const history = pg.addReady('00000002.history', Buffer.from('1\t0/3000000\tno recovery target specified\n'));
    const backup = pg.addReady(`${name(2)}.00000028.backup`, Buffer.from('START WAL LOCATION: 0/2000028\n'));
    const partial = pg.addReady(`${name(3)}.partial`, makeSegment(SYSID, 3, SEGMENT_SIZE));
    for (const file of [history, backup, partial]) expect(push(file).status).toBe(0);
    expect(fetch('00000002.history', 'pg_wal/RECOVERYHISTORY').status).toBe(0);
    expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYHISTORY'), 'utf8')).toBe('1\t0/3000000\tno recovery target specified\n');
  });

  it('writes objects the zstd tool reads as they are', () => {
    // A missing tool fails the test: scripts/system-deps.sh installs it (apt-get install zstd).
    expect(spawnSync('sh', ['-c', 'command -v zstd']).status, 'the zstd tool is not installed: run scripts/system-deps.sh (apt-get install zstd)').toBe(0);
    const segment = makeSegment(SYSID, 1, SEGMENT_SIZE);
    expect(push(pg.addReady(name(1), segment)).status).toBe(0);
    const decoded = spawnSync('zstd', ['-d', '-c', path.join(repo, 'wal', name(1))]);
    expect(decoded.status).toBe(0);
    expect(decoded.stdout.equals(segment)).toBe(true);
  });
});

describe('wal-fetch prefetch (background archiver)', () => {
  it('downloads the next segments into the spool; the launcher hands them over without Node', async () => {
    const base = fs.mkdtempSync(path.join(scratch, 'prefetch-'));
    const pg = fakeDataDirectory(base);
    const env = { ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_PREFETCH: '3', ARCHIVER_DAEMON: 'off' };
    const segments = [1, 2, 3, 4, 5].map((n) => makeSegment(SYSID, n, SEGMENT_SIZE));
    segments.forEach((s, i) => expect(runArchiver(['wal-push', pg.addReady(name(i + 1), s)], env, pg.dataDir).status).toBe(0));

    const restoreEnv = { ...env, ARCHIVER_DAEMON: 'on', ARCHIVER_SPOOL: path.join(base, 'restore-spool') };
    try {
      expect(runArchiver(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], restoreEnv, pg.dataDir).status).toBe(0);
      const prefetched = () => fs.existsSync(path.join(restoreEnv.ARCHIVER_SPOOL, 'prefetch')) ? fs.readdirSync(path.join(restoreEnv.ARCHIVER_SPOOL, 'prefetch')).filter((f) => !f.endsWith('.tmp')).sort() : [];
      for (let i = 0; i < 200 && prefetched().length < 3; i++) await new Promise((r) => setTimeout(r, 25));
      expect(prefetched()).toStrictEqual([name(2), name(3), name(4)]);

      const broken = { ...restoreEnv, ARCHIVER_COMPRESSION: 'bogus' };
      expect(runArchiver(['wal-fetch', name(2), 'pg_wal/RECOVERYXLOG'], broken, pg.dataDir).status).toBe(0);
      expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(segments[1])).toBe(true);
      // Taking one moves the window: segment 5 follows.
      for (let i = 0; i < 200 && !prefetched().includes(name(5)); i++) await new Promise((r) => setTimeout(r, 25));
      expect(prefetched()).toStrictEqual([name(3), name(4), name(5)]);

      // Prefetched files are not fsync'd: after a reboot (another boot id) none of them is taken.
      stopArchiver(restoreEnv);
      fs.writeFileSync(path.join(restoreEnv.ARCHIVER_SPOOL, '.boot'), 'a-boot-before-a-crash\n');
      const afterReboot = runArchiver(['wal-fetch', name(3), 'pg_wal/RECOVERYXLOG'], broken, pg.dataDir);
      expect(afterReboot.status).toBe(EXIT_CODES.usage);
      expect(lastLog(afterReboot.stderr).msg).toContain('ARCHIVER_COMPRESSION="bogus" is not a compression');
    } finally {
      stopArchiver(restoreEnv);
    }
  });
});

describe('the launcher and a running background archiver', () => {
  let base: string;
  let pg: ReturnType<typeof fakeDataDirectory>;
  let env: Record<string, string>;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(scratch, 'shell-'));
    pg = fakeDataDirectory(base);
    env = { ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_IDLE_SECONDS: '30' };
  });
  afterEach(() => stopArchiver(env));

  it('answers what the spool cannot without starting Node (loopback TCP from the bash helper)', () => {
    expect(runArchiver(['wal-push', path.relative(pg.dataDir, pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE)))], env, pg.dataDir).status).toBe(0);
    expect(fs.readFileSync(path.join(env.ARCHIVER_SPOOL, 'daemon.port'), 'utf8')).toMatch(/^\d+ [0-9a-f]{32} \d+\n$/);
    expect(fs.statSync(path.join(env.ARCHIVER_SPOOL, 'daemon.port')).mode & 0o777).toBe(0o600);
    // A setting Node would reject: only the background archiver can answer these.
    const viaDaemon = { ...env, ARCHIVER_COMPRESSION: 'bogus' };
    const pushed = runArchiver(['wal-push', path.relative(pg.dataDir, pg.addReady(name(2), makeSegment(SYSID, 2, SEGMENT_SIZE)))], viaDaemon, pg.dataDir);
    expect(pushed.stderr).toBe('');
    expect(pushed.status).toBe(0);
    const missing = runArchiver(['wal-fetch', name(9), 'pg_wal/RECOVERYXLOG'], viaDaemon, pg.dataDir);
    expect(missing.status).toBe(EXIT_CODES.notFound);
    expect(lastLog(missing.stderr)).toMatchObject({ level: 'info', error: 'WalNotFoundError', exit: '74', msg: expect.stringContaining(`not found: ${name(9)} is not in the archive`) });
    const conflict = runArchiver(['wal-push', path.relative(pg.dataDir, pg.addReady(name(2), makeSegment(SYSID, 3, SEGMENT_SIZE)))], viaDaemon, pg.dataDir);
    expect(conflict.status).toBe(EXIT_CODES.error);
    expect(lastLog(conflict.stderr)).toMatchObject({ level: 'error', error: 'ArchiveConflictError', exit: '1' });
  });

  it('refuses requests on its port without the spool\'s token', async () => {
    expect(runArchiver(['wal-push', path.relative(pg.dataDir, pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE)))], env, pg.dataDir).status).toBe(0);
    const [port] = fs.readFileSync(path.join(env.ARCHIVER_SPOOL, 'daemon.port'), 'utf8').trim().split(' ');
    // Outside pg_wal: nothing pushes it ahead, only a request could.
    const file = path.join(base, name(2));
    fs.writeFileSync(file, makeSegment(SYSID, 2, SEGMENT_SIZE));
    const answer = await new Promise<string>((resolve) => {
      const socket = net.createConnection({ host: '127.0.0.1', port: Number(port) }, () => socket.write(`${'0'.repeat(32)}\tpush\t${env.ARCHIVER_REPOSITORY}|\t${file}\n`));
      let data = '';
      socket.on('data', (d) => (data += d));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
    });
    expect(answer).toBe('');
    expect(fs.existsSync(path.join(base, 'repo/wal', name(2)))).toBe(false);
  });

  it('hands over to Node when the running background archiver serves another location', () => {
    expect(runArchiver(['wal-push', path.relative(pg.dataDir, pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE)))], env, pg.dataDir).status).toBe(0);
    const moved = { ...env, ARCHIVER_REPOSITORY: `file://${path.join(base, 'moved')}` };
    try {
      const pushed = runArchiver(['wal-push', path.relative(pg.dataDir, pg.addReady(name(2), makeSegment(SYSID, 2, SEGMENT_SIZE)))], moved, pg.dataDir);
      expect(pushed.status).toBe(0);
      expect(fs.existsSync(path.join(base, 'moved/wal', name(2)))).toBe(true);
      // The old background archiver may still push ahead what it sees ready, to its own location;
      // nothing it records counts for the new location.
      const later = pg.addReady(name(3), makeSegment(SYSID, 3, SEGMENT_SIZE));
      expect(runArchiver(['wal-push', path.relative(pg.dataDir, later)], moved, pg.dataDir).status).toBe(0);
      expect(fs.existsSync(path.join(base, 'moved/wal', name(3)))).toBe(true);
    } finally {
      stopArchiver(moved);
    }
  });
});

describe('the sidecar: a background archiver run by someone else (ARCHIVER_DAEMON=external in the calls)', () => {
  let base: string;
  let pg: ReturnType<typeof fakeDataDirectory>;
  let sidecarEnv: Record<string, string>;
  let callEnv: Record<string, string>;
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(scratch, 'sidecar-'));
    pg = fakeDataDirectory(base);
    // What the pod renders: the same archive settings in both containers; the sidecar never
    // idles out, the PostgreSQL container's calls never start a background archiver.
    const shared = { ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool') };
    sidecarEnv = { ...shared, ARCHIVER_DAEMON_IDLE_SECONDS: '0' };
    callEnv = { ...shared, ARCHIVER_DAEMON: 'external' };
  });
  afterEach(() => stopArchiver(sidecarEnv));

  const sidecar = () => startSidecar([LAUNCHER, 'daemon'], sidecarEnv, { logFile: path.join(base, 'sidecar.log'), cwd: base });

  it('serves the calls: the next ready segments are pushed ahead and answered by the launcher alone', async () => {
    const running = await sidecar();
    const first = pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE));
    const second = pg.addReady(name(2), makeSegment(SYSID, 2, SEGMENT_SIZE));
    expect(runArchiver(['wal-push', path.relative(pg.dataDir, first)], callEnv, pg.dataDir).status).toBe(0);
    const marker = path.join(callEnv.ARCHIVER_SPOOL, 'pushed', name(2));
    expect(await waitForFile(marker)).toBe(true);
    expect(runArchiver(['wal-push', path.relative(pg.dataDir, second)], callEnv, pg.dataDir).status).toBe(0);
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.existsSync(path.join(base, 'repo/wal', name(2)))).toBe(true);
    expect(running.exitCode).toBeNull();
    expect(await stopSidecar(running)).toBe(0);
  });

  it('when the sidecar is down, each call fails (exit 1: PostgreSQL keeps the file and calls again), works neither alone nor starts a background archiver of its own, and succeeds once the sidecar is back', async () => {
    // Killed: its port file stays behind, pointing at nothing.
    const killed = await sidecar();
    await stopSidecar(killed, 'SIGKILL');
    const file = pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE));
    const refused = runArchiver(['wal-push', path.relative(pg.dataDir, file)], callEnv, pg.dataDir);
    expect(refused.status).toBe(EXIT_CODES.error);
    expect(lastLog(refused.stderr)).toMatchObject({ level: 'error', error: 'SidecarUnavailableError', exit: '1' });
    expect(fs.existsSync(file)).toBe(true);
    expect(fs.existsSync(path.join(base, 'repo/wal', name(1)))).toBe(false);
    const fetched = runArchiver(['wal-fetch', name(9), 'pg_wal/RECOVERYXLOG'], callEnv, pg.dataDir);
    expect(fetched.status).toBe(EXIT_CODES.error);
    // No call started a background archiver: the dead sidecar's address is still the one published
    // (a new one replaces it before it answers), and nobody holds the spool's lock.
    expect(readAddress(path.join(callEnv.ARCHIVER_SPOOL, 'daemon.port'))?.pid).toBe(killed.pid);
    const lock = await acquireSpoolLock(callEnv.ARCHIVER_SPOOL);
    expect(lock, 'a background archiver holds the spool').toBeDefined();
    await lock?.release();
    // The kubelet restarts the sidecar: PostgreSQL's next call archives the same file.
    const restarted = await sidecar();
    // startSidecar saw the dead one's port file: wait for the new address.
    await waitUntil(() => readAddress(path.join(callEnv.ARCHIVER_SPOOL, 'daemon.port'))?.pid === restarted.pid, 'the restarted sidecar\'s address');
    const retried = runArchiver(['wal-push', path.relative(pg.dataDir, file)], callEnv, pg.dataDir);
    expect(retried.status, retried.stderr).toBe(0);
    expect(fs.existsSync(path.join(base, 'repo/wal', name(1)))).toBe(true);
  });

  it('in archive recovery, a fetch waits for a sidecar that is down (up to ARCHIVER_RECOVERY_DEADLINE_SECONDS) rather than stop the recovery', async () => {
    const first = await sidecar();
    const file = pg.addReady(name(1), makeSegment(SYSID, 1, SEGMENT_SIZE));
    expect(runArchiver(['wal-push', path.relative(pg.dataDir, file)], callEnv, pg.dataDir).status).toBe(0);
    await stopSidecar(first, 'SIGKILL');
    fs.writeFileSync(path.join(pg.dataDir, 'recovery.signal'), '');
    const fetching = runArchiverAsync(['wal-fetch', name(1), 'pg_wal/RECOVERYXLOG'], { ...callEnv, ARCHIVER_RECOVERY_DEADLINE_SECONDS: '30' }, pg.dataDir);
    await new Promise((r) => setTimeout(r, 2000));
    const restarted = await sidecar();
    await waitUntil(() => readAddress(path.join(callEnv.ARCHIVER_SPOOL, 'daemon.port'))?.pid === restarted.pid, 'the restarted sidecar\'s address');
    const fetched = await fetching;
    expect(fetched.status, fetched.stderr).toBe(0);
    expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(fs.readFileSync(file))).toBe(true);
  });
});

describe('the archiver command line', () => {
  const env = { ARCHIVER_REPOSITORY: `file://${scratch}/cli-repo`, ARCHIVER_SPOOL: `${scratch}/cli-spool`, ARCHIVER_DAEMON_IDLE_SECONDS: '30' };
  afterAll(() => stopArchiver(env));

  it('prints its version and help', () => {
    expect(runArchiver(['--version'], env).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const help = runArchiver(['--help'], env);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('wal-push <path>');
    expect(help.stdout).toContain('74 not found (wal-fetch: the file is not in the archive)');
    const commandHelp = runArchiver(['wal-fetch', '--help'], env);
    expect(commandHelp.status).toBe(0);
    expect(commandHelp.stdout).toContain('Usage: archiver wal-fetch <name> <destination>');
  });

  it.each([
    [['wal-push'], "wal-push takes one argument, the WAL file's path"],
    [['wal-fetch', '000000010000000000000001'], 'wal-fetch takes two arguments'],
    [['wal-fetch', 'passwd', '/tmp/x'], 'wal-fetch: "passwd" is not a WAL file name'],
    [['wal-push', '/etc/passwd'], 'wal-push: "passwd" is not a WAL file name'],
    [['frobnicate'], 'unknown command "frobnicate"'],
  ])('fails with the usage exit code on %j', (args, message) => {
    const result = runArchiver(args, env);
    expect(result.status).toBe(EXIT_CODES.usage);
    expect(lastLog(result.stderr)).toMatchObject({ level: 'error', error: 'UsageError', exit: '2', msg: expect.stringContaining(message) });
  });

  it('names the missing variable', () => {
    const result = runArchiver(['wal-fetch', '000000010000000000000001', '/tmp/x'], { ARCHIVER_SPOOL: env.ARCHIVER_SPOOL });
    expect(result.status).toBe(EXIT_CODES.usage);
    expect(lastLog(result.stderr)).toMatchObject({ error: 'ConfigError', msg: expect.stringContaining('ARCHIVER_REPOSITORY: is not set') });
  });
});
