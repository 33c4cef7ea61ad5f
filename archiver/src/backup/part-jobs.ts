/**
 * The two jobs a base backup is made of, one part at a time: store a part (read its files, tar,
 * compress, upload) and restore a part (download, verify, untar, write its files, verify each one
 * against the manifest). They run on worker threads (part-runner.ts) so that every core
 * compresses while the uploads stream; a push with a storage client of its thread, a restore with
 * the bytes the main thread downloads for it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { crc32 } from '../crc32';
import { extract as tarExtract } from 'tar-stream';
import type { Codec, CompressionName } from '../compression';
import { decodeStream, formatChecksum } from '../envelope';
import { CorruptObjectError, RestoreWriteError } from '../errors';
import type { Storage } from '../storage/storage';
import type { ManifestDirectory } from './manifest';
import { DeltaApplier } from './page-delta';
import { PAX_DELTA, PAX_FILE_SIZE, PAX_OFFSET, PartEntry, PartResult, partStream } from './part-stream';
import type { ExpectedPiece } from './restore-plan';

/** Stores the part at `key`; resolves once it is durably stored, with what it holds. */
export async function pushPart(storage: Storage, key: string, entries: readonly PartEntry[], codec: Codec, onBytes: (bytes: number) => void): Promise<PartResult & { storedSize: number }> {
  const { stream, result, abort } = partStream(entries, codec, onBytes);
  let storedSize = 0;
  const counting = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      storedSize += chunk.length;
      callback(null, chunk);
    },
  });
  stream.once('error', (error) => counting.destroy(error));
  stream.pipe(counting);
  // A failed upload stops the reading (else the part would wait for a reader for ever).
  const stored = storage.putStream(key, counting).catch((error: Error) => {
    abort(error);
    throw error;
  });
  const [put, read] = await Promise.allSettled([stored, result]);
  if (put.status === 'rejected') throw put.reason;
  if (read.status === 'rejected') throw read.reason;
  return { ...read.value, storedSize };
}

/**
 * Where a restored part's bytes come from: a storage client, or (on a worker thread) the main
 * thread's download of it (body-channel.ts).
 */
export type PartSource = Pick<Storage, 'location' | 'getStream'>;

export interface FetchPartJob {
  readonly key: string;
  /** The restore's target directory, holding every directory of the manifest already. */
  readonly target: string;
  /** What the part must hold, from the manifest. */
  readonly pieces: readonly ExpectedPiece[];
  readonly directories: readonly ManifestDirectory[];
  /** fsync every file written before the job ends. */
  readonly sync: boolean;
}

/** Files whose fsync may run at once, in libuv's pool, while the next files are written. */
const SYNCS_IN_FLIGHT = 16;

/**
 * Restores one part into `job.target`: every entry is checked against the manifest (name, size,
 * CRC-32), and the part as a whole against its envelope's size; anything unexpected, missing or
 * damaged fails with CorruptObjectError. A whole file is created, never overwritten; a range is
 * written at its offset into its file, which the other ranges (other parts, other threads) share.
 * Writes are synchronous (this runs on a worker thread of its own); fsyncs run in the background
 * while the next files are written, and the job ends once every one has.
 */
export async function fetchPart(source: PartSource, job: FetchPartJob, codecFor: (name: CompressionName) => Codec, onBytes: (bytes: number) => void): Promise<void> {
  const what = `${job.key} at ${source.location}`;
  const pieceKey = (name: string, offset: number | undefined) => (offset === undefined ? name : `${name}@${offset}`);
  const expected = new Map(job.pieces.map((piece) => [pieceKey(piece.path, piece.offset), piece]));
  const directories = new Set(job.directories.map((directory) => directory.path));
  const seen = new Set<string>();
  const syncs = new BackgroundSyncs(SYNCS_IN_FLIGHT);
  const extract = tarExtract();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (extract.write(chunk)) callback();
      else extract.once('drain', () => callback());
    },
    final(callback) {
      extract.end(undefined);
      callback();
    },
  });
  const writer = (async () => {
    for await (const entry of parsed(extract, what)) {
      const name = entry.header.name.replace(/\/+$/, '');
      const destination = safeJoin(job.target, name, what);
      if (entry.header.type === 'directory') {
        if (!directories.has(name)) throw new CorruptObjectError(`${what} holds a directory ${name} that its manifest does not list`);
        // backup-fetch created every directory of the manifest, with its mode, before any part.
        entry.resume();
        continue;
      }
      const pax: Record<string, string | undefined> = (entry.header.pax as Record<string, string> | undefined) ?? {};
      const offset = pax[PAX_OFFSET] === undefined ? undefined : Number(pax[PAX_OFFSET]);
      const key = pieceKey(name, offset);
      const piece = expected.get(key);
      if (entry.header.type !== 'file' || !piece) throw new CorruptObjectError(`${what} holds ${entry.header.type} ${key} that its manifest does not list`);
      if (seen.has(key)) throw new CorruptObjectError(`${what} holds ${key} twice`);
      if (piece.offset !== undefined && Number(pax[PAX_FILE_SIZE]) !== piece.fileSize) throw new CorruptObjectError(`${what} holds ${key} as a range of a ${pax[PAX_FILE_SIZE]}-byte file; its manifest says ${piece.fileSize} bytes`);
      if ((pax[PAX_DELTA] === '1') !== (piece.delta === true)) throw new CorruptObjectError(`${what} holds ${key} ${piece.delta ? 'whole, where its manifest lists a page delta' : 'as a page delta, where its manifest lists the file'}`);
      seen.add(key);
      if (piece.action === 'skip') {
        // Another backup of the chain has what the restored file needs here.
        for await (const _chunk of parsed(entry as AsyncIterable<Buffer>, what));
        continue;
      }
      await syncs.room();
      // A range shares its file with the other ranges, and a delta is applied onto what an older
      // backup of the chain wrote (or onto nothing): opened without O_EXCL. A whole file is new.
      const exclusive = piece.action === 'write' && piece.offset === undefined;
      const fd = writing(destination, () => fs.openSync(destination, exclusive ? 'wx' : fs.constants.O_WRONLY | fs.constants.O_CREAT, piece.mode));
      let crc = 0;
      let size = 0;
      try {
        const applier = piece.action === 'apply' ? new DeltaApplier(fd, `the page delta of ${key} in ${what}`) : undefined;
        let position = piece.offset ?? 0;
        for await (const chunk of parsed(entry as AsyncIterable<Buffer>, what)) {
          crc = crc32(chunk, crc);
          size += chunk.length;
          onBytes(chunk.length);
          if (applier) writing(destination, () => applier.write(chunk));
          else writing(destination, () => writeAll(fd, chunk, position));
          position += chunk.length;
        }
        if (size !== piece.size || formatChecksum(crc) !== piece.checksum) {
          throw new CorruptObjectError(`${key} from ${what} does not match the backup's manifest (expected ${piece.size} bytes, CRC-32 ${piece.checksum}; got ${size} bytes, CRC-32 ${formatChecksum(crc)})`);
        }
        writing(destination, () => {
          applier?.end();
          // The mode despite the umask; a range's time is set once every range is written.
          fs.fchmodSync(fd, piece.mode);
          if (piece.offset === undefined && (piece.final || piece.action === 'write')) fs.futimesSync(fd, piece.mtime, piece.mtime);
        });
      } catch (error) {
        fs.closeSync(fd);
        throw error;
      }
      if (job.sync) syncs.add(fd, destination);
      else fs.closeSync(fd);
    }
  })();
  // A file that fails (damaged, unexpected, disk full) stops the download. Whichever fails first
  // says what happened: the writer (a damaged file, a full disk), or the download (the storage,
  // a damaged part), which in turn stops the writer with an error of no interest.
  let writerFailure: { error: unknown } | undefined;
  writer.catch((error: Error) => {
    writerFailure ??= { error };
    sink.destroy(error);
  });
  try {
    try {
      const body = await source.getStream(job.key);
      await pipeline(body, decodeStream(what, codecFor), sink);
    } catch (error) {
      const first = writerFailure;
      extract.destroy();
      throw first ? first.error : error;
    }
    await writer;
  } finally {
    await syncs.settle();
  }
  await syncs.done();
  const missing = job.pieces.map((piece) => pieceKey(piece.path, piece.offset)).filter((key) => !seen.has(key));
  if (missing.length > 0) throw new CorruptObjectError(`${what} lacks ${missing.length} file(s) its manifest lists: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
}

/**
 * The entries (or bytes) tar-stream reads from a part; a failure of the reading itself — the
 * parser's plain Error for a damaged header ("Invalid tar header"), a stream that ends inside an
 * entry — is a damaged part: CorruptObjectError naming it. Only the reading: what the loop's body
 * throws passes as it is.
 */
async function* parsed<T>(source: AsyncIterable<T>, what: string): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      let next: IteratorResult<T>;
      try {
        next = await iterator.next();
      } catch (error) {
        done = true;
        if (error instanceof CorruptObjectError || error instanceof RestoreWriteError) throw error;
        throw new CorruptObjectError(`${what} is damaged: its tar stream cannot be read (${(error as Error).message})`);
      }
      if (next.done === true) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // Left early (the loop's body threw or broke off): the source stops, as for-await stops it.
    if (!done) await iterator.return?.();
  }
}

/** Runs a write to `file`; a system error (ENOSPC, EACCES...) becomes a RestoreWriteError naming the file. */
function writing<T>(file: string, action: () => T): T {
  try {
    return action();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (typeof e.code === 'string' && e.syscall !== undefined) throw new RestoreWriteError(`cannot write ${file}: ${e.message}`);
    throw error;
  }
}

/** pwrite until every byte is written (a write may be short). */
function writeAll(fd: number, chunk: Buffer, position: number): void {
  let written = 0;
  while (written < chunk.length) written += fs.writeSync(fd, chunk, written, chunk.length - written, position + written);
}

/**
 * fsync-then-close of written files, in libuv's pool, at most `limit` at once: the disk writes
 * back one file while the thread decompresses and writes the next. The first failure is kept and
 * reported by done().
 */
class BackgroundSyncs {
  private readonly pending = new Set<Promise<void>>();
  private failure: RestoreWriteError | undefined;

  constructor(private readonly limit: number) {}

  add(fd: number, file: string): void {
    const sync = new Promise<void>((resolve) => {
      fs.fsync(fd, (syncError) => {
        fs.close(fd, (closeError) => {
          const error = syncError ?? closeError;
          if (error && !this.failure) this.failure = new RestoreWriteError(`cannot fsync ${file}: ${error.message}`);
          resolve();
        });
      });
    });
    this.pending.add(sync);
    void sync.then(() => this.pending.delete(sync));
  }

  /** Waits until fewer than `limit` are in flight. */
  async room(): Promise<void> {
    while (this.pending.size >= this.limit) await Promise.race(this.pending);
  }

  /** Waits for every one in flight (their descriptors closed), whatever happened. */
  async settle(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  async done(): Promise<void> {
    await this.settle();
    if (this.failure) throw this.failure;
  }
}

/** `target/name`, refusing names that would leave `target` (absolute, or with '..'). */
function safeJoin(target: string, name: string, what: string): string {
  if (name === '' || path.isAbsolute(name) || name.split('/').some((part) => part === '..' || part === '')) {
    throw new CorruptObjectError(`${what} holds an entry named ${JSON.stringify(name)}, which would be written outside the target directory`);
  }
  return path.join(target, name);
}
