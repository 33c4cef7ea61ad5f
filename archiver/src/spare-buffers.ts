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
