/**
 * The page-level primitives of delta (incremental) base backups, as wal-g's use of page LSNs: for
 * each relation data file, a delta backup stores only the pages changed since its base backup
 * started; a restore lays the base's copy of the file down first, then applies the delta onto it.
 *
 * Why this is sound. Every page of a relation's main fork carries pd_lsn, the end of the WAL
 * record that last modified it. A page whose pd_lsn is below the base backup's start LSN (the
 * threshold) has not been modified since the base began — hint-bit-only changes excepted, which
 * are not WAL-logged without checksums and which replay does not need — so the base's copy of it
 * is good. Every page at or above the threshold is taken from the delta. The delta's own reads of
 * the live file may be torn (a page written while it is read): but pg_backup_start's checkpoint
 * flushed every change made before the delta's start, so a page being written while the delta
 * reads it was modified after that start, and with full_page_writes (forced on during a backup)
 * its first modification after the checkpoint is logged as a full-page image, which the replay of
 * WAL from the delta's start lays over whatever the restore wrote (the base's copy or a torn one).
 *
 * The rule per page (`scanChangedBlocks`) keeps a page when:
 * - its pd_lsn ≥ the threshold;
 * - it is new (PageIsNew: pd_upper = 0, as the all-zero pages a relation is extended with). Zero
 *   pages cost nothing after compression, and a zero page inside the base's range must not be
 *   taken from the base, whose copy may hold what the page held before a truncation;
 * - it is not wholly inside the base's copy (the file was shorter in the base, or absent: a base
 *   size of 0): the base has nothing to restore it from;
 * - it is the file's trailing partial page (a size that is not a multiple of the page size, which
 *   PostgreSQL never leaves, but a delta must restore any file exactly).
 *
 * Only main-fork segment files get page deltas (`isPagedRelationFile`); every other file is
 * stored whole.
 *
 * The delta of a file is stored as its tar entry, whose size tar needs up front: hence two passes,
 * `scanChangedBlocks` then `deltaBlobSize` and `deltaBlobChunks`. Its format (integers big-endian):
 *
 *   offset  size        field
 *   0       4           magic "PGWD"
 *   4       1           format version (1)
 *   5       3           zero
 *   8       4           page size (a power of two, 1 KiB to 32 KiB)
 *   12      8           the file's size when it was scanned
 *   20      4           block count n
 *   24      4 × n       the block numbers, strictly ascending, each inside the file
 *   24+4n   ...         the pages in that order, each a page size long except a trailing partial
 *                       page, which is (file size − block × page size) long
 *
 * `DeltaApplier` reads it back (incrementally, from a tar stream) onto the base's copy of the
 * file and sets the file's size to the recorded one.
 */
import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { CorruptObjectError } from '../errors';

export const DELTA_MAGIC = Buffer.from('PGWD', 'latin1');
export const DELTA_VERSION = 1;
/** The fixed part of the header, before the block numbers. */
export const DELTA_HEADER_SIZE = 24;
/** PostgreSQL's default BLCKSZ. */
export const DEFAULT_PAGE_SIZE = 8192;
/** Reads of the file (scan and blob) are at most this long. */
const READ_SIZE = 1024 * 1024;

const MIN_PAGE_SIZE = 1024;
const MAX_PAGE_SIZE = 32 * 1024;

// ---------------------------------------------------------------------------------------------
// Which files, which pages

/**
 * Whether `path` (relative to the data directory, '/'-separated) is a main-fork segment of a
 * relation, whose pages carry LSNs: `base/<db>/<relfilenode>[.<segment>]` or
 * `global/<relfilenode>[.<segment>]`.
 *
 * Everything else is stored whole: the free space map (`_fsm`, not WAL-logged page by page), the
 * init fork (`_init`), pg_filenode.map, PG_VERSION, pg_internal.init, temporary relations
 * (`t<backend>_<relfilenode>`), and anything outside base/ and global/ (tablespaces in
 * pg_tblspc/ included: not handled yet). Above all the visibility map (`_vm`): clearing a
 * visibility-map bit (a heap change on an all-visible page) does not bump the VM page's LSN, so
 * a VM page with an old LSN may still differ from the base's copy; a stale all-visible bit would
 * let index-only scans return rows without looking at the heap. Storing the VM whole is what
 * keeps them right.
 */
export function isPagedRelationFile(path: string): boolean {
  return /^(?:base\/\d+\/\d+|global\/\d+)(?:\.\d+)?$/.test(path);
}

/** pd_lsn of the page at `offset`: PageXLogRecPtr {xlogid, xrecoff}, native little-endian (x86, arm64). */
export function pageLsn(page: Buffer, offset = 0): bigint {
  return (BigInt(page.readUInt32LE(offset)) << 32n) | BigInt(page.readUInt32LE(offset + 4));
}

/** PostgreSQL's PageIsNew: pd_upper (at 14) is 0, as on an all-zero page never initialised. */
export function isNewPage(page: Buffer, offset = 0): boolean {
  return page.readUInt16LE(offset + 14) === 0;
}

export interface ChangedBlocksOptions {
  /** The base backup's start LSN: a page with a pd_lsn at or above it is changed. */
  readonly threshold: bigint;
  /** The file's size in the base backup; 0 when the base has no such file. */
  readonly baseSize: number;
  /** The cluster's page size (BLCKSZ, `SHOW block_size`), usually 8192. */
  readonly pageSize: number;
  /**
   * Scan from this byte on (a multiple of the page size): a range of a file larger than a part
   * (parts-plan.ts); its pages before are another range's. @default 0
   */
  readonly from?: number;
}

/**
 * The block numbers (ascending) of the pages of an open file that a delta must store, by the rule
 * in this module's comment. `size` is the file's size when it was opened (stat'ed): the file is
 * read up to it, in chunks of 1 MiB. A read that ends early means the file shrank meanwhile; the
 * pages missing count as zero pages, new, and are kept.
 */
export async function scanChangedBlocks(handle: FileHandle, size: number, options: ChangedBlocksOptions): Promise<number[]> {
  const { threshold, baseSize, pageSize } = options;
  const from = options.from ?? 0;
  checkPageSize(pageSize);
  checkFileSize(size);
  if (!Number.isInteger(from) || from < 0 || from % pageSize !== 0) throw new RangeError(`a scan starts on a page boundary, not at byte ${from}`);
  // pd_lsn compared as two 32-bit halves: no bigint per page.
  const thresholdHigh = Number(threshold >> 32n);
  const thresholdLow = Number(threshold & 0xffffffffn);
  const blockTotal = Math.ceil(size / pageSize);
  const fullBlocks = Math.floor(size / pageSize);
  // Pages wholly inside the base's copy; from there on, every page is kept.
  const baseBlocks = Math.floor(Math.max(0, baseSize) / pageSize);
  const chunkSize = Math.max(pageSize, Math.floor(READ_SIZE / pageSize) * pageSize);
  const buffer = Buffer.allocUnsafe(chunkSize);
  const changed: number[] = [];
  const scanned = Math.min(fullBlocks, baseBlocks);
  let block = from / pageSize;
  while (block < scanned) {
    const blocks = Math.min(scanned - block, chunkSize / pageSize);
    const got = await readFully(handle, buffer, blocks * pageSize, block * pageSize);
    const whole = Math.floor(got / pageSize);
    for (let i = 0; i < whole; i++) {
      const offset = i * pageSize;
      const high = buffer.readUInt32LE(offset);
      const low = buffer.readUInt32LE(offset + 4);
      if (high > thresholdHigh || (high === thresholdHigh && low >= thresholdLow) || buffer.readUInt16LE(offset + 14) === 0) changed.push(block + i);
    }
    block += whole;
    // The file shrank: what is left of it is kept as zero pages (below).
    if (whole < blocks) break;
  }
  // Beyond the base, beyond the end of the file now (zero pages), and the trailing partial page.
  for (; block < blockTotal; block++) changed.push(block);
  return changed;
}

// ---------------------------------------------------------------------------------------------
// The blob

/** The size of the delta blob of a file of `fileSize` bytes storing `blocks`. */
export function deltaBlobSize(fileSize: number, pageSize: number, blocks: readonly number[]): number {
  checkPageSize(pageSize);
  checkFileSize(fileSize);
  checkBlocks(fileSize, pageSize, blocks);
  let size = DELTA_HEADER_SIZE + 4 * blocks.length;
  for (const block of blocks) size += pageLength(block, fileSize, pageSize);
  return size;
}

/** The header of a delta blob (the fixed part and the block numbers). */
export function encodeDeltaHeader(fileSize: number, pageSize: number, blocks: readonly number[]): Buffer {
  checkPageSize(pageSize);
  checkFileSize(fileSize);
  checkBlocks(fileSize, pageSize, blocks);
  const header = Buffer.alloc(DELTA_HEADER_SIZE + 4 * blocks.length);
  DELTA_MAGIC.copy(header, 0);
  header.writeUInt8(DELTA_VERSION, 4);
  header.writeUInt32BE(pageSize, 8);
  header.writeBigUInt64BE(BigInt(fileSize), 12);
  header.writeUInt32BE(blocks.length, 20);
  blocks.forEach((block, i) => header.writeUInt32BE(block, DELTA_HEADER_SIZE + 4 * i));
  return header;
}

/**
 * The delta blob of an open file, `deltaBlobSize(...)` bytes: the header, then the pages of
 * `blocks` (from `scanChangedBlocks`) read from `handle`, runs of consecutive blocks together (at
 * most 1 MiB per read). A read that ends early (the file shrank since the scan) is padded with
 * zeros: the blob is always as long as announced. Each chunk yielded is a buffer of its own.
 */
export async function* deltaBlobChunks(handle: FileHandle, fileSize: number, pageSize: number, blocks: readonly number[]): AsyncIterable<Buffer> {
  yield encodeDeltaHeader(fileSize, pageSize, blocks);
  const maxBlocks = Math.max(1, Math.floor(READ_SIZE / pageSize));
  let i = 0;
  while (i < blocks.length) {
    const first = blocks[i];
    let count = 1;
    while (i + count < blocks.length && count < maxBlocks && blocks[i + count] === first + count) count++;
    const position = first * pageSize;
    const length = Math.min(count * pageSize, fileSize - position);
    // Zeroed: what a short read lacks stays zero.
    const chunk = Buffer.alloc(length);
    await readFully(handle, chunk, length, position);
    yield chunk;
    i += count;
  }
}

export interface DeltaHeader {
  readonly pageSize: number;
  /** The file's size when it was scanned: the restored file's size. */
  readonly fileSize: number;
  readonly blockCount: number;
}

/**
 * Reads and checks the fixed part of a delta blob's header (its first 24 bytes; `buf` may be
 * longer). Throws CorruptObjectError naming `what` when it is not a delta of this format.
 */
export function readDeltaHeader(buf: Buffer, what = 'page delta'): DeltaHeader {
  if (buf.length < DELTA_HEADER_SIZE) throw new CorruptObjectError(`${what} is truncated: it ends inside its ${DELTA_HEADER_SIZE}-byte header (${buf.length} bytes)`);
  if (!buf.subarray(0, 4).equals(DELTA_MAGIC)) {
    throw new CorruptObjectError(`${what} is not a page delta: it starts with ${JSON.stringify(buf.subarray(0, 4).toString('latin1'))}, not the magic "PGWD"`);
  }
  const version = buf.readUInt8(4);
  if (version !== DELTA_VERSION) throw new CorruptObjectError(`${what} has page delta format version ${version}; this archiver reads version ${DELTA_VERSION}`);
  if (buf.readUIntBE(5, 3) !== 0) throw new CorruptObjectError(`${what} is corrupted: the reserved header bytes 5 to 7 are not zero`);
  const pageSize = buf.readUInt32BE(8);
  if (!isValidPageSize(pageSize)) throw new CorruptObjectError(`${what} is corrupted: page size ${pageSize} is not a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}`);
  const fileSize = buf.readBigUInt64BE(12);
  if (fileSize > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptObjectError(`${what} is corrupted: file size ${fileSize} is out of range`);
  const blockCount = buf.readUInt32BE(20);
  const blocksInFile = Math.ceil(Number(fileSize) / pageSize);
  if (blockCount > blocksInFile) {
    throw new CorruptObjectError(`${what} is corrupted: it announces ${blockCount} blocks, more than the ${blocksInFile} of a file of ${fileSize} bytes`);
  }
  return { pageSize, fileSize: Number(fileSize), blockCount };
}

// ---------------------------------------------------------------------------------------------
// Applying a blob

/**
 * Applies a delta blob, fed in chunks of any size (as a tar stream delivers it), onto a file: `fd`
 * is open for writing on the base's copy of the file (or on a new empty file when the base has
 * none). Each page is written at block × page size, consecutive pages in one write, synchronously
 * (it runs on a worker thread); `end()` checks the blob was complete and sets the file's size to
 * the one recorded (the base's copy may have been longer or shorter). Everything malformed throws
 * CorruptObjectError naming `what`; the applier is unusable afterwards.
 */
export class DeltaApplier {
  private header: DeltaHeader | undefined;
  /** Bytes of the fixed header gathered so far. */
  private readonly headerBytes = Buffer.alloc(DELTA_HEADER_SIZE);
  private headerFilled = 0;
  private readonly blocks: number[] = [];
  /** A block number split across chunks. */
  private readonly blockBytes = Buffer.alloc(4);
  private blockFilled = 0;
  /** The page being written (an index into `blocks`) and the bytes of it written so far. */
  private page = 0;
  private pageOffset = 0;
  private failed: CorruptObjectError | undefined;
  private ended = false;

  constructor(
    private readonly fd: number,
    private readonly what: string,
  ) {}

  write(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    if (this.ended) throw new Error(`${this.what}: write after end`);
    try {
      this.consume(chunk);
    } catch (error) {
      if (error instanceof CorruptObjectError) this.failed = error;
      throw error;
    }
  }

  end(): void {
    if (this.failed) throw this.failed;
    if (this.ended) return;
    const header = this.header;
    if (header === undefined) throw this.fail(`is truncated: it ends inside its ${DELTA_HEADER_SIZE}-byte header (${this.headerFilled} bytes)`);
    if (this.blocks.length < header.blockCount) throw this.fail(`is truncated: it ends after ${this.blocks.length} of its ${header.blockCount} block numbers`);
    if (this.page < this.blocks.length) {
      throw this.fail(`is truncated: it ends in page ${this.page + 1} of ${this.blocks.length} (block ${this.blocks[this.page]}, ${this.pageOffset} of ${this.pageLength(this.page)} bytes)`);
    }
    this.ended = true;
    fs.ftruncateSync(this.fd, header.fileSize);
  }

  private consume(chunk: Buffer): void {
    let at = 0;
    if (this.header === undefined) {
      const take = Math.min(DELTA_HEADER_SIZE - this.headerFilled, chunk.length);
      chunk.copy(this.headerBytes, this.headerFilled, 0, take);
      this.headerFilled += take;
      at += take;
      if (this.headerFilled < DELTA_HEADER_SIZE) return;
      this.header = readDeltaHeader(this.headerBytes, this.what);
    }
    const header = this.header;
    while (this.blocks.length < header.blockCount && at < chunk.length) {
      if (this.blockFilled === 0 && chunk.length - at >= 4) {
        this.addBlock(chunk.readUInt32BE(at));
        at += 4;
        continue;
      }
      const take = Math.min(4 - this.blockFilled, chunk.length - at);
      chunk.copy(this.blockBytes, this.blockFilled, at, at + take);
      this.blockFilled += take;
      at += take;
      if (this.blockFilled === 4) {
        this.blockFilled = 0;
        this.addBlock(this.blockBytes.readUInt32BE(0));
      }
    }
    if (this.blocks.length < header.blockCount) return;
    while (at < chunk.length) {
      if (this.page >= this.blocks.length) throw this.fail(`is corrupted: it goes on after its last page (${chunk.length - at} more byte(s) at least)`);
      // The run of consecutive pages from here that this chunk holds, written at once.
      const position = this.blocks[this.page] * header.pageSize + this.pageOffset;
      let length = 0;
      while (at + length < chunk.length && this.page < this.blocks.length) {
        const rest = this.pageLength(this.page) - this.pageOffset;
        const take = Math.min(rest, chunk.length - at - length);
        length += take;
        this.pageOffset += take;
        if (take < rest) break;
        const next = this.page + 1;
        const consecutive = next < this.blocks.length && this.blocks[next] === this.blocks[this.page] + 1;
        this.page = next;
        this.pageOffset = 0;
        if (!consecutive) break;
      }
      writeFully(this.fd, chunk, at, length, position);
      at += length;
    }
  }

  private addBlock(block: number): void {
    const header = this.header!;
    const previous = this.blocks.length > 0 ? this.blocks[this.blocks.length - 1] : -1;
    if (block <= previous) throw this.fail(`is corrupted: its block numbers are not strictly ascending (${block} after ${previous})`);
    if (block * header.pageSize >= header.fileSize) {
      throw this.fail(`is corrupted: block ${block} lies beyond the end of the file (${header.fileSize} bytes, pages of ${header.pageSize})`);
    }
    this.blocks.push(block);
  }

  private pageLength(index: number): number {
    return pageLength(this.blocks[index], this.header!.fileSize, this.header!.pageSize);
  }

  private fail(message: string): CorruptObjectError {
    this.failed = new CorruptObjectError(`${this.what} ${message}`);
    return this.failed;
  }
}

// ---------------------------------------------------------------------------------------------

/** The length of block `block`'s page in a file of `fileSize` bytes: short for a trailing partial page. */
function pageLength(block: number, fileSize: number, pageSize: number): number {
  return Math.min(pageSize, fileSize - block * pageSize);
}

function isValidPageSize(pageSize: number): boolean {
  return Number.isInteger(pageSize) && pageSize >= MIN_PAGE_SIZE && pageSize <= MAX_PAGE_SIZE && (pageSize & (pageSize - 1)) === 0;
}

function checkPageSize(pageSize: number): void {
  if (!isValidPageSize(pageSize)) throw new RangeError(`page size ${pageSize} is not a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE}`);
}

function checkFileSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`file size ${size} is not a size`);
}

function checkBlocks(fileSize: number, pageSize: number, blocks: readonly number[]): void {
  let previous = -1;
  for (const block of blocks) {
    if (!Number.isInteger(block) || block <= previous || block * pageSize >= fileSize || block > 0xffffffff) {
      throw new RangeError(`block ${block} (after ${previous}) is not ascending inside a file of ${fileSize} bytes with pages of ${pageSize}`);
    }
    previous = block;
  }
}

/** Reads `length` bytes at `position` into `buffer` (from 0), fewer only at the end of the file; returns how many. */
async function readFully(handle: FileHandle, buffer: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

function writeFully(fd: number, buffer: Buffer, offset: number, length: number, position: number): void {
  let written = 0;
  while (written < length) written += fs.writeSync(fd, buffer, offset + written, length - written, position + written);
}
