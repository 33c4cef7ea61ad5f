/** What the sidecar's metrics look at (archiver/src/metrics/looks.ts): the backlog, the archived position, the lag in seconds. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LagClock, archivedPosition, readBacklog, segmentStart } from '../../../archiver/src/metrics/looks';
import { errorReason } from '../../../archiver/src/metrics/recorder';

const SEGMENT = 16 * 1024 * 1024;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-looks-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('readBacklog', () => {
  it('counts the .ready files, segments at the segment size and the others by their size, and ages the next one to archive', async () => {
    const wal = path.join(scratch, 'pg_wal');
    fs.mkdirSync(path.join(wal, 'archive_status'), { recursive: true });
    const ready = (name: string, size: number, ageSeconds: number) => {
      fs.writeFileSync(path.join(wal, name), Buffer.alloc(size));
      const marker = path.join(wal, 'archive_status', `${name}.ready`);
      fs.writeFileSync(marker, '');
      const at = new Date(Date.now() - ageSeconds * 1000);
      fs.utimesSync(marker, at, at);
    };
    expect(await readBacklog(wal)).toEqual({ files: 0, bytes: 0, oldestAgeSeconds: 0, oldestSegment: undefined });
    ready('000000010000000000000007', 1024, 30);
    ready('000000010000000000000006', 1024, 60);
    ready('00000002.history', 42, 10);
    fs.writeFileSync(path.join(wal, 'archive_status', '000000010000000000000005.done'), '');
    const backlog = await readBacklog(wal, SEGMENT);
    expect(backlog).toMatchObject({ files: 3, bytes: 2 * SEGMENT + 42, oldestSegment: '000000010000000000000006' });
    // PostgreSQL archives history files first: the history file is the next one, 10 s old.
    expect(backlog.oldestAgeSeconds).toBeGreaterThan(9);
    expect(backlog.oldestAgeSeconds).toBeLessThan(15);
  });

  it('fails for a directory that is not a pg_wal (the metrics leave the backlog out)', async () => {
    await expect(readBacklog(path.join(scratch, 'nowhere'))).rejects.toThrow(/ENOENT/);
  });
});

describe('the archived position and the lag', () => {
  const at = (name: string, offset = 0) => segmentStart(name, SEGMENT) + BigInt(offset);

  it('a segment name is its start: log * 2^32 + segment * size', () => {
    expect(segmentStart('000000010000000000000003', SEGMENT)).toBe(3n * BigInt(SEGMENT));
    expect(segmentStart('0000000200000001000000FF', SEGMENT)).toBe((1n << 32n) + 255n * BigInt(SEGMENT));
  });

  it('is the start of the oldest segment waiting, else of the segment being written, else the insert position just after a switch', () => {
    expect(archivedPosition(at('000000010000000000000009', 5000), '000000010000000000000006', SEGMENT)).toBe(at('000000010000000000000006'));
    expect(archivedPosition(at('000000010000000000000009', 5000), undefined, SEGMENT)).toBe(at('000000010000000000000009'));
    // The header of the first page (40 bytes) is not WAL waiting to be archived.
    expect(archivedPosition(at('000000010000000000000009', 40), undefined, SEGMENT)).toBe(at('000000010000000000000009', 40));
  });

  it('the lag in seconds: since the first insert position seen past the archived one, at least the oldest ready file\'s age', () => {
    const clock = new LagClock();
    clock.sample(1_000, 100n);
    clock.sample(16_000, 200n);
    clock.sample(31_000, 300n);
    expect(clock.lagSeconds(50n, 31_000)).toBe(30);
    expect(clock.lagSeconds(50n, 31_000, 45)).toBe(45);
    expect(clock.lagSeconds(150n, 31_000)).toBe(15);
    expect(clock.lagSeconds(300n, 31_000)).toBe(0);
    // WAL written after the last sample counts from the first sample that sees it.
    clock.sample(46_000, 400n);
    expect(clock.lagSeconds(300n, 61_000)).toBe(15);
  });

  it('keeps its samples bounded, and starts over when the position goes back (another server on the volume)', () => {
    const clock = new LagClock(100);
    for (let i = 1; i <= 1000; i++) clock.sample(i * 1000, BigInt(i));
    expect(clock.lagSeconds(0n, 1_000_000)).toBeGreaterThan(900);
    clock.sample(1_001_000, 5n);
    expect(clock.lagSeconds(0n, 1_002_000)).toBe(1);
  });
});

describe('errorReason', () => {
  it('is an error\'s class name, never its message', () => {
    expect(errorReason(Object.assign(new Error('connect ECONNREFUSED s3://kubedb/x'), { name: 'StorageError' }))).toBe('StorageError');
    expect(errorReason(Object.assign(new Error('x'), { name: 'has spaces and /paths' }))).toBe('Error');
    expect(errorReason('a string')).toBe('Error');
    expect(errorReason(undefined)).toBe('Error');
  });
});
