/**
 * Restored files written around the page cache (O_DIRECT), for a restore that fsyncs what it
 * writes. Such a restore waits for every byte to reach the disk anyway; through the page cache each
 * byte is first copied into freshly allocated cache pages, then written back by the fsync, and
 * those pages are left holding a copy of the database nobody reads before PostgreSQL starts
 * (charged to the pod's memory cgroup). On the project's 2-core VM fresh pages are costly (memory
 * is handed back to the host): 1 GiB in 1 MiB writes, then fsync, took 0.8–5.7 s buffered with up
 * to 4.3 s of system CPU, 0.56–0.74 s direct with 0.15 s. A whole restore ran at the same speed
 * either way on a quiet machine, with ~0.3 s more user CPU per GiB direct (the copy into the
 * staging memory), and faster direct where fresh pages were costly (bench/RESULTS.md).
 *
 * Direct I/O wants the memory, the file offset and the length aligned to the device's block size.
 * Data goes through staging buffers in WebAssembly memory (page-aligned, which a Node Buffer is
 * not) and is written in whole aligned blocks, in libuv's pool, while the thread decompresses the
 * next ones (a direct write returns only once the device has taken the data; the fsync at the
 * file's end still flushes the device's cache and the file's metadata); a file's last bytes short
 * of a block go through an ordinary descriptor. Where the file system refuses O_DIRECT (EINVAL at
 * open or at a write), the file is written the ordinary way, from where it stood, and the part's
 * later files are not tried again.
 */
import * as fs from 'node:fs';

/** Offsets and lengths of direct writes: a multiple of every block size in use (512, 4096). */
export const DIRECT_ALIGNMENT = 4096;
/** Bytes per direct write: 1 MiB writes ran at 1.5–1.9 GB/s here, 256 KiB ones at 1.0. */
const STAGING_BYTES = 1 << 20;
const WASM_PAGE = 64 * 1024;

/** O_DIRECT where the platform has it (Linux); elsewhere restores write the ordinary way. */
const O_DIRECT: number | undefined = fs.constants.O_DIRECT;

/** The staging buffers of this thread, page-aligned, reused from file to file and part to part. */
const spareStaging: Buffer[] = [];

/** WebAssembly.Memory (the project's TypeScript libraries leave it out): its memory starts on a page. */
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory;

function takeStaging(): Buffer {
  return spareStaging.pop() ?? Buffer.from(new WasmMemory({ initial: STAGING_BYTES / WASM_PAGE }).buffer, 0, STAGING_BYTES);
}

/**
 * The direct writes of one restore part: whether the file system still takes them (once refused,
 * the part's later files are not tried again), and the writes in flight, which the part's writer
 * waits on before it takes the next chunk.
 */
export class DirectWrites {
  private refused = false;
  private readonly pending = new Set<Promise<void>>();

  /** Whether a file (or a range of one) starting at `offset` may be written direct. */
  writable(offset: number): boolean {
    return O_DIRECT !== undefined && !this.refused && offset % DIRECT_ALIGNMENT === 0;
  }

  /**
   * Opens `file` for direct writes with `flags` (O_WRONLY, O_CREAT, O_EXCL...): undefined when the
   * file system refuses O_DIRECT; the caller then opens it the ordinary way (open(2) fails before
   * it creates anything).
   */
  open(file: string, flags: number, mode: number): number | undefined {
    if (O_DIRECT === undefined || this.refused) return undefined;
    try {
      return fs.openSync(file, flags | O_DIRECT, mode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
      this.refused = true;
      return undefined;
    }
  }

  /** A write was refused (EINVAL): no more direct writes in this part. */
  refuse(): void {
    this.refused = true;
  }

  add(write: Promise<void>): void {
    this.pending.add(write);
    void write.then(() => this.pending.delete(write));
  }

  /** Waits until at most `limit` writes are in flight. */
  async room(limit: number): Promise<void> {
    while (this.pending.size > limit) await Promise.race(this.pending);
  }
}

/** What end() leaves: the descriptor to fsync and close once `written` resolves, and one more to close. */
export interface DirectFileEnd {
  readonly fd: number;
  readonly otherFd: number | undefined;
  /** Every write of the file done; rejects with the first failure. */
  readonly written: Promise<void>;
}

/**
 * One file (or range) written sequentially from `position` through a descriptor opened by
 * openDirect. write() stages and sends whole blocks to libuv's pool; end() writes the rest.
 */
export class DirectFileWriter {
  private staging: Buffer = takeStaging();
  private staged = 0;
  /** The ordinary descriptor: the file's tail, or all of the rest after the file system refused. */
  private plain: number | undefined;
  /** This file's writes in flight. */
  private readonly sent: Promise<void>[] = [];
  private failure: Error | undefined;

  constructor(
    private readonly fd: number,
    private readonly file: string,
    private position: number,
    private readonly part: DirectWrites,
  ) {}

  write(chunk: Buffer): void {
    this.throwFailure();
    let from = 0;
    while (from < chunk.length) {
      if (this.plain !== undefined) {
        // Refused meanwhile: what is staged, then the rest, the ordinary way.
        this.writeStagedPlain();
        this.writePlain(chunk.subarray(from));
        return;
      }
      const copied = chunk.copy(this.staging, this.staged, from);
      this.staged += copied;
      from += copied;
      if (this.staged === this.staging.length) this.sendBlocks();
    }
  }

  /** Sends what is staged: whole blocks direct, the bytes short of a block the ordinary way. */
  end(): DirectFileEnd {
    this.throwFailure();
    if (this.plain === undefined) this.sendBlocks();
    if (this.staged > 0) {
      this.plain ??= fs.openSync(this.file, fs.constants.O_WRONLY);
      this.writeStagedPlain();
    }
    spareStaging.push(this.staging);
    const written = Promise.all(this.sent).then(() => {
      if (this.failure) throw this.failure;
    });
    return { fd: this.fd, otherFd: this.plain, written };
  }

  /** A failed restore: waits for the writes in flight, then closes both descriptors. */
  async abandon(): Promise<void> {
    await Promise.all(this.sent);
    fs.closeSync(this.fd);
    if (this.plain !== undefined) fs.closeSync(this.plain);
  }

  /** Sends the whole aligned blocks staged to libuv's pool; the bytes short of a block stay staged. */
  private sendBlocks(): void {
    const blocks = this.staged - (this.staged % DIRECT_ALIGNMENT);
    if (blocks === 0) return;
    const buffer = this.staging;
    const position = this.position;
    this.staging = takeStaging();
    buffer.copy(this.staging, 0, blocks, this.staged);
    this.staged -= blocks;
    this.position += blocks;
    const write = this.writeDirect(buffer, blocks, position).then(
      () => {
        spareStaging.push(buffer);
      },
      (error: Error) => {
        this.failure ??= error;
      },
    );
    this.sent.push(write);
    this.part.add(write);
  }

  /** One block run written direct; refused (EINVAL), written the ordinary way instead. */
  private writeDirect(buffer: Buffer, length: number, position: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const next = (done: number) => {
        if (done === length) return resolve();
        fs.write(this.fd, buffer, done, length - done, position + done, (error, written) => {
          if (!error) return next(done + written);
          if (error.code !== 'EINVAL') return reject(error);
          // An alignment this file system wants larger, or a short write left us unaligned.
          this.part.refuse();
          try {
            this.plain ??= fs.openSync(this.file, fs.constants.O_WRONLY);
            writeAll(this.plain, buffer.subarray(done, length), position + done);
            resolve();
          } catch (plainError) {
            reject(plainError);
          }
        });
      };
      next(0);
    });
  }

  private writeStagedPlain(): void {
    this.writePlain(this.staging.subarray(0, this.staged));
    this.staged = 0;
  }

  private writePlain(bytes: Buffer): void {
    writeAll(this.plain!, bytes, this.position);
    this.position += bytes.length;
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure;
  }
}

/** pwrite until every byte is written (a write may be short). */
export function writeAll(fd: number, bytes: Buffer, position: number): void {
  let written = 0;
  while (written < bytes.length) written += fs.writeSync(fd, bytes, written, bytes.length - written, position + written);
}
