/**
 * The two jobs a base backup is made of, one part at a time: store a part (read its files, tar,
 * compress, upload) and restore a part (download, verify, untar, write its files, verify each one
 * against the manifest). They run on worker threads (part-runner.ts) so that every core
 * compresses while the uploads stream; a push with a storage client of its thread, a restore with
 * the bytes the main thread downloads for it.
 */
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import type { Codec, CompressionName } from '../compression';
import { DECOMPRESS_STREAM_CHUNK } from '../compression/zstd';
import { decodeStream } from '../envelope';
import { SpareBuffers } from '../spare-buffers';
import type { Storage } from '../storage/storage';
import type { ManifestDirectory } from './manifest';
import { PartEntry, PartResult, partStream } from './part-stream';
import { PartWriter } from './part-writer';
import type { ExpectedPiece } from './restore-plan';
import { TarReader } from './tar-reader';

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

/** Output chunks of the decompressor kept for reuse: a few cover the ones between it and the writer. */
const SPARE_CHUNKS = 4;

/**
 * Restores one part into `job.target`: every entry is checked against the manifest (part-writer.ts),
 * and the part as a whole against its envelope's size; anything unexpected, missing or damaged
 * fails with CorruptObjectError. The tar stream is read and its files written synchronously, chunk
 * by chunk (tar-reader.ts), so that the memory of each decompressed chunk goes back to the
 * decompressor for the next one instead of new memory for every mebibyte restored.
 */
export async function fetchPart(source: PartSource, job: FetchPartJob, codecFor: (name: CompressionName) => Codec, onBytes: (bytes: number) => void): Promise<void> {
  const what = `${job.key} at ${source.location}`;
  const writer = new PartWriter({ target: job.target, pieces: job.pieces, directories: job.directories, sync: job.sync, what, onBytes });
  const reader = new TarReader(writer, what);
  const spares = new SpareBuffers(SPARE_CHUNKS, DECOMPRESS_STREAM_CHUNK);
  // Only chunks taken here go back: another codec's output (none's is the downloaded bytes
  // themselves) is not this restore's memory to reuse.
  const ours = new WeakSet<ArrayBuffer>();
  const allocate = (size: number): Buffer => {
    const chunk = spares.take(size);
    ours.add(chunk.buffer as ArrayBuffer);
    return chunk;
  };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        reader.push(chunk);
      } catch (error) {
        return callback(error as Error);
      }
      // Read and written: nothing holds the chunk any more (the reader's views are gone).
      if (ours.has(chunk.buffer as ArrayBuffer)) spares.give(chunk.buffer as ArrayBuffer);
      writer.room().then(() => callback(), callback);
    },
    final(callback) {
      try {
        reader.end();
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  try {
    const body = await source.getStream(job.key);
    await pipeline(body, decodeStream(what, codecFor, allocate), sink);
  } catch (error) {
    await writer.abandon();
    throw error;
  }
  await writer.finish();
}
