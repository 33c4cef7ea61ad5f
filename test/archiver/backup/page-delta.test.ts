/**
 * The page-level primitives of delta base backups: which files get page deltas, which pages a
 * delta keeps (by page LSN), the blob that stores them and its application onto the base's copy
 * of a file — first on synthetic pages, then on a real PostgreSQL 15 table.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DeltaApplier,
  deltaBlobChunks,
  deltaBlobSize,
  encodeDeltaHeader,
  isNewPage,
  isPagedRelationFile,
  pageLsn,
  readDeltaHeader,
  scanChangedBlocks,
} from '../../../archiver/src/backup/page-delta';
import { parseLsn } from '../../../archiver/src/backup/lsn';
import { CorruptObjectError } from '../../../archiver/src/errors';
import { PostgresCluster } from '../../../testkit/postgres';

const PAGE = 8192;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'page-delta-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
let fileCounter = 0;
const scratchFile = (content: Buffer): string => {
  const file = path.join(scratch, `file-${++fileCounter}`);
  fs.writeFileSync(file, content);
  return file;
};

/** A deterministic generator of pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fake initialised page: pd_lsn = `lsn`, pd_upper ≠ 0, the rest filled from `seed`. */
function page(lsn: bigint, seed: number, pageSize = PAGE): Buffer {
  const next = random(seed);
  const buf = Buffer.alloc(pageSize);
  for (let i = 16; i < pageSize; i++) buf[i] = Math.floor(next() * 256);
  buf.writeUInt32LE(Number(lsn >> 32n), 0);
  buf.writeUInt32LE(Number(lsn & 0xffffffffn), 4);
  buf.writeUInt16LE(24, 12); // pd_lower
  buf.writeUInt16LE(pageSize - 64, 14); // pd_upper
  return buf;
}

const zeroPage = (pageSize = PAGE) => Buffer.alloc(pageSize);

/** Scans the file holding `content` as a delta against a base of `baseSize` bytes. */
async function scan(content: Buffer, threshold: bigint, baseSize: number, pageSize = PAGE): Promise<number[]> {
  const handle = await fsp.open(scratchFile(content), 'r');
  try {
    return await scanChangedBlocks(handle, content.length, { threshold, baseSize, pageSize });
  } finally {
    await handle.close();
  }
}

/** The delta blob of the file at `file` (scanned against a base of `baseSize` bytes). */
async function blobOf(file: string, threshold: bigint, baseSize: number, pageSize = PAGE): Promise<{ blob: Buffer; blocks: number[] }> {
  const handle = await fsp.open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    const blocks = await scanChangedBlocks(handle, size, { threshold, baseSize, pageSize });
    const chunks: Buffer[] = [];
    for await (const chunk of deltaBlobChunks(handle, size, pageSize, blocks)) chunks.push(chunk);
    const blob = Buffer.concat(chunks);
    expect(blob.length).toBe(deltaBlobSize(size, pageSize, blocks));
    return { blob, blocks };
  } finally {
    await handle.close();
  }
}

/** `blob` applied onto a copy of `base` (undefined: a new empty file), fed in the chunk sizes `sizes` gives. */
function apply(base: Buffer | undefined, blob: Buffer, sizes: () => number = () => blob.length, what = 'base/5/16384 from part 0001'): Buffer {
  const file = path.join(scratch, `applied-${++fileCounter}`);
  fs.writeFileSync(file, base ?? Buffer.alloc(0));
  const fd = fs.openSync(file, 'r+');
  try {
    const applier = new DeltaApplier(fd, what);
    for (let at = 0; at < blob.length; ) {
      const size = Math.max(1, sizes());
      applier.write(blob.subarray(at, at + size));
      at += size;
    }
    applier.end();
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(file);
}

describe('which files get page deltas', () => {
  it.each([
    'base/1/1259',
    'base/16384/16385',
    'base/16384/16385.1',
    'base/16384/16385.12',
    'global/1262',
    'global/1262.3',
  ])('a main-fork segment: %s', (file) => {
    expect(isPagedRelationFile(file)).toBe(true);
  });

  it.each([
    ['the free space map', 'base/16384/16385_fsm'],
    ['the visibility map (bit clears do not bump its LSN)', 'base/16384/16385_vm'],
    ['a segment of the visibility map', 'base/16384/16385_vm.1'],
    ['the init fork', 'base/16384/16385_init'],
    ['the relation mapper', 'base/16384/pg_filenode.map'],
    ['the relation mapper of global', 'global/pg_filenode.map'],
    ['PG_VERSION', 'base/16384/PG_VERSION'],
    ['the relcache init file', 'base/16384/pg_internal.init'],
    ['a temporary relation', 'base/16384/t3_16390'],
    ['a temporary relation segment', 'base/16384/t3_16390.1'],
    ['pg_control', 'global/pg_control'],
    ['a database directory', 'base/16384'],
    ['a file nested deeper', 'base/16384/16385/1'],
    ['a relation in a tablespace', 'pg_tblspc/16400/PG_15_202209061/16384/16385'],
    ['a transaction status file', 'pg_xact/0000'],
    ['a WAL segment', 'pg_wal/000000010000000000000001'],
    ['a path with a leading ./', './base/16384/16385'],
    ['a segment number without digits', 'base/16384/16385.'],
    ['a relation number with a sign', 'base/16384/-16385'],
  ])('not %s: %s', (_, file) => {
    expect(isPagedRelationFile(file)).toBe(false);
  });
});

describe('reading a page header', () => {
  it('reads pd_lsn as two little-endian 32-bit halves, high first', () => {
    const buf = Buffer.alloc(2 * PAGE);
    buf.set([0x16, 0, 0, 0, 0x48, 0xd8, 0x74, 0xb3], PAGE);
    expect(pageLsn(buf, PAGE)).toBe(parseLsn('16/B374D848'));
    expect(pageLsn(buf)).toBe(0n);
    expect(pageLsn(page(parseLsn('1/2'), 1))).toBe(0x1_0000_0002n);
  });

  it('takes a page whose pd_upper is 0 for new (PageIsNew), whatever its LSN', () => {
    expect(isNewPage(zeroPage())).toBe(true);
    expect(isNewPage(page(5n, 1))).toBe(false);
    const uninitialised = page(5n, 1);
    uninitialised.writeUInt16LE(0, 14);
    expect(isNewPage(uninitialised)).toBe(true);
    const twoPages = Buffer.concat([page(5n, 1), zeroPage()]);
    expect(isNewPage(twoPages, PAGE)).toBe(true);
  });
});

describe('which pages a delta keeps', () => {
  const threshold = 1000n;

  it('keeps exactly the pages whose LSN is at or above the threshold', async () => {
    const file = Buffer.concat([page(999n, 1), page(1000n, 2), page(1001n, 3), page(1n, 4), page(0x1_0000_0000n, 5), page(998n, 6)]);
    expect(await scan(file, threshold, file.length)).toEqual([1, 2, 4]);
  });

  it('compares the high half of the LSN first (a low half above the threshold\'s does not make a page newer)', async () => {
    const file = Buffer.concat([page(0x0_ffff_ffffn, 1), page(0x1_0000_0000n, 2), page(0x1_0000_0001n, 3), page(0x2_0000_0000n, 4)]);
    expect(await scan(file, 0x1_0000_0001n, file.length)).toEqual([2, 3]);
  });

  it('keeps new pages, even with an old LSN', async () => {
    const uninitialised = page(5n, 3);
    uninitialised.writeUInt16LE(0, 14);
    const file = Buffer.concat([page(5n, 1), zeroPage(), page(5n, 2), uninitialised]);
    expect(await scan(file, threshold, file.length)).toEqual([1, 3]);
  });

  it('keeps every page not wholly inside the base\'s copy (the base was shorter, or had no such file)', async () => {
    const file = Buffer.concat([page(5n, 1), page(5n, 2), page(5n, 3), page(5n, 4)]);
    expect(await scan(file, threshold, 2 * PAGE)).toEqual([2, 3]);
    // A base copy ending inside a page: that page too.
    expect(await scan(file, threshold, 2 * PAGE + 100)).toEqual([2, 3]);
    expect(await scan(file, threshold, 0)).toEqual([0, 1, 2, 3]);
    // A base longer than the file now: only the LSNs decide.
    expect(await scan(file, threshold, 10 * PAGE)).toEqual([]);
  });

  it('keeps a trailing partial page', async () => {
    const file = Buffer.concat([page(5n, 1), page(5n, 2), page(5n, 3).subarray(0, 100)]);
    expect(await scan(file, threshold, file.length)).toEqual([2]);
    // Shorter than a page header.
    expect(await scan(Buffer.concat([page(5n, 1), Buffer.from([1, 2, 3])]), threshold, 10 * PAGE)).toEqual([1]);
  });

  it('finds nothing in an empty file', async () => {
    expect(await scan(Buffer.alloc(0), threshold, 0)).toEqual([]);
  });

  it('keeps, as zero pages, what a file lost after it was stat\'ed', async () => {
    const pages = Array.from({ length: 10 }, (_, i) => page(i === 2 ? 2000n : 5n, i));
    const file = scratchFile(Buffer.concat(pages));
    const handle = await fsp.open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      fs.truncateSync(file, 6 * PAGE + 100);
      expect(await scanChangedBlocks(handle, size, { threshold, baseSize: size, pageSize: PAGE })).toEqual([2, 6, 7, 8, 9]);
      fs.truncateSync(file, 0);
      expect(await scanChangedBlocks(handle, size, { threshold, baseSize: size, pageSize: PAGE })).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      await handle.close();
    }
  });

  it('scans a file larger than one read (1 MiB) and pages of other sizes', async () => {
    const changed = new Set([0, 127, 128, 129, 255, 256, 299]);
    const pages = Array.from({ length: 300 }, (_, i) => page(changed.has(i) ? 1000n + BigInt(i) : 999n, i));
    expect(await scan(Buffer.concat(pages), threshold, 300 * PAGE)).toEqual([...changed]);
    const small = Array.from({ length: 2000 }, (_, i) => page(i % 700 === 3 ? 1000n : 999n, i, 1024));
    expect(await scan(Buffer.concat(small), threshold, 2000 * 1024, 1024)).toEqual([3, 703, 1403]);
  });

  it('fails on a page size that is not a power of two from 1 KiB to 32 KiB', async () => {
    await expect(scan(page(5n, 1), threshold, 0, 3000)).rejects.toThrow(/page size 3000 is not a power of two/);
    expect(() => deltaBlobSize(PAGE, 65536, [])).toThrow(/page size 65536/);
  });
});

describe('a delta blob', () => {
  it('starts with "PGWD", the version, the page size, the file size, the block numbers, then the pages', async () => {
    const content = Buffer.concat([page(5n, 1), page(2000n, 2), page(5n, 3), page(2000n, 4), page(2000n, 5).subarray(0, 300)]);
    const { blob, blocks } = await blobOf(scratchFile(content), 1000n, content.length);
    expect(blocks).toEqual([1, 3, 4]);
    expect(blob.subarray(0, 24)).toEqual(Buffer.from([
      0x50, 0x47, 0x57, 0x44, 1, 0, 0, 0,
      0, 0, 0x20, 0,
      0, 0, 0, 0, 0, 0, 0x81, 0x2c,
      0, 0, 0, 3,
    ]));
    expect(blob.subarray(24, 36)).toEqual(Buffer.from([0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 4]));
    expect(blob.subarray(36)).toEqual(Buffer.concat([content.subarray(PAGE, 2 * PAGE), content.subarray(3 * PAGE)]));
    expect(blob.length).toBe(36 + 2 * PAGE + 300);
    expect(readDeltaHeader(blob)).toEqual({ pageSize: PAGE, fileSize: 4 * PAGE + 300, blockCount: 3 });
  });

  it('reads runs of consecutive pages at most 1 MiB at a time', async () => {
    const content = Buffer.concat(Array.from({ length: 300 }, (_, i) => page(2000n, i)));
    const handle = await fsp.open(scratchFile(content), 'r');
    try {
      const blocks = [...Array.from({ length: 200 }, (_, i) => i), 250, 251, 299];
      const chunks: Buffer[] = [];
      for await (const chunk of deltaBlobChunks(handle, content.length, PAGE, blocks)) chunks.push(chunk);
      expect(chunks.map((chunk) => chunk.length)).toEqual([24 + 4 * 203, 128 * PAGE, 72 * PAGE, 2 * PAGE, PAGE]);
    } finally {
      await handle.close();
    }
  });

  it('pads with zeros what the file lost since the scan, keeping the size announced', async () => {
    const content = Buffer.concat(Array.from({ length: 6 }, (_, i) => page(2000n, i)));
    const file = scratchFile(content);
    const handle = await fsp.open(file, 'r');
    try {
      const blocks = await scanChangedBlocks(handle, content.length, { threshold: 1000n, baseSize: content.length, pageSize: PAGE });
      fs.truncateSync(file, 3 * PAGE + 10);
      const chunks: Buffer[] = [];
      for await (const chunk of deltaBlobChunks(handle, content.length, PAGE, blocks)) chunks.push(chunk);
      const blob = Buffer.concat(chunks);
      expect(blob.length).toBe(deltaBlobSize(content.length, PAGE, blocks));
      const pages = blob.subarray(24 + 4 * 6);
      expect(pages.subarray(0, 3 * PAGE + 10)).toEqual(content.subarray(0, 3 * PAGE + 10));
      expect(pages.subarray(3 * PAGE + 10).equals(Buffer.alloc(3 * PAGE - 10))).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it('fails on block numbers that are not ascending or lie outside the file', () => {
    expect(() => deltaBlobSize(4 * PAGE, PAGE, [1, 1])).toThrow(RangeError);
    expect(() => deltaBlobSize(4 * PAGE, PAGE, [2, 1])).toThrow(RangeError);
    expect(() => deltaBlobSize(4 * PAGE, PAGE, [4])).toThrow(RangeError);
    expect(() => encodeDeltaHeader(4 * PAGE, PAGE, [-1])).toThrow(RangeError);
    expect(deltaBlobSize(4 * PAGE + 1, PAGE, [4])).toBe(24 + 4 + 1);
  });
});

describe('applying a delta onto the base\'s copy', () => {
  const threshold = 1000n;
  /** A base of 12 pages and the same file later: pages 2, 3 and 7 changed, page 9 zeroed. */
  const base = Buffer.concat(Array.from({ length: 12 }, (_, i) => page(100n + BigInt(i), i)));
  const later = (pages: number): Buffer => {
    const out = Buffer.concat(Array.from({ length: Math.ceil(pages) }, (_, i) => (i < 12 ? page(100n + BigInt(i), i) : page(3000n, 100 + i))));
    for (const i of [2, 3, 7]) if (i < pages) page(2000n + BigInt(i), 50 + i).copy(out, i * PAGE);
    if (pages > 9) out.fill(0, 9 * PAGE, 10 * PAGE);
    return out.subarray(0, Math.round(pages * PAGE));
  };

  it.each([
    ['as long as the base', 12],
    ['shorter than the base (truncated)', 8],
    ['shorter than the base, ending inside a page', 8.5],
    ['longer than the base', 20],
    ['longer than the base, ending inside a page', 15.25],
    ['empty', 0],
  ])('gives the later file byte for byte when it is %s', async (_, pages) => {
    const target = later(pages);
    const { blob, blocks } = await blobOf(scratchFile(target), threshold, base.length);
    expect(blocks.length).toBeLessThan(Math.ceil(pages) || 1);
    const applied = apply(base, blob);
    expect(applied.length).toBe(target.length);
    expect(applied.equals(target)).toBe(true);
  });

  it('gives the file byte for byte when the base had none (a new empty file)', async () => {
    const target = later(15.5);
    const { blob, blocks } = await blobOf(scratchFile(target), threshold, 0);
    expect(blocks.length).toBe(16);
    expect(apply(undefined, blob).equals(target)).toBe(true);
  });

  it('shortens a base longer than the file even when no page changed', async () => {
    const target = base.subarray(0, 5 * PAGE);
    const { blob, blocks } = await blobOf(scratchFile(target), threshold, base.length);
    expect(blocks).toEqual([]);
    expect(apply(base, blob).equals(target)).toBe(true);
  });

  it.each([
    ['1-byte chunks', () => () => 1],
    ['7-byte chunks', () => () => 7],
    ['random-sized chunks', () => { const next = random(42); return () => 1 + Math.floor(next() * 3 * PAGE); }],
    ['random small chunks', () => { const next = random(7); return () => 1 + Math.floor(next() * 40); }],
  ])('takes the blob in %s, as a tar stream delivers it', async (_, sizes) => {
    for (const pages of [20, 8.5]) {
      const target = later(pages);
      const { blob } = await blobOf(scratchFile(target), threshold, base.length);
      expect(apply(base, blob, sizes()).equals(target)).toBe(true);
    }
  });

  it('applies pages of 1 KiB', async () => {
    const small = Buffer.concat(Array.from({ length: 40 }, (_, i) => page(i % 3 === 0 ? 2000n : 10n, i, 1024)));
    const smallBase = Buffer.concat(Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? page(10n, 500 + i, 1024) : small.subarray(i * 1024, (i + 1) * 1024))));
    const { blob, blocks } = await blobOf(scratchFile(small), threshold, smallBase.length, 1024);
    expect(blocks.length).toBe(10 + 10);
    expect(apply(smallBase, blob, () => 5).equals(small)).toBe(true);
  });
});

describe('a malformed delta blob', () => {
  const what = 'base/5/16384 from part 0003';
  const content = Buffer.concat([page(2000n, 1), page(5n, 2), page(2000n, 3), page(2000n, 4).subarray(0, 500)]);
  /** A valid blob of 3 blocks (0, 2, 3; the last partial), made by hand. */
  const valid = Buffer.concat([encodeDeltaHeader(content.length, PAGE, [0, 2, 3]), content.subarray(0, PAGE), content.subarray(2 * PAGE)]);
  const patched = (offset: number, bytes: number[]): Buffer => {
    const out = Buffer.from(valid);
    out.set(bytes, offset);
    return out;
  };
  const withBlocks = (blocks: number[], fileSize = content.length): Buffer => {
    const header = Buffer.alloc(24 + 4 * blocks.length);
    valid.copy(header, 0, 0, 24);
    header.writeBigUInt64BE(BigInt(fileSize), 12);
    header.writeUInt32BE(blocks.length, 20);
    blocks.forEach((block, i) => header.writeUInt32BE(block, 24 + 4 * i));
    return Buffer.concat([header, Buffer.alloc(blocks.length * PAGE)]);
  };

  it('is valid as made here (the cases below break one thing each)', () => {
    // Block 1 is not in the delta: it comes from the base.
    const base = Buffer.concat([Buffer.alloc(PAGE), content.subarray(PAGE, 2 * PAGE)]);
    expect(apply(base, valid).equals(content)).toBe(true);
  });

  it.each([
    ['a bad magic', patched(0, [0x50, 0x47, 0x57, 0x41]), /is not a page delta: it starts with "PGWA", not the magic "PGWD"/],
    ['an unknown version', patched(4, [2]), /has page delta format version 2; this archiver reads version 1/],
    ['reserved bytes that are not zero', patched(6, [1]), /reserved header bytes/],
    ['a page size that is not a power of two', patched(8, [0, 0, 0x1f, 0x40]), /page size 8000 is not a power of two/],
    ['a page size below 1 KiB', patched(8, [0, 0, 2, 0]), /page size 512 is not a power of two from 1024 to 32768/],
    ['a page size above 32 KiB', patched(8, [0, 1, 0, 0]), /page size 65536/],
    ['a file size out of range', patched(12, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /file size 18446744073709551615 is out of range/],
    ['more blocks than the file has', withBlocks([0, 1, 2, 3, 4]), /announces 5 blocks, more than the 4 of a file/],
    ['a block number repeated', withBlocks([0, 2, 2]), /not strictly ascending \(2 after 2\)/],
    ['block numbers descending', withBlocks([2, 0]), /not strictly ascending \(0 after 2\)/],
    ['a block beyond the end of the file', withBlocks([0, 4]), /block 4 lies beyond the end of the file/],
    ['a block starting at the end of the file', withBlocks([0, 4], 4 * PAGE), /block 4 lies beyond the end of the file \(32768 bytes, pages of 8192\)/],
    ['a block in a file of 0 bytes', withBlocks([0], 0), /announces 1 blocks, more than the 0 of a file of 0 bytes/],
    ['bytes after its last page', Buffer.concat([valid, Buffer.from([0])]), /goes on after its last page/],
    ['bytes after a header of no blocks', Buffer.concat([withBlocks([]), Buffer.alloc(10)]), /goes on after its last page/],
    ['no bytes at all', Buffer.alloc(0), /is truncated: it ends inside its 24-byte header \(0 bytes\)/],
    ['an end inside the header', valid.subarray(0, 23), /is truncated: it ends inside its 24-byte header \(23 bytes\)/],
    ['an end inside the block numbers', valid.subarray(0, 30), /is truncated: it ends after 1 of its 3 block numbers/],
    ['an end before the pages', valid.subarray(0, 36), /is truncated: it ends in page 1 of 3 \(block 0, 0 of 8192 bytes\)/],
    ['an end inside the last (partial) page', valid.subarray(0, valid.length - 1), /is truncated: it ends in page 3 of 3 \(block 3, 499 of 500 bytes\)/],
  ])('fails on %s, naming the object', (_, blob, message) => {
    for (const sizes of [() => blob.length, () => 1, () => 7]) {
      let error: unknown;
      try {
        apply(Buffer.alloc(0), blob, sizes, what);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(CorruptObjectError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message.startsWith(what)).toBe(true);
    }
  });

  it('accepts an empty file with no blocks, and empties the target', () => {
    const blob = withBlocks([], 0);
    expect(apply(content, blob).length).toBe(0);
  });

  it('keeps failing once it has failed', () => {
    const fd = fs.openSync(scratchFile(Buffer.alloc(0)), 'r+');
    try {
      const applier = new DeltaApplier(fd, what);
      expect(() => applier.write(patched(0, [0]))).toThrow(CorruptObjectError);
      expect(() => applier.write(Buffer.alloc(1))).toThrow(/is not a page delta/);
      expect(() => applier.end()).toThrow(/is not a page delta/);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('reads its header alone with readDeltaHeader, which fails the same way', () => {
    expect(readDeltaHeader(valid, what)).toEqual({ pageSize: PAGE, fileSize: content.length, blockCount: 3 });
    expect(() => readDeltaHeader(valid.subarray(0, 10), what)).toThrow(CorruptObjectError);
    expect(() => readDeltaHeader(patched(4, [9]), what)).toThrow(`${what} has page delta format version 9`);
  });
});

describe('a delta of a real PostgreSQL 15 table', () => {
  let cluster: PostgresCluster | undefined;

  beforeAll(async () => {
    cluster = await PostgresCluster.create();
    cluster.start();
  });

  afterAll(async () => {
    await cluster?.remove();
  });

  it('keeps only the pages an UPDATE and an INSERT touched, and restores the table file byte for byte', async () => {
    const pg = cluster!;
    const blockSize = Number(pg.sql('show block_size'));
    // Autovacuum off for the table: it would set hint bits on pages the delta rightly skips.
    pg.sql('create table t (id int, payload text) with (autovacuum_enabled = off)');
    pg.sql("insert into t select g, repeat(md5(g::text), 4) from generate_series(1, 20000) g");
    // Hint bits set now, before the base: a later hint-bit-only change does not move a page's
    // LSN (no data checksums, wal_log_hints off), and replay does not need it, but the byte-for-
    // byte comparison below would see it.
    pg.sql('vacuum t');
    pg.sql('checkpoint');
    const relation = path.join(pg.dataDir, pg.sql("select pg_relation_filepath('t')"));
    expect(isPagedRelationFile(pg.sql("select pg_relation_filepath('t')"))).toBe(true);
    const baseCopy = path.join(scratch, 'base-copy');
    fs.copyFileSync(relation, baseCopy);
    const baseSize = fs.statSync(baseCopy).size;
    expect(baseSize).toBeGreaterThan(2 * 1024 * 1024);
    const threshold = parseLsn(pg.sql('select pg_current_wal_lsn()'));

    // ~5% of the rows, in runs of 50 spread over the table, and 1000 new rows.
    pg.sql('update t set payload = upper(payload) where id % 1000 < 50');
    pg.sql("insert into t select g, repeat(md5(g::text), 4) from generate_series(20001, 21000) g");
    pg.sql('checkpoint');

    const handle = await fsp.open(relation, 'r');
    let blocks: number[];
    const blob = path.join(scratch, 'table-delta');
    let size: number;
    try {
      size = (await handle.stat()).size;
      expect(size).toBeGreaterThan(baseSize);
      blocks = await scanChangedBlocks(handle, size, { threshold, baseSize, pageSize: blockSize });
      const out = await fsp.open(blob, 'w');
      try {
        for await (const chunk of deltaBlobChunks(handle, size, blockSize, blocks)) await out.write(chunk);
      } finally {
        await out.close();
      }
    } finally {
      await handle.close();
    }
    const total = size / blockSize;
    expect(blocks.length).toBeGreaterThan(0);
    expect(blocks.length).toBeLessThan(0.3 * total);
    // Every page the base did not have is in the delta.
    for (let block = baseSize / blockSize; block < total; block++) expect(blocks).toContain(block);
    expect(fs.statSync(blob).size).toBe(deltaBlobSize(size, blockSize, blocks));

    const live = fs.readFileSync(relation);
    // The base alone is not the table now: the delta has work to do.
    expect(fs.readFileSync(baseCopy).equals(live.subarray(0, baseSize))).toBe(false);
    const fd = fs.openSync(baseCopy, 'r+');
    try {
      const applier = new DeltaApplier(fd, 't');
      const next = random(1);
      const data = fs.readFileSync(blob);
      for (let at = 0; at < data.length; ) {
        const length = 1 + Math.floor(next() * 100_000);
        applier.write(data.subarray(at, at + length));
        at += length;
      }
      applier.end();
    } finally {
      fs.closeSync(fd);
    }
    const restored = fs.readFileSync(baseCopy);
    expect(restored.length).toBe(live.length);
    expect(restored.equals(live)).toBe(true);
    console.log(`page delta of a ${total}-page table: ${blocks.length} pages kept (${((100 * blocks.length) / total).toFixed(1)}%)`);
  }, 120_000);
});
