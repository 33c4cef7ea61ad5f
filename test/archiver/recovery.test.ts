/**
 * wal-fetch as recovery needs it (archiver/src/recovery.ts): which mode the data directory says,
 * which exit code each failure gets in it, and how a fetch in archive recovery retries storage
 * failures until its deadline, stops at once on damage, and tells a gap from the end of the
 * archive. Real local archives (behind a StorageDouble where a storage must fail) and WalSource
 * doubles where a storage must hang.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EXIT_CODES, RECOVERY_MODES, RecoveryMode, spoolOwner } from '../../contract';
import { Archive } from '../../archiver/src/archive';
import {
  ConfigError,
  CorruptObjectError,
  DecompressionError,
  RecoveryStopError,
  StorageError,
  StorageOperation,
  UnsupportedObjectError,
  UsageError,
  WalGapError,
  WalNotFoundError,
} from '../../archiver/src/errors';
import { Prefetcher } from '../../archiver/src/prefetcher';
import { TimelineSurvey, WalSource, exitForFetchFailure, recoveryFailure, recoveryMode, restoreWal } from '../../archiver/src/recovery';
import { Spool } from '../../archiver/src/spool';
import { openStorage } from '../../archiver/src/storage/open';
import { fakeDataDirectory, makeSegment } from '../../testkit/archiver';
import { StorageDouble, capturingLogger } from '../../testkit/doubles';

const SYSID = 7311676708303809017n;
const SEGMENT_SIZE = 1 << 20;
/** Segment `n` of timeline `timeline`. */
const seg = (n: number, timeline = 1) => `${timeline.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;
const { archiveRecovery, standby, none } = RECOVERY_MODES;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const storageFailure = (key = 'wal/X', operation: StorageOperation = 'get') =>
  new StorageError({ operation, location: 's3://kubedb/archive', key, cause: new Error('connect ECONNREFUSED 127.0.0.1:9') });

describe('recoveryMode', () => {
  const withFiles = (...names: string[]) => (file: string) => names.some((name) => file === path.join('/data', name));

  it.each([
    ['no data directory (a command run by hand)', undefined, withFiles(), none],
    ['a data directory without signal files (a running primary, crash recovery)', '/data', withFiles(), none],
    ['recovery.signal: archive recovery', '/data', withFiles('recovery.signal'), archiveRecovery],
    ['standby.signal: standby mode', '/data', withFiles('standby.signal'), standby],
    ['both: standby mode, as PostgreSQL decides', '/data', withFiles('recovery.signal', 'standby.signal'), standby],
  ])('%s', (_case, dataDirectory, exists, mode) => {
    expect(recoveryMode(dataDirectory, exists)).toBe(mode);
  });

  it('reads the real files by default', () => {
    const { dataDir } = fakeDataDirectory(fs.mkdtempSync(path.join(scratch, 'mode-')));
    expect(recoveryMode(dataDir)).toBe(none);
    fs.writeFileSync(path.join(dataDir, 'recovery.signal'), '');
    expect(recoveryMode(dataDir)).toBe(archiveRecovery);
    fs.writeFileSync(path.join(dataDir, 'standby.signal'), '');
    expect(recoveryMode(dataDir)).toBe(standby);
  });
});

describe('exitForFetchFailure', () => {
  const failures: [string, number, number, unknown][] = [
    ['not in the archive', EXIT_CODES.notFound, EXIT_CODES.notFound, new WalNotFoundError(seg(5), 'file:///a')],
    ['a gap', EXIT_CODES.stopRecovery, EXIT_CODES.stopRecovery, new WalGapError(seg(5), seg(6), 'file:///a')],
    ['a storage failure', EXIT_CODES.stopRecovery, EXIT_CODES.error, storageFailure()],
    ['a corrupted object', EXIT_CODES.stopRecovery, EXIT_CODES.error, new CorruptObjectError('wal/X is corrupted')],
    ['an object of a newer format', EXIT_CODES.stopRecovery, EXIT_CODES.error, new UnsupportedObjectError('wal/X has format version 9')],
    ['a frame that does not decompress', EXIT_CODES.stopRecovery, EXIT_CODES.error, new DecompressionError('zstd', 'unknown frame descriptor')],
    ['a bad command line', EXIT_CODES.stopRecovery, EXIT_CODES.usage, new UsageError('wal-fetch takes two arguments')],
    ['a bad configuration', EXIT_CODES.stopRecovery, EXIT_CODES.usage, new ConfigError('ARCHIVER_REPOSITORY', 'is not set')],
    ['an unforeseen error', EXIT_CODES.stopRecovery, EXIT_CODES.error, new TypeError('Cannot read properties of undefined')],
    ['a thrown non-Error', EXIT_CODES.stopRecovery, EXIT_CODES.error, 'boom'],
  ];

  it.each(failures)('%s: %i in archive recovery, %i in standby mode and outside recovery', (_case, inArchiveRecovery, otherwise, error) => {
    expect(exitForFetchFailure(archiveRecovery, error)).toBe(inArchiveRecovery);
    expect(exitForFetchFailure(standby, error)).toBe(otherwise);
    expect(exitForFetchFailure(none, error)).toBe(otherwise);
  });

  it('never answers archive recovery with a code PostgreSQL reads as "no more WAL" but for "not in the archive"', () => {
    for (const [, , , error] of failures) {
      const code = exitForFetchFailure(archiveRecovery, error);
      if (!(error instanceof WalNotFoundError)) expect(code).toBeGreaterThan(125);
    }
  });

  it('keeps the cause in the message of the error that stops recovery', () => {
    const stop = recoveryFailure(archiveRecovery, new CorruptObjectError('wal/000000010000000000000005 at s3://b is corrupted: CRC-32 mismatch'));
    expect(stop).toBeInstanceOf(RecoveryStopError);
    expect(stop.message).toBe('CorruptObjectError: wal/000000010000000000000005 at s3://b is corrupted: CRC-32 mismatch; recovery stops here rather than end early');
    expect(stop.cause).toBeInstanceOf(CorruptObjectError);
  });

  it('leaves errors as they are outside archive recovery', () => {
    const error = storageFailure();
    expect(recoveryFailure(standby, error)).toBe(error);
    expect(recoveryFailure(none, error)).toBe(error);
  });
});

/**
 * A local archive holding `names` (segments of 1 MiB, or other WAL files), behind a StorageDouble
 * whose calls fail, once the archive is filled, while `failing(op, key)` says so.
 */
async function archiveOf(names: readonly string[], failing: (op: string, key: string) => boolean = () => false) {
  const base = fs.mkdtempSync(path.join(scratch, 'archive-'));
  const pg = fakeDataDirectory(base);
  const { log, lines } = capturingLogger();
  const inner = await openStorage({ kind: 'local', root: path.join(base, 'repo') });
  let filled = false;
  const storage = new StorageDouble(inner, (op, key) => {
    if (filled && failing(op, key)) throw storageFailure(key, op);
  });
  const archive = new Archive({ storage, compression: 'zstd', log });
  const segments = new Map<string, Buffer>();
  for (const [i, name] of names.entries()) {
    segments.set(name, name.endsWith('.history') ? Buffer.from('1\t0/5000000\tno recovery target specified\n') : makeSegment(SYSID, i + 1, SEGMENT_SIZE));
    await archive.push(pg.addReady(name, segments.get(name)!));
  }
  storage.calls.length = 0;
  filled = true;
  cleanups.push(() => archive.close());
  const destination = path.join(pg.walDir, 'RECOVERYXLOG');
  return { archive, storage, segments, log, lines, destination, base };
}

const restore = <T>(source: WalSource<T>, name: string, destination: string, mode: RecoveryMode, deadlineMs = 60_000) =>
  restoreWal(source, name, destination, { mode, deadlineMs, log: capturingLogger().log, backoffMs: 20 });

/** The settled outcome of `promise`: its value or its error, and how long it took. */
async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: Error; ms: number }> {
  const started = Date.now();
  try {
    return { value: await promise, ms: Date.now() - started };
  } catch (error) {
    return { error: error as Error, ms: Date.now() - started };
  }
}

describe('restoreWal in archive recovery', () => {
  it('restores what the archive has', async () => {
    const { archive, segments, destination } = await archiveOf([seg(1), seg(2)]);
    await restore(archive, seg(2), destination, archiveRecovery);
    expect(fs.readFileSync(destination).equals(segments.get(seg(2))!)).toBe(true);
  });

  it('rides out a storage outage shorter than the deadline, saying so in the log', async () => {
    let down = true;
    const { archive, segments, destination, log, lines } = await archiveOf([seg(1), seg(2)], () => down);
    setTimeout(() => (down = false), 400);
    const { error, ms } = await outcome(restoreWal(archive, seg(2), destination, { mode: archiveRecovery, deadlineMs: 10_000, log, backoffMs: 20 }));
    expect(error).toBeUndefined();
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(fs.readFileSync(destination).equals(segments.get(seg(2))!)).toBe(true);
    expect(lines.filter((line) => line.level === 'warn')[0]).toMatchObject({ msg: expect.stringContaining('retrying until the deadline'), wal: seg(2) });
  });

  it('stops recovery (128) when the storage is still down at the deadline, naming the variable and the failure', async () => {
    const { archive, storage, destination } = await archiveOf([seg(1), seg(2)], () => true);
    const { error, ms } = await outcome(restore(archive, seg(2), destination, archiveRecovery, 600));
    expect(error).toBeInstanceOf(RecoveryStopError);
    expect(exitForFetchFailure(archiveRecovery, error)).toBe(EXIT_CODES.stopRecovery);
    expect(error!.message).toMatch(new RegExp(`^${seg(2)} could not be read from the archive within 1 s \\(ARCHIVER_RECOVERY_DEADLINE_SECONDS\\): storage get wal/${seg(2)} .*ECONNREFUSED.*; recovery stops here rather than end early`));
    expect(ms).toBeGreaterThanOrEqual(550);
    expect(ms).toBeLessThan(3000);
    expect(storage.calls.filter((call) => call.op === 'get').length).toBeGreaterThan(1);
    expect(fs.existsSync(destination)).toBe(false);
  });

  it('cuts off a request that hangs at the deadline', async () => {
    const hanging: WalSource<void> = {
      location: 's3://kubedb/archive',
      fetch: (_name, _destination, options) =>
        new Promise((_resolve, reject) => options?.signal?.addEventListener('abort', () => reject(storageFailure()), { once: true })),
      surveyTimeline: async () => ({ listed: false, later: undefined }),
    };
    const { error, ms } = await outcome(restore(hanging, seg(2), '/nowhere', archiveRecovery, 500));
    expect(error).toBeInstanceOf(RecoveryStopError);
    expect(ms).toBeLessThan(2000);
  });

  it('stops recovery at once on a damaged object: no retry', async () => {
    const { archive, storage, destination, base } = await archiveOf([seg(1), seg(2)]);
    const object = path.join(base, 'repo', 'wal', seg(2));
    const bytes = fs.readFileSync(object);
    bytes[bytes.length - 100] ^= 0xff;
    fs.writeFileSync(object, bytes);
    const { error, ms } = await outcome(restore(archive, seg(2), destination, archiveRecovery));
    expect(error).toBeInstanceOf(RecoveryStopError);
    expect(error!.message).toMatch(/^CorruptObjectError: .* recovery stops here rather than end early$/);
    expect(ms).toBeLessThan(5000);
    expect(storage.calls.filter((call) => call.op === 'get')).toHaveLength(1);
    expect(fs.existsSync(destination)).toBe(false);
  });

  it('stops recovery on a gap: a segment missing while a later one of its timeline is archived', async () => {
    const { archive, destination } = await archiveOf([seg(4), seg(6), seg(7)]);
    const { error } = await outcome(restore(archive, seg(5), destination, archiveRecovery));
    expect(error).toBeInstanceOf(WalGapError);
    expect(error!.message).toContain(`${seg(5)} is missing from the archive but ${seg(6)} is there: a gap; recovery stops here rather than end early`);
    expect(exitForFetchFailure(archiveRecovery, error)).toBe(EXIT_CODES.stopRecovery);
  });

  it('takes a later .partial of the timeline for a gap too: the timeline went past the missing segment', async () => {
    const { archive, destination } = await archiveOf([seg(4), `${seg(7)}.partial`]);
    expect((await outcome(restore(archive, seg(5), destination, archiveRecovery))).error).toBeInstanceOf(WalGapError);
  });

  it('answers "not in the archive" (74) at the true end of the archive: nothing later of the timeline', async () => {
    // Another timeline's later segments and its history file are no part of this timeline.
    const { archive, destination, storage } = await archiveOf([seg(4), seg(5), `${seg(5)}.partial`, '00000002.history', seg(5, 2), seg(9, 2)]);
    const { error } = await outcome(restore(archive, seg(6), destination, archiveRecovery));
    expect(error).toBeInstanceOf(WalNotFoundError);
    expect(exitForFetchFailure(archiveRecovery, error)).toBe(EXIT_CODES.notFound);
    expect(storage.calls.filter((call) => call.op === 'list').map((call) => call.key)).toEqual(['wal/00000001']);
    // The new timeline's history file is not a later file of timeline 2 either.
    expect((await outcome(restore(archive, seg(10, 2), destination, archiveRecovery))).error).toBeInstanceOf(WalNotFoundError);
  });

  it.each([
    ['a history file PostgreSQL probes for', '00000003.history'],
    ['a .partial file', `${seg(5)}.partial`],
    ['a .backup file', `${seg(5)}.00000028.backup`],
  ])('answers a missing %s with a plain 74, without looking for later files', async (_case, name) => {
    const { archive, storage, destination } = await archiveOf([seg(4), seg(6)]);
    const { error } = await outcome(restore(archive, name, destination, archiveRecovery));
    expect(error).toBeInstanceOf(WalNotFoundError);
    expect(storage.calls.filter((call) => call.op === 'list')).toHaveLength(0);
  });

  it('never takes a listing that fails for "nothing later": it is retried, then stops recovery', async () => {
    const { archive, destination } = await archiveOf([seg(4), seg(6)], (op) => op === 'list');
    const { error } = await outcome(restore(archive, seg(5), destination, archiveRecovery, 500));
    expect(error).toBeInstanceOf(RecoveryStopError);
    expect(error!.message).toContain('storage list');
  });

  it('fetches again a segment that the listing shows after all (archived between the read and the listing)', async () => {
    let reads = 0;
    const source: WalSource<string> = {
      location: 's3://kubedb/archive',
      fetch: async (name) => {
        if (++reads === 1) throw new WalNotFoundError(name, 's3://kubedb/archive');
        return 'restored';
      },
      surveyTimeline: async (): Promise<TimelineSurvey> => ({ listed: true, later: seg(6) }),
    };
    expect(await restore(source, seg(5), '/nowhere', archiveRecovery)).toBe('restored');
    expect(reads).toBe(2);
  });
});

describe('restoreWal in standby mode and outside recovery', () => {
  it.each([standby, none])('%s: a storage failure at once, as it is (exit 1: PostgreSQL retries)', async (mode) => {
    const { archive, storage, destination } = await archiveOf([seg(1), seg(2)], () => true);
    const { error, ms } = await outcome(restore(archive, seg(2), destination, mode));
    expect(error).toBeInstanceOf(StorageError);
    expect(exitForFetchFailure(mode, error)).toBe(EXIT_CODES.error);
    expect(ms).toBeLessThan(5000);
    expect(storage.calls.filter((call) => call.op === 'get')).toHaveLength(1);
  });

  it.each([standby, none])('%s: a missing segment is a plain miss even with later ones archived (a standby asks ahead of the primary)', async (mode) => {
    const { archive, storage, destination } = await archiveOf([seg(4), seg(6)]);
    expect((await outcome(restore(archive, seg(5), destination, mode))).error).toBeInstanceOf(WalNotFoundError);
    expect(storage.calls.filter((call) => call.op === 'list')).toHaveLength(0);
  });
});

describe('the background archiver\'s prefetcher', () => {
  it('never turns a storage failure into "not in the archive": a download that failed only means the archive is asked again', async () => {
    let down = false;
    const { archive, segments, base } = await archiveOf([seg(1), seg(2), seg(3)], (op, key) => down && op === 'get' && key === `wal/${seg(2)}`);
    const spool = new Spool(path.join(base, 'spool'), spoolOwner(`file://${path.join(base, 'repo')}`, undefined));
    await spool.claim();
    await spool.recordBoot();
    const { log } = capturingLogger();
    const prefetcher = new Prefetcher(archive, spool, 2, 2, log);
    cleanups.push(() => prefetcher.close());
    const restored = path.join(base, 'restored');
    fs.mkdirSync(restored);
    down = true;
    // Serving segment 1 starts the downloads of 2 (which fails) and 3.
    await prefetcher.fetch(seg(1), path.join(restored, 'one'));
    await new Promise((r) => setTimeout(r, 300));
    expect(fs.existsSync(spool.prefetchPath(seg(2)))).toBe(false);
    const standbyAnswer = await outcome(restore(prefetcher, seg(2), path.join(restored, 'two'), standby));
    expect(standbyAnswer.error).toBeInstanceOf(StorageError);
    const recoveryAnswer = await outcome(restore(prefetcher, seg(2), path.join(restored, 'two'), archiveRecovery, 300));
    expect(recoveryAnswer.error).toBeInstanceOf(RecoveryStopError);
    down = false;
    await restore(prefetcher, seg(2), path.join(restored, 'two'), archiveRecovery);
    expect(fs.readFileSync(path.join(restored, 'two')).equals(segments.get(seg(2))!)).toBe(true);
  });
});
