/**
 * Push-ahead (archiver/src/pusher.ts): the other ready files are pushed in the background, and a
 * marker in the spool promises PostgreSQL's next call that a file is archived. A marker appears
 * only after the storage confirmed that very file durable; a push that failed leaves none, and a
 * marker, or a push in flight, answers only for the pg_wal file it was made from.
 *
 * The archive is the real local backend, wrapped where a test needs a put to fail or to wait
 * (testkit/doubles.ts StorageDouble). The launcher's own check of a marker is run too: with a
 * compression setting Node would reject, only the launcher's fast path can succeed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EXIT_CODES, pushedMarker, spoolOwner } from '../../contract';
import { Archive } from '../../archiver/src/archive';
import { ArchiveConflictError, StorageError, StorageOperation } from '../../archiver/src/errors';
import { Pusher } from '../../archiver/src/pusher';
import { Spool } from '../../archiver/src/spool';
import { openStorage } from '../../archiver/src/storage/open';
import { fakeDataDirectory, makeSegment, runArchiver } from '../../testkit/archiver';
import { Gate, StorageDouble, capturingLogger, waitUntil } from '../../testkit/doubles';

const SYSID = 7311676708303809017n;
const SEGMENT_SIZE = 1 << 20;
const name = (n: number) => `0000000100000000000000${n.toString(16).toUpperCase().padStart(2, '0')}`;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pusher-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
const archives: Archive[] = [];
afterEach(async () => {
  await Promise.allSettled(archives.splice(0).map((archive) => archive.close()));
});

/**
 * A spool whose markers are written only after `beforeMark` returns: a seam to hold the push
 * ahead between the storage's confirmation and its marker.
 */
class HeldSpool extends Spool {
  constructor(dir: string, owner: string, private readonly beforeMark: (file: string) => void | Promise<void>) {
    super(dir, owner);
  }

  override async markPushed(file: string): Promise<boolean> {
    await this.beforeMark(file);
    return super.markPushed(file);
  }
}

/**
 * A data directory with ready segments 1..count, a claimed spool, and a pusher whose storage goes
 * through `before` (and whose markers wait for `beforeMark`).
 */
async function setUp(count: number, before?: (op: StorageOperation, key: string) => void | Promise<void>, beforeMark?: (file: string) => void | Promise<void>) {
  const base = fs.mkdtempSync(path.join(scratch, 'case-'));
  const repo = path.join(base, 'repo');
  const pg = fakeDataDirectory(base);
  const files = Array.from({ length: count }, (_, i) => pg.addReady(name(i + 1), makeSegment(SYSID, i + 1, SEGMENT_SIZE)));
  const storage = new StorageDouble(await openStorage({ kind: 'local', root: repo }), before);
  const { log, lines } = capturingLogger();
  const archive = new Archive({ storage, compression: 'zstd', log });
  archives.push(archive);
  const repository = `file://${repo}`;
  const spoolDir = path.join(base, 'spool');
  const spool = beforeMark ? new HeldSpool(spoolDir, spoolOwner(repository, undefined), beforeMark) : new Spool(spoolDir, spoolOwner(repository, undefined));
  await spool.claim();
  const pusher = new Pusher(archive, spool, 4, log);
  const marker = (n: number) => path.join(spool.pushedDir, name(n));
  /** wal-push through the built launcher, with a setting Node refuses: exit 0 only from the spool. */
  const launcherPush = (file: string) =>
    runArchiver(['wal-push', path.relative(pg.dataDir, file)], { ARCHIVER_REPOSITORY: repository, ARCHIVER_SPOOL: spool.dir, ARCHIVER_DAEMON: 'off', ARCHIVER_COMPRESSION: 'bogus' }, pg.dataDir);
  return { base, repo, pg, files, storage, lines, spool, pusher, marker, launcherPush, owner: spoolOwner(repository, undefined) };
}

/** Pushes what PostgreSQL asks for, then lets every push ahead finish. */
async function pushAndSettle(pusher: Pusher, file: string, walDir: string): Promise<void> {
  await pusher.push(file);
  await pusher.pushAhead(walDir);
  await pusher.drain();
}

describe('Pusher', () => {
  it('pushes the requested file and the other ready files ahead; only those pushed ahead get a marker, naming their pg_wal path', async () => {
    const { repo, pg, files, pusher, marker, owner, launcherPush } = await setUp(3);
    await pushAndSettle(pusher, files[0], pg.walDir);
    expect(fs.readdirSync(path.join(repo, 'wal')).sort()).toEqual([name(1), name(2), name(3)]);
    expect(fs.existsSync(marker(1))).toBe(false);
    expect(fs.readFileSync(marker(2), 'utf8')).toBe(`${pushedMarker(owner, files[1])}\n`);
    expect(fs.readFileSync(marker(3), 'utf8')).toBe(`${pushedMarker(owner, files[2])}\n`);
    // The launcher answers PostgreSQL's next call from the marker alone.
    expect(launcherPush(files[1]).status).toBe(0);
    expect(fs.existsSync(marker(2))).toBe(false);
  });

  it('records a marker only once the storage confirmed the push (none while the put is held)', async () => {
    const gate = new Gate();
    const { pg, files, pusher, marker } = await setUp(3, async (op, key) => {
      if (op === 'put' && key === `wal/${name(2)}`) await gate.wait();
    });
    await pusher.push(files[0]);
    void pusher.pushAhead(pg.walDir);
    await gate.reached;
    await waitUntil(() => fs.existsSync(marker(3)), 'the marker of the other file pushed ahead');
    expect(fs.existsSync(marker(2))).toBe(false);
    gate.open();
    await pusher.drain();
    expect(fs.existsSync(marker(2))).toBe(true);
  });

  it('records no marker for a file whose push ahead failed: PostgreSQL\'s later call for it is not answered by the spool, and pushes it again', async () => {
    let broken = true;
    const { pg, files, pusher, marker, spool, storage, lines, launcherPush } = await setUp(3, (op, key) => {
      if (broken && op === 'put' && key === `wal/${name(2)}`) {
        throw new StorageError({ operation: 'put', location: 'test', key, cause: new Error('the disk is on fire'), transient: false });
      }
    });
    await pushAndSettle(pusher, files[0], pg.walDir);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'push failed', wal: name(2), ahead: 'true' }));
    expect(fs.existsSync(marker(3))).toBe(true);
    expect(fs.existsSync(marker(2))).toBe(false);
    expect(await spool.takePushed(files[1])).toBe(false);
    // The launcher finds no marker and hands over to Node (which refuses the bogus setting).
    expect(launcherPush(files[1]).status).toBe(EXIT_CODES.usage);
    // The call is worked on, not answered: it fails while the storage does, and succeeds after.
    const putsBefore = storage.calls.filter((c) => c.op === 'put' && c.key === `wal/${name(2)}`).length;
    await expect(pusher.push(files[1])).rejects.toBeInstanceOf(StorageError);
    expect(storage.calls.filter((c) => c.op === 'put' && c.key === `wal/${name(2)}`).length).toBe(putsBefore + 1);
    broken = false;
    expect(await pusher.push(files[1])).toMatchObject({ name: name(2), status: 'stored' });
  });

  it('answers a push of /elsewhere/NAME with that file, not with the push ahead of pg_wal/NAME in flight', async () => {
    const gate = new Gate();
    const { base, pg, files, pusher, marker, spool } = await setUp(1, async (op, key) => {
      if (op === 'put' && key === `wal/${name(1)}`) await gate.wait();
    });
    const elsewhere = path.join(base, 'elsewhere', name(1));
    fs.mkdirSync(path.dirname(elsewhere));
    fs.writeFileSync(elsewhere, makeSegment(SYSID, 99, SEGMENT_SIZE)); // same name, other contents
    void pusher.pushAhead(pg.walDir);
    await gate.reached;
    const asked = pusher.push(elsewhere).then(
      (result) => result,
      (error: unknown) => error,
    );
    gate.open();
    // pg_wal/NAME is archived first; /elsewhere/NAME is then compared with it, and refused.
    expect(await asked).toBeInstanceOf(ArchiveConflictError);
    await pusher.drain();
    expect(fs.existsSync(marker(1))).toBe(true);
    expect(await spool.takePushed(elsewhere)).toBe(false);
    expect(await spool.takePushed(files[0])).toBe(true);
  });

  it('leaves no marker for a file PostgreSQL asked for while its push ahead was writing one: a later file at that path is compared, not answered from the spool', async () => {
    const gate = new Gate();
    const { pg, files, pusher, marker, launcherPush } = await setUp(1, undefined, () => gate.wait());
    void pusher.pushAhead(pg.walDir);
    await gate.reached; // stored; its marker about to be written
    const asked = pusher.push(files[0]);
    gate.open();
    expect(await asked).toMatchObject({ name: name(1), status: 'stored' });
    await pusher.drain();
    expect(fs.existsSync(marker(1))).toBe(false);
    // The segment is recycled: other contents at the same path, ready again.
    fs.writeFileSync(files[0], makeSegment(SYSID, 7, SEGMENT_SIZE));
    expect(launcherPush(files[0]).status).toBe(EXIT_CODES.usage); // no marker: handed to Node
    await expect(pusher.push(files[0])).rejects.toBeInstanceOf(ArchiveConflictError);
  });
});
