import type { Allocate } from './compression/codec';

/**
 * Memory for archived objects that a worker thread hands to the main thread and gets back once
 * the object is stored (worker-pool.ts's `recycle`).
 *
 * Why: an encoded segment (~3 MB) travels to the main thread by transfer, and is freed there by
 * its collector; the worker's next segment then lands in fresh memory from the kernel, whose
 * page faults cost more than the copy itself: ~8 ms per 2.9 MB against ~0.1 ms into reused
 * memory (a probe on the development machine), ~15% of a worker's CPU per segment when local
 * archiving is CPU-bound. A transfer detaches the memory from the sender, so memory given back
 * can never be written under a view someone still holds: an abandoned write of the old object
 * sees an empty buffer, never another segment's bytes.
 */
export class SpareBuffers {
  private readonly spares: ArrayBuffer[] = [];

  constructor(
    /** At most this many are kept; more are left to the collector. */
    private readonly keep: number,
    /** New memory is allocated in multiples of this, so that spares fit the next objects too. */
    private readonly granule: number,
  ) {}

  /**
   * A Buffer of `size` bytes at offset 0 of an ArrayBuffer of its own (which can be transferred):
   * the smallest spare that holds it, else new memory. Its contents are undefined.
   */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.spares.length; i++) {
      const length = this.spares[i].byteLength;
      if (length >= size && (best === -1 || length < this.spares[best].byteLength)) best = i;
    }
    if (best !== -1) return Buffer.from(this.spares.splice(best, 1)[0], 0, size);
    const length = Math.max(this.granule, Math.ceil(size / this.granule) * this.granule);
    return Buffer.from(new ArrayBuffer(length), 0, size);
  }

  /** Keeps `memory` for a later `take`, unless enough are kept already. */
  give(memory: ArrayBuffer): void {
    if (memory.byteLength === 0 || this.spares.length >= this.keep) return;
    this.spares.push(memory);
  }

  /** Lets every spare go. */
  clear(): void {
    this.spares.length = 0;
  }

  get size(): number {
    return this.spares.length;
  }
}

/**
 * One buffer lent out again and again, for bytes used and dropped before the next loan: a
 * restored segment that a worker decompresses, verifies and writes out. Decompressing 16 MiB
 * into fresh memory, then writing it, cost 22–48 ms of CPU per segment against ~15 ms into
 * reused memory (a probe on the development machine, 2026-12-02): the page faults, not zstd.
 * A loan while the last one is still out gets new memory instead.
 */
export class ScratchBuffer {
  private memory: Buffer | undefined;
  private lent = false;

  /**
   * Runs `use` with an allocator that lends this buffer (grown to the size asked) once; whatever
   * `use` keeps of it after it settles may be overwritten by the next loan.
   */
  async lend<T>(use: (allocate: Allocate) => Promise<T>): Promise<T> {
    if (this.lent) return use(Buffer.allocUnsafe);
    this.lent = true;
    let given = false;
    try {
      return await use((size) => {
        if (given) return Buffer.allocUnsafe(size); // a second allocation in one loan: its own memory
        given = true;
        if (!this.memory || this.memory.length < size) this.memory = Buffer.allocUnsafe(size);
        return this.memory.subarray(0, size);
      });
    } finally {
      this.lent = false;
    }
  }

  /** Lets the memory go (an idle archiver keeps no 16 MiB for nothing). */
  clear(): void {
    if (!this.lent) this.memory = undefined;
  }

  /** Bytes held. */
  get size(): number {
    return this.memory?.length ?? 0;
  }
}
