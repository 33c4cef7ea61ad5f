/**
 * The restore's part writer, driven as the tar reader drives it (entry, data, entryEnd), onto real
 * files: what it writes, and which files it fsyncs. A chain's restore writes a file once per
 * layer that holds it (the full backup's copy, then each delta's pages); the file is synced once,
 * at its last write, whose fsync covers what the earlier layers wrote to it.
 *
 * fsync is observed through a pass-through spy on node:fs (a test double named as such: the real
 * fsync runs), which records the path each synced descriptor names (/proc/self/fd).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { crc32 } from '../../../archiver/src/crc32';
import { formatChecksum } from '../../../archiver/src/envelope';
import { PartWriter } from '../../../archiver/src/backup/part-writer';
import { PAX_DELTA } from '../../../archiver/src/backup/part-stream';
import { encodeDeltaHeader } from '../../../archiver/src/backup/page-delta';
import type { ExpectedPiece } from '../../../archiver/src/backup/restore-plan';

const synced = vi.hoisted(() => [] as string[]);

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const record = (fd: number) => synced.push(real.readlinkSync(`/proc/self/fd/${fd}`));
  const fsync = (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
    record(fd);
    real.fsync(fd, callback);
  };
  const fsyncSync = (fd: number) => {
    record(fd);
    real.fsyncSync(fd);
  };
  return { ...real, default: { ...real, fsync, fsyncSync }, fsync, fsyncSync };
});

const PAGE = 8192;
const MTIME = 1_700_000_000;

let target: string;
beforeEach(() => {
  target = mkdtempSync(path.join(tmpdir(), 'part-writer-'));
  synced.length = 0;
});
afterEach(() => rmSync(target, { recursive: true, force: true }));

function piece(file: string, bytes: Buffer, action: ExpectedPiece['action'], extra: Partial<ExpectedPiece> = {}): ExpectedPiece {
  return { path: file, size: bytes.length, mode: 0o600, mtime: MTIME, checksum: formatChecksum(crc32(bytes)), action, ...extra };
}

/** Feeds one part's files to a writer, as the tar reader would, and waits for its fsyncs. */
async function writePart(pieces: readonly ExpectedPiece[], contents: ReadonlyMap<string, Buffer>, sync = true): Promise<void> {
  const writer = new PartWriter({ target, pieces, directories: [], sync, what: 'part 0 of the test backup', onBytes: () => undefined });
  for (const p of pieces) {
    writer.entry({ name: p.path, type: 'file', size: p.size, mode: p.mode, mtime: p.mtime, pax: p.delta ? { [PAX_DELTA]: '1' } : {} });
    const bytes = contents.get(p.path)!;
    // In two chunks, as a stream delivers them.
    writer.data(bytes.subarray(0, 100));
    writer.data(bytes.subarray(100));
    writer.entryEnd();
  }
  await writer.finish();
}

function pages(count: number, fill: number): Buffer {
  return Buffer.alloc(count * PAGE, fill);
}

describe('a full backup restored alone (every piece final)', () => {
  it('writes each file and fsyncs each one once', async () => {
    const relation = pages(4, 1);
    const version = Buffer.from('15\n');
    await writePart([piece('16384', relation, 'write', { final: true }), piece('PG_VERSION', version, 'write', { final: true })], new Map([['16384', relation], ['PG_VERSION', version]]));
    expect(readFileSync(path.join(target, '16384')).equals(relation)).toBe(true);
    expect(readFileSync(path.join(target, 'PG_VERSION'), 'utf8')).toBe('15\n');
    expect(synced.map((file) => path.basename(file)).sort()).toEqual(['16384', 'PG_VERSION']);
  });

  it('fsyncs nothing when the restore is told not to sync', async () => {
    const relation = pages(2, 1);
    await writePart([piece('16384', relation, 'write', { final: true })], new Map([['16384', relation]]), false);
    expect(readFileSync(path.join(target, '16384')).equals(relation)).toBe(true);
    expect(synced).toEqual([]);
  });
});

describe('a chain: the full backup, then a delta onto it', () => {
  it('syncs a file the delta writes again only at the delta, once; a file only the full backup holds at once', async () => {
    // The full backup's layer: the relation (the delta changes it later) and a file it alone holds.
    const base = pages(4, 1);
    const other = pages(1, 7);
    await writePart([piece('16384', base, 'write'), piece('16385', other, 'write', { final: true })], new Map([['16384', base], ['16385', other]]));
    expect(synced.map((file) => path.basename(file))).toEqual(['16385']);

    // The delta's layer: page 2 of the relation changed.
    const changed = pages(1, 9);
    const blob = Buffer.concat([encodeDeltaHeader(base.length, PAGE, [2]), changed]);
    await writePart([piece('16384', blob, 'apply', { final: true, delta: true })], new Map([['16384', blob]]));
    expect(synced.map((file) => path.basename(file))).toEqual(['16385', '16384']);

    const restored = readFileSync(path.join(target, '16384'));
    expect(restored.equals(Buffer.concat([pages(2, 1), changed, pages(1, 1)]))).toBe(true);
  });
});
