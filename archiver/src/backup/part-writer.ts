/**
 * The files of one restored part, written as its tar stream is read (tar-reader.ts), each
 * checked against the manifest (name, size, CRC-32). A whole file is created, never overwritten;
 * a range is written at its offset into its file, which the other ranges (other parts, other
 * threads) share; a page delta is applied onto what an older backup of the chain wrote.
 * Writes are synchronous (this runs on a worker thread of its own) and done before each chunk's
 * push returns, so the chunk's memory can be reused at once; fsyncs run in libuv's pool while
 * the next files are written. A restore that syncs writes whole files and ranges around the page
 * cache (direct-write.ts): it waits for the disk anyway.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from '../crc32';
import { formatChecksum } from '../envelope';
import { CorruptObjectError, RestoreWriteError } from '../errors';
import type { ManifestDirectory } from './manifest';
import { DirectFileWriter, DirectWrites, writeAll } from './direct-write';
import { DeltaApplier } from './page-delta';
import { PAX_DELTA, PAX_FILE_SIZE, PAX_OFFSET } from './part-stream';
import type { ExpectedPiece } from './restore-plan';
import type { TarEntry, TarVisitor } from './tar-reader';

/** Files whose fsync may run at once, in libuv's pool, while the next files are written. */
const SYNCS_IN_FLIGHT = 16;
/** Direct writes (1 MiB each) in flight before the next chunk waits: the disk busy while the thread decompresses. */
const DIRECT_WRITES_IN_FLIGHT = 2;

/** The file being written: where, what the manifest expects, what has come so far. */
interface OpenFile {
  readonly key: string;
  readonly destination: string;
  readonly piece: ExpectedPiece;
  /** Undefined while a skipped piece's data passes. */
  readonly fd: number | undefined;
  readonly applier: DeltaApplier | undefined;
  /** Set when the piece is written around the page cache. */
  readonly direct: DirectFileWriter | undefined;
  /** Where the next bytes go when written the ordinary way (a delta's applier and a direct writer keep their own). */
  position: number;
  crc: number;
  size: number;
}

export interface PartWriterOptions {
  /** The restore's target directory, holding every directory of the manifest already. */
  readonly target: string;
  /** What the part must hold, from the manifest. */
  readonly pieces: readonly ExpectedPiece[];
  readonly directories: readonly ManifestDirectory[];
  /**
   * fsync every file, at its last write of the chain (a piece marked `final`): an earlier
   * layer's write to it is synced by that fsync, which covers the whole file.
   */
  readonly sync: boolean;
  /** Names the part in errors. */
  readonly what: string;
  /** Bytes of file data written so far, as they are written. */
  readonly onBytes: (bytes: number) => void;
}

export class PartWriter implements TarVisitor {
  private readonly expected: Map<string, ExpectedPiece>;
  private readonly directories: Set<string>;
  private readonly seen = new Set<string>();
  private readonly syncs = new BackgroundSyncs(SYNCS_IN_FLIGHT);
  private readonly direct = new DirectWrites();
  private file: OpenFile | undefined;

  constructor(private readonly options: PartWriterOptions) {
    this.expected = new Map(options.pieces.map((piece) => [pieceKey(piece.path, piece.offset), piece]));
    this.directories = new Set(options.directories.map((directory) => directory.path));
  }

  entry(entry: TarEntry): void {
    const what = this.options.what;
    const name = entry.name.replace(/\/+$/, '');
    const destination = safeJoin(this.options.target, name, what);
    if (entry.type === 'directory') {
      if (!this.directories.has(name)) throw new CorruptObjectError(`${what} holds a directory ${name} that its manifest does not list`);
      // backup-fetch created every directory of the manifest, with its mode, before any part.
      return;
    }
    const pax = entry.pax;
    const offset = pax[PAX_OFFSET] === undefined ? undefined : Number(pax[PAX_OFFSET]);
    const key = pieceKey(name, offset);
    const piece = this.expected.get(key);
    if (entry.type !== 'file' || !piece) throw new CorruptObjectError(`${what} holds ${entry.type} ${key} that its manifest does not list`);
    if (this.seen.has(key)) throw new CorruptObjectError(`${what} holds ${key} twice`);
    if (piece.offset !== undefined && Number(pax[PAX_FILE_SIZE]) !== piece.fileSize) throw new CorruptObjectError(`${what} holds ${key} as a range of a ${pax[PAX_FILE_SIZE]}-byte file; its manifest says ${piece.fileSize} bytes`);
    if ((pax[PAX_DELTA] === '1') !== (piece.delta === true)) throw new CorruptObjectError(`${what} holds ${key} ${piece.delta ? 'whole, where its manifest lists a page delta' : 'as a page delta, where its manifest lists the file'}`);
    this.seen.add(key);
    if (piece.action === 'skip') {
      // Another backup of the chain has what the restored file needs here.
      this.file = { key, destination, piece, fd: undefined, applier: undefined, direct: undefined, position: 0, crc: 0, size: 0 };
      return;
    }
    // A range shares its file with the other ranges, and a delta is applied onto what an older
    // backup of the chain wrote (or onto nothing): opened without O_EXCL. A whole file is new.
    const exclusive = piece.action === 'write' && piece.offset === undefined;
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | (exclusive ? fs.constants.O_EXCL : 0);
    const position = piece.offset ?? 0;
    // A page delta writes scattered pages: the ordinary way.
    const directFd = this.options.sync && piece.action === 'write' && this.direct.writable(position) ? writing(destination, () => this.direct.open(destination, flags, piece.mode)) : undefined;
    const fd = directFd ?? writing(destination, () => fs.openSync(destination, flags, piece.mode));
    const direct = directFd === undefined ? undefined : new DirectFileWriter(directFd, destination, position, this.direct);
    const applier = piece.action === 'apply' ? new DeltaApplier(fd, `the page delta of ${key} in ${what}`) : undefined;
    this.file = { key, destination, piece, fd, applier, direct, position, crc: 0, size: 0 };
  }

  data(chunk: Buffer): void {
    const file = this.file;
    if (!file || file.fd === undefined) return; // a directory's data, or a skipped piece
    file.crc = crc32(chunk, file.crc);
    file.size += chunk.length;
    this.options.onBytes(chunk.length);
    if (file.applier) writing(file.destination, () => file.applier!.write(chunk));
    else if (file.direct) writing(file.destination, () => file.direct!.write(chunk));
    else {
      writing(file.destination, () => writeAll(file.fd!, chunk, file.position));
      file.position += chunk.length;
    }
  }

  entryEnd(): void {
    const file = this.file;
    if (!file) return;
    this.file = undefined;
    const { piece, direct } = file;
    if (file.fd === undefined) return;
    if (direct) return this.endDirect(file, direct);
    const fd = file.fd;
    try {
      this.check(file);
      writing(file.destination, () => {
        file.applier?.end();
        setModeAndTime(fd, piece);
      });
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    // A file a later backup of the chain writes again is synced then, once: synced now, the pages
    // the later delta changes would reach the disk twice (measured: a chain's restore 1.29x a
    // full one's with an fsync per layer).
    if (this.options.sync && piece.final) this.syncs.add(fd, file.destination);
    else fs.closeSync(fd);
  }

  /**
   * A file written direct: its last bytes sent; once its writes are done (a write would set its
   * time again) its mode and time, its fsync when it is the last write of the chain, and the close.
   */
  private endDirect(file: OpenFile, direct: DirectFileWriter): void {
    const { piece, destination } = file;
    let end: ReturnType<DirectFileWriter['end']>;
    try {
      end = writing(destination, () => direct.end());
      this.check(file);
    } catch (error) {
      this.syncs.track(destination, direct.abandon());
      throw error;
    }
    const sync = this.options.sync && piece.final === true;
    const finish = async () => {
      try {
        await end.written;
        setModeAndTime(end.fd, piece);
        if (sync) await fsyncAsync(end.fd);
      } finally {
        fs.closeSync(end.fd);
        if (end.otherFd !== undefined) fs.closeSync(end.otherFd);
      }
    };
    this.syncs.track(destination, finish());
  }

  /** The piece as written against the manifest: its size and CRC-32. */
  private check(file: OpenFile): void {
    const { piece } = file;
    if (file.size !== piece.size || formatChecksum(file.crc) !== piece.checksum) {
      throw new CorruptObjectError(`${file.key} from ${this.options.what} does not match the backup's manifest (expected ${piece.size} bytes, CRC-32 ${piece.checksum}; got ${file.size} bytes, CRC-32 ${formatChecksum(file.crc)})`);
    }
  }

  /** Resolves once fewer fsyncs than the limit, and few enough direct writes, are in flight: the next chunk may come. */
  async room(): Promise<void> {
    await this.direct.room(DIRECT_WRITES_IN_FLIGHT);
    await this.syncs.room();
  }

  /** The part was read to its end: every fsync done, every piece of the manifest seen. */
  async finish(): Promise<void> {
    await this.syncs.done();
    const missing = this.options.pieces.map((piece) => pieceKey(piece.path, piece.offset)).filter((key) => !this.seen.has(key));
    if (missing.length > 0) throw new CorruptObjectError(`${this.options.what} lacks ${missing.length} file(s) its manifest lists: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
  }

  /** The restore failed: the open file is closed, the fsyncs in flight are waited for. */
  async abandon(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (file?.direct) await file.direct.abandon();
    else if (file?.fd !== undefined) fs.closeSync(file.fd);
    await this.syncs.settle();
  }
}

const fsyncAsync = promisify(fs.fsync);

/** The mode despite the umask; a range's time is set once every range is written. */
function setModeAndTime(fd: number, piece: ExpectedPiece): void {
  fs.fchmodSync(fd, piece.mode);
  if (piece.offset === undefined && (piece.final || piece.action === 'write')) fs.futimesSync(fd, piece.mtime, piece.mtime);
}

function pieceKey(name: string, offset: number | undefined): string {
  return offset === undefined ? name : `${name}@${offset}`;
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

/**
 * fsync-then-close of written files, in libuv's pool, at most `limit` at once: the disk writes
 * back one file while the thread decompresses and writes the next. Past the limit a file is
 * synced in place (the writer cannot wait: it runs inside a chunk's push). The first failure is
 * kept and reported by done().
 */
class BackgroundSyncs {
  private readonly pending = new Set<Promise<void>>();
  private failure: Error | undefined;

  constructor(private readonly limit: number) {}

  add(fd: number, file: string): void {
    if (this.pending.size >= this.limit) {
      try {
        fs.fsyncSync(fd);
      } catch (error) {
        this.failure ??= new RestoreWriteError(`cannot fsync ${file}: ${(error as Error).message}`);
      } finally {
        fs.closeSync(fd);
      }
      return;
    }
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

  /** Work of its own on `file` (a direct write's end): waited for like a sync, its failure kept. */
  track(file: string, work: Promise<void>): void {
    const tracked = work.catch((error: NodeJS.ErrnoException) => {
      if (this.failure) return;
      this.failure = typeof error.code === 'string' && error.syscall !== undefined ? new RestoreWriteError(`cannot write ${file}: ${error.message}`) : error;
    });
    this.pending.add(tracked);
    void tracked.then(() => this.pending.delete(tracked));
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
