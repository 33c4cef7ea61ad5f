/**
 * One part of a base backup as a stream of bytes: the part's files as a tar stream, framed and
 * compressed by the archiver's envelope (envelope.ts: a header, the codec's stream, a trailer with
 * the size; FLAG_UNCHECKED, because every file's CRC-32 is counted here, once, for the manifest).
 * With zstd the object is also a valid `.tar.zst`: the envelope's header and trailer are skippable
 * frames, so `zstd -dc part | tar x` restores it by hand — except a range of a file larger than a
 * part (parts-plan.ts), whose tar entry carries the file's name and, in its pax header,
 * `PGWA.offset` and `PGWA.size`: such a file is the concatenation of its ranges in part order.
 *
 * Files are read as they are now, in the middle of a non-exclusive backup: a file that vanished
 * (a dropped table) is left out; one that grew is read up to the size it had when opened (a range:
 * up to its planned end); one that shrank, or a range of a file that vanished, is padded with
 * zeros, as pg_basebackup does. Replaying the WAL from the backup's start repairs all of it.
 *
 * Reads are synchronous: this runs on a worker thread of its own, where a read from the page cache
 * costs less than the round trip through libuv's pool that an asynchronous one adds.
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { crc32 } from '../crc32';
import { pack as tarPack } from 'tar-stream';
import type { Codec } from '../compression';
import { encodeStream, formatChecksum } from '../envelope';
import type { FileHandle } from 'node:fs/promises';
import { deltaBlobChunks, deltaBlobSize, encodeDeltaHeader, scanChangedBlocks } from './page-delta';
import type { FileRange } from './parts-plan';

/** The pax keywords of a range's tar entry: where it starts, and the whole file's size. */
export const PAX_OFFSET = 'PGWA.offset';
export const PAX_FILE_SIZE = 'PGWA.size';
/** The pax keyword of a delta backup's page-delta entry (page-delta.ts's blob, not the file). */
export const PAX_DELTA = 'PGWA.delta';

/** How to store a relation file as a page delta against its base backup. */
export interface DeltaSpec {
  /** The base backup's start LSN: pages at or above it are stored. */
  readonly threshold: bigint;
  /** The file's size in the base backup (0: the base has no such file). */
  readonly baseSize: number;
  readonly pageSize: number;
}

export interface PartEntry {
  /** Where to read it. */
  readonly absolute: string;
  /** The name inside the tar and the manifest. */
  readonly path: string;
  readonly type: 'file' | 'directory';
  readonly mode: number;
  readonly mtime: number;
  /** Only this range of the file (a file larger than a part). */
  readonly range?: FileRange;
  /** Store the pages changed since the base, not the file (a delta backup's relation file). */
  readonly delta?: DeltaSpec;
}

export interface StoredFile {
  readonly path: string;
  /** Bytes stored: the file's, or the range's. */
  readonly size: number;
  readonly mode: number;
  readonly mtime: number;
  /** CRC-32 of the bytes stored. */
  readonly checksum: string;
  /** Set for a range of a file. */
  readonly range?: FileRange;
  /** Set for a page delta: `size` and `checksum` are the blob's. */
  readonly delta?: { readonly fileSize: number; readonly pages: number };
}

export interface PartResult {
  readonly files: StoredFile[];
  /** Files that no longer existed when their turn came. */
  readonly vanished: string[];
  /** Bytes of the tar stream. */
  readonly tarBytes: number;
}

const READ_SIZE = 1024 * 1024;

/**
 * The part's bytes (to be stored as they come) and, once the stream has ended, what it holds.
 * `onBytes` reports progress: file bytes read so far.
 */
export interface PartStream {
  /** The stored object's bytes. */
  readonly stream: Readable;
  /** What the part holds, once every file has been read into it. */
  readonly result: Promise<PartResult>;
  /** Stops reading files (the upload failed): `result` rejects with `error`. */
  abort(error: Error): void;
}

export function partStream(entries: readonly PartEntry[], codec: Codec, onBytes: (bytes: number) => void = () => undefined): PartStream {
  const pack = tarPack();
  const encoder = encodeStream(codec, { checksum: false });
  let tarBytes = 0;
  let abortWith: (error: Error) => void = () => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    abortWith = reject;
  });
  aborted.catch(() => undefined);
  const abort = (error: Error) => {
    abortWith(error);
    pack.destroy(error);
    encoder.destroy(error);
  };
  // streamx's pack into Node's Transform, by hand to count the tar bytes and keep backpressure.
  pack.on('data', (data: unknown) => {
    const chunk = data as Buffer;
    tarBytes += chunk.length;
    if (!encoder.write(chunk)) {
      pack.pause();
      encoder.once('drain', () => pack.resume());
    }
  });
  const packEnded = new Promise<void>((resolve, reject) => {
    pack.once('end', () => {
      encoder.end();
      resolve();
    });
    pack.once('error', reject);
    encoder.once('error', reject);
  });
  packEnded.catch(() => undefined);
  const result = (async (): Promise<PartResult> => {
    const files: StoredFile[] = [];
    const vanished: string[] = [];
    for (const entry of entries) {
      if (entry.type === 'directory') {
        await Promise.race([addEntry(pack, { name: entry.path, type: 'directory', mode: entry.mode, mtime: new Date(entry.mtime * 1000) }), aborted]);
        continue;
      }
      const stored = await Promise.race([entry.delta ? addDelta(pack, entry, entry.delta, onBytes, aborted) : addFile(pack, entry, onBytes, aborted), aborted]);
      if (stored) files.push(stored);
      else vanished.push(entry.path);
    }
    pack.finalize();
    await Promise.race([packEnded, aborted]);
    return { files, vanished, tarBytes };
  })();
  result.catch((error) => abort(error));
  return { stream: encoder, result, abort };
}

function addEntry(pack: ReturnType<typeof tarPack>, header: Parameters<ReturnType<typeof tarPack>['entry']>[0]): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, (error?: Error | null) => (error ? reject(error) : resolve()));
  });
}

async function addFile(pack: ReturnType<typeof tarPack>, entry: PartEntry, onBytes: (bytes: number) => void, aborted: Promise<never>): Promise<StoredFile | undefined> {
  let fd: number | undefined;
  try {
    fd = fs.openSync(entry.absolute, 'r');
  } catch (error) {
    // A whole file that vanished is left out; a range is stored as zeros, so that the file's
    // other ranges (read before it vanished) still make a whole file.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!entry.range) return undefined;
  }
  try {
    const start = entry.range?.offset ?? 0;
    const size = entry.range ? entry.range.length : fs.fstatSync(fd!).size;
    let crc = 0;
    let done: (error?: Error | null) => void = () => undefined;
    const finished = new Promise<void>((resolve, reject) => {
      done = (error) => (error ? reject(error) : resolve());
    });
    const header = {
      name: entry.path,
      type: 'file' as const,
      size,
      mode: entry.mode,
      mtime: new Date(entry.mtime * 1000),
      ...(entry.range ? { pax: { [PAX_OFFSET]: String(entry.range.offset), [PAX_FILE_SIZE]: String(entry.range.fileSize) } } : {}),
    };
    const sink = pack.entry(header, done);
    let position = 0;
    while (position < size) {
      const want = Math.min(READ_SIZE, size - position);
      const buffer = Buffer.allocUnsafe(want);
      const bytesRead = fd === undefined ? 0 : fs.readSync(fd, buffer, 0, want, start + position);
      // Shrunk since it was opened: zeros for the rest (WAL replay rewrites those pages).
      const chunk = bytesRead === 0 ? buffer.fill(0) : buffer.subarray(0, bytesRead);
      crc = crc32(chunk, crc);
      position += chunk.length;
      onBytes(chunk.length);
      if (!sink.write(chunk)) await Promise.race([new Promise<void>((resolve) => sink.once('drain', () => resolve())), aborted]);
    }
    sink.end(undefined);
    await Promise.race([finished, aborted]);
    return { path: entry.path, size, mode: entry.mode, mtime: entry.mtime, checksum: formatChecksum(crc), ...(entry.range ? { range: entry.range } : {}) };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * A relation file (or a range of one) of a delta backup, as the pages changed since the base
 * started: a first pass finds them, a second reads them into the blob (tar wants the entry's size
 * before its bytes). A whole file that vanished is left out; a range of one is stored as zero
 * pages, as addFile stores it as zeros.
 */
async function addDelta(pack: ReturnType<typeof tarPack>, entry: PartEntry, spec: DeltaSpec, onBytes: (bytes: number) => void, aborted: Promise<never>): Promise<StoredFile | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.promises.open(entry.absolute, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!entry.range) return undefined;
  }
  try {
    const from = entry.range?.offset ?? 0;
    const end = entry.range ? entry.range.offset + entry.range.length : (await handle!.stat()).size;
    const fileSize = entry.range?.fileSize ?? end;
    const blocks = handle
      ? await scanChangedBlocks(handle, end, { threshold: spec.threshold, baseSize: spec.baseSize, pageSize: spec.pageSize, from })
      : Array.from({ length: Math.ceil((end - from) / spec.pageSize) }, (_, i) => from / spec.pageSize + i);
    onBytes(end - from);
    const size = deltaBlobSize(fileSize, spec.pageSize, blocks);
    let done: (error?: Error | null) => void = () => undefined;
    const finished = new Promise<void>((resolve, reject) => {
      done = (error) => (error ? reject(error) : resolve());
    });
    const pax: Record<string, string> = { [PAX_DELTA]: '1', ...(entry.range ? { [PAX_OFFSET]: String(entry.range.offset), [PAX_FILE_SIZE]: String(entry.range.fileSize) } : {}) };
    const sink = pack.entry({ name: entry.path, type: 'file', size, mode: entry.mode, mtime: new Date(entry.mtime * 1000), pax }, done);
    let crc = 0;
    const chunks = handle ? deltaBlobChunks(handle, fileSize, spec.pageSize, blocks) : zeroBlob(fileSize, spec.pageSize, blocks);
    for await (const chunk of chunks) {
      crc = crc32(chunk, crc);
      if (!sink.write(chunk)) await Promise.race([new Promise<void>((resolve) => sink.once('drain', () => resolve())), aborted]);
    }
    sink.end(undefined);
    await Promise.race([finished, aborted]);
    return { path: entry.path, size, mode: entry.mode, mtime: entry.mtime, checksum: formatChecksum(crc), ...(entry.range ? { range: entry.range } : {}), delta: { fileSize, pages: blocks.length } };
  } finally {
    await handle?.close();
  }
}

/** The blob of zero pages for a range of a file that vanished. */
async function* zeroBlob(fileSize: number, pageSize: number, blocks: readonly number[]): AsyncIterable<Buffer> {
  yield encodeDeltaHeader(fileSize, pageSize, blocks);
  for (const block of blocks) yield Buffer.alloc(Math.min(pageSize, fileSize - block * pageSize));
}
