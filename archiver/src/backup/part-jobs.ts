/**
 * The two jobs a base backup is made of, one part at a time: store a part (read its files, tar,
 * compress, upload) and restore a part (download, verify, untar, write its files, verify each one
 * against the manifest). Each runs on a worker thread of its own (part-runner.ts) with a storage
 * client of its own, so that both cores compress while the uploads stream.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import type { Codec, CompressionName } from '../compression';
import { decodeStream, formatChecksum } from '../envelope';
import { CorruptObjectError } from '../errors';
import type { Storage } from '../storage/storage';
import type { ManifestDirectory, ManifestFile } from './manifest';
import { PartEntry, PartResult, partStream } from './part-stream';

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

export interface FetchPartJob {
  readonly key: string;
  /** The restore's target directory, holding every directory of the manifest already. */
  readonly target: string;
  /** The manifest's entries of this part. */
  readonly files: readonly ManifestFile[];
  readonly directories: readonly ManifestDirectory[];
  /** fsync every file written. */
  readonly sync: boolean;
}

/**
 * Restores one part into `job.target`: every file is checked against the manifest (name, size,
 * CRC-32), and the part as a whole against its envelope; anything unexpected, missing or damaged
 * fails with CorruptObjectError. Files are created, never overwritten.
 */
export async function fetchPart(storage: Storage, job: FetchPartJob, codecFor: (name: CompressionName) => Codec, onBytes: (bytes: number) => void): Promise<void> {
  const what = `${job.key} at ${storage.location}`;
  const expected = new Map(job.files.map((file) => [file.path, file]));
  const directories = new Map(job.directories.map((directory) => [directory.path, directory]));
  const seen = new Set<string>();
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
  const writing = (async () => {
    for await (const entry of extract) {
      const name = entry.header.name.replace(/\/+$/, '');
      const destination = safeJoin(job.target, name, what);
      if (entry.header.type === 'directory') {
        const directory = directories.get(name);
        if (!directory) throw new CorruptObjectError(`${what} holds a directory ${name} that its manifest does not list`);
        // backup-fetch created every directory of the manifest, with its mode, before any part.
        entry.resume();
        continue;
      }
      const file = expected.get(name);
      if (entry.header.type !== 'file' || !file) throw new CorruptObjectError(`${what} holds ${entry.header.type} ${name} that its manifest does not list`);
      if (seen.has(name)) throw new CorruptObjectError(`${what} holds ${name} twice`);
      seen.add(name);
      const handle = await fs.open(destination, 'wx', file.mode);
      let crc = 0;
      let size = 0;
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          crc = crc32(chunk, crc);
          size += chunk.length;
          onBytes(chunk.length);
          await handle.write(chunk);
        }
        if (job.sync) await handle.sync();
      } finally {
        await handle.close();
      }
      if (size !== file.size || formatChecksum(crc) !== file.checksum) {
        throw new CorruptObjectError(`${name} from ${what} does not match the backup's manifest (expected ${file.size} bytes, CRC-32 ${file.checksum}; got ${size} bytes, CRC-32 ${formatChecksum(crc)})`);
      }
      await fs.chmod(destination, file.mode);
      await fs.utimes(destination, file.mtime, file.mtime);
    }
  })();
  // A file that fails (damaged, unexpected, disk full) stops the download.
  writing.catch((error: Error) => sink.destroy(error));
  const body = await storage.getStream(job.key);
  try {
    await pipeline(body, decodeStream(what, codecFor), sink);
  } catch (error) {
    extract.destroy();
    // The writer's own error (a damaged file) says more than the stopped pipeline's.
    const writerError = await Promise.race([writing.then(() => undefined, (e: unknown) => e), new Promise((resolve) => setTimeout(resolve, 5000, undefined))]);
    throw writerError ?? error;
  }
  await writing;
  const missing = job.files.filter((file) => !seen.has(file.path)).map((file) => file.path);
  if (missing.length > 0) throw new CorruptObjectError(`${what} lacks ${missing.length} file(s) its manifest lists: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
}

/** `target/name`, refusing names that would leave `target` (absolute, or with '..'). */
function safeJoin(target: string, name: string, what: string): string {
  if (name === '' || path.isAbsolute(name) || name.split('/').some((part) => part === '..' || part === '')) {
    throw new CorruptObjectError(`${what} holds an entry named ${JSON.stringify(name)}, which would be written outside the target directory`);
  }
  return path.join(target, name);
}
