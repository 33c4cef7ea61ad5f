/**
 * The restore's part writer, driven as the tar reader drives it (entry, data, entryEnd), onto real
 * files: what it writes, and which files it fsyncs. A chain's restore writes a file once per
 * layer that holds it (the full backup's copy, then each delta's pages); the file is synced once,
 * at its last write, whose fsync covers what the earlier layers wrote to it.
 *
 * A restore that syncs writes whole files and ranges around the page cache (O_DIRECT), in aligned
 * blocks, and a file's last bytes short of a block the ordinary way; a file system that refuses
 * direct I/O gets the ordinary writes, the same bytes.
 *
 * fsync, open and write are observed through pass-through spies on node:fs (test doubles named as
 * such: the real calls run), which record the path each synced descriptor names (/proc/self/fd)
 * and which files were opened for direct I/O. To play a file system that refuses direct I/O, or a
 * disk that fails, the spies can answer EINVAL or EIO instead of the real call.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { crc32 } from '../../../archiver/src/crc32';
import { formatChecksum } from '../../../archiver/src/envelope';
import { PartWriter } from '../../../archiver/src/backup/part-writer';
import { PAX_DELTA, PAX_FILE_SIZE, PAX_OFFSET } from '../../../archiver/src/backup/part-stream';
import { encodeDeltaHeader } from '../../../archiver/src/backup/page-delta';
import type { ExpectedPiece } from '../../../archiver/src/backup/restore-plan';

const synced = vi.hoisted(() => [] as string[]);
/** Files opened with O_DIRECT, and what the spies play: a refusal of direct I/O, or a failing disk. */
const direct = vi.hoisted(() => ({ opened: [] as string[], fds: new Set<number>(), writes: 0, refuse: undefined as undefined | 'open' | 'write' | 'eio', failAtWrite: 1, delayMs: 0 }));

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const record = (fd: number) => synced.push(real.readlinkSync(`/proc/self/fd/${fd}`));
  const errno = (code: string, syscall: string) => Object.assign(new Error(`${code}: played by the test, ${syscall}`), { code, syscall });
  const fsync = (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
    record(fd);
    real.fsync(fd, callback);
  };
  const fsyncSync = (fd: number) => {
    record(fd);
    real.fsyncSync(fd);
  };
  const openSync = (file: string, flags: number | string, mode?: number) => {
    const isDirect = typeof flags === 'number' && (flags & real.constants.O_DIRECT) !== 0;
    if (isDirect && direct.refuse === 'open') throw errno('EINVAL', 'open');
    const fd = real.openSync(file, flags, mode);
    if (isDirect) {
      direct.opened.push(file);
      direct.fds.add(fd);
    }
    return fd;
  };
  const closeSync = (fd: number) => {
    direct.fds.delete(fd);
    real.closeSync(fd);
  };
  // The asynchronous write of a direct block: (fd, buffer, offset, length, position, callback).
  const write = (fd: number, buffer: Buffer, offset: number, length: number, position: number, callback: (error: NodeJS.ErrnoException | null, written: number) => void) => {
    if (direct.fds.has(fd) && direct.refuse && direct.refuse !== 'open' && ++direct.writes >= direct.failAtWrite) {
      setImmediate(() => callback(errno(direct.refuse === 'write' ? 'EINVAL' : 'EIO', 'write'), 0));
      return;
    }
    if (direct.fds.has(fd) && direct.delayMs > 0) setTimeout(() => real.write(fd, buffer, offset, length, position, callback), direct.delayMs);
    else real.write(fd, buffer, offset, length, position, callback);
  };
  const spies = { fsync, fsyncSync, openSync, closeSync, write };
  return { ...real, default: { ...real, ...spies }, ...spies };
});

const PAGE = 8192;
const MTIME = 1_700_000_000;

let target: string;
beforeEach(() => {
  target = mkdtempSync(path.join(tmpdir(), 'part-writer-'));
  synced.length = 0;
  Object.assign(direct, { opened: [], writes: 0, refuse: undefined, failAtWrite: 1, delayMs: 0 });
});
afterEach(() => rmSync(target, { recursive: true, force: true }));

function piece(file: string, bytes: Buffer, action: ExpectedPiece['action'], extra: Partial<ExpectedPiece> = {}): ExpectedPiece {
  return { path: file, size: bytes.length, mode: 0o600, mtime: MTIME, checksum: formatChecksum(crc32(bytes)), action, ...extra };
}

/**
 * Feeds one part's files to a writer, as the tar reader would (waiting for room between chunks),
 * and waits for its fsyncs. `contents` is keyed by the piece's path, or path@offset for a range.
 */
async function writePart(pieces: readonly ExpectedPiece[], contents: ReadonlyMap<string, Buffer>, sync = true, chunkSizes: readonly number[] = [100]): Promise<void> {
  const writer = new PartWriter({ target, pieces, directories: [], sync, what: 'part 0 of the test backup', onBytes: () => undefined });
  try {
    for (const p of pieces) {
      const pax: Record<string, string> = p.delta ? { [PAX_DELTA]: '1' } : {};
      if (p.offset !== undefined) Object.assign(pax, { [PAX_OFFSET]: String(p.offset), [PAX_FILE_SIZE]: String(p.fileSize) });
      writer.entry({ name: p.path, type: 'file', size: p.size, mode: p.mode, mtime: p.mtime, pax });
      const bytes = contents.get(p.offset === undefined ? p.path : `${p.path}@${p.offset}`)!;
      // In chunks of these sizes, then the rest, as a stream delivers them.
      let at = 0;
      for (const size of [...chunkSizes, bytes.length]) {
        writer.data(bytes.subarray(at, Math.min(at + size, bytes.length)));
        at = Math.min(at + size, bytes.length);
        await writer.room();
        // The next chunk comes at a later turn of the event loop, as a stream's do.
        await new Promise((resolve) => setImmediate(resolve));
      }
      writer.entryEnd();
    }
  } catch (error) {
    await writer.abandon();
    throw error;
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

describe('a restore that syncs: whole files and ranges written around the page cache (O_DIRECT)', () => {
  const MIB = 1024 * 1024;
  const read = (file: string) => readFileSync(path.join(target, file));

  it('writes a file of several mebibytes in aligned blocks, its last odd bytes the ordinary way, with its mode and time, synced once', async () => {
    // 2.5 MiB and 100 bytes: blocks from more than one staging buffer, then a tail short of a
    // block. The disk is slow: the last blocks are still being written when the file's end comes.
    direct.delayMs = 30;
    const relation = randomBytes(2.5 * MIB + 100);
    await writePart([piece('16384', relation, 'write', { final: true, mode: 0o640 })], new Map([['16384', relation]]), true, [100, 333_333, MIB]);
    expect(read('16384').equals(relation)).toBe(true);
    expect(direct.opened.map((file) => path.basename(file))).toEqual(['16384']);
    const stat = statSync(path.join(target, '16384'));
    expect(stat.mode & 0o777).toBe(0o640);
    // Set once the direct writes were done: a write after it would have moved it.
    expect(stat.mtimeMs).toBe(MTIME * 1000);
    expect(synced.map((file) => path.basename(file))).toEqual(['16384']);
  });

  it('writes a file smaller than a block, and an empty one, right', async () => {
    const version = Buffer.from('15\n');
    const empty = Buffer.alloc(0);
    await writePart([piece('PG_VERSION', version, 'write', { final: true }), piece('empty', empty, 'write', { final: true })], new Map([['PG_VERSION', version], ['empty', empty]]));
    expect(read('PG_VERSION').toString()).toBe('15\n');
    expect(read('empty').length).toBe(0);
    expect(synced.map((file) => path.basename(file)).sort()).toEqual(['PG_VERSION', 'empty']);
  });

  it('writes a range at an aligned offset direct, one at an odd offset the ordinary way, each where it goes', async () => {
    const first = randomBytes(MIB);
    const second = randomBytes(MIB + 4096);
    const odd = randomBytes(5000);
    const fileSize = first.length + second.length;
    await writePart(
      [
        piece('16400', second, 'write', { offset: MIB, fileSize, final: true }),
        piece('16400', first, 'write', { offset: 0, fileSize, final: true }),
        piece('16401', odd, 'write', { offset: 100, fileSize: 5100, final: true }),
      ],
      new Map([['16400@0', first], [`16400@${MIB}`, second], ['16401@100', odd]]),
    );
    expect(read('16400').equals(Buffer.concat([first, second]))).toBe(true);
    expect(read('16401').subarray(100).equals(odd)).toBe(true);
    expect(direct.opened.map((file) => path.basename(file))).toEqual(['16400', '16400']);
  });

  it('writes the ordinary way when the restore does not sync', async () => {
    const relation = randomBytes(MIB);
    await writePart([piece('16384', relation, 'write', { final: true })], new Map([['16384', relation]]), false);
    expect(read('16384').equals(relation)).toBe(true);
    expect(direct.opened).toEqual([]);
  });

  it('on a file system that refuses O_DIRECT at open, writes the ordinary way and does not ask again for the part\'s next files', async () => {
    direct.refuse = 'open';
    const a = randomBytes(MIB + 10);
    const b = randomBytes(3 * 8192);
    await writePart([piece('16384', a, 'write', { final: true }), piece('16385', b, 'write', { final: true })], new Map([['16384', a], ['16385', b]]));
    expect(read('16384').equals(a)).toBe(true);
    expect(read('16385').equals(b)).toBe(true);
    expect(direct.opened).toEqual([]);
    expect(synced.map((file) => path.basename(file))).toEqual(['16384', '16385']);
  });

  it('when a direct write is refused half-way, writes the file on the ordinary way from where it stood: the same bytes', async () => {
    direct.refuse = 'write';
    direct.failAtWrite = 2;
    const relation = randomBytes(4 * MIB + 8192);
    const next = randomBytes(MIB);
    // Refused while bytes short of a block are staged, before the next chunk comes.
    await writePart([piece('16384', relation, 'write', { final: true }), piece('16385', next, 'write', { final: true })], new Map([['16384', relation], ['16385', next]]), true, [MIB, MIB + 5000, 3000]);
    expect(read('16384').equals(relation)).toBe(true);
    expect(read('16385').equals(next)).toBe(true);
    // The next file was not tried direct.
    expect(direct.opened.map((file) => path.basename(file))).toEqual(['16384']);
  });

  it('fails with a RestoreWriteError naming the file when the disk fails a direct write, and leaves no descriptor open', async () => {
    direct.refuse = 'eio';
    const relation = randomBytes(3 * MIB);
    const failure = writePart([piece('16384', relation, 'write', { final: true })], new Map([['16384', relation]]), true, [MIB, MIB]);
    await expect(failure).rejects.toMatchObject({ name: 'RestoreWriteError', message: expect.stringContaining('16384') });
    expect(direct.fds.size).toBe(0);
  });
});
