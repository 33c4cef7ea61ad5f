/**
 * Worker threads for the CPU-heavy work (hashing and compressing 16 MiB segments, decompressing
 * and verifying restored ones). On the main thread that work is ~25 ms per segment and caps
 * the background archiver near 35 segments/s whatever the storage; on workers both cores take
 * part and the main thread keeps talking to storage.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CompressionName } from './compression/codec';
import { EncodedFile } from './wal-object';
import { reviveError } from './errors';

export type WorkerRequest =
  | { readonly id: number; readonly op: 'encode'; readonly file: string; readonly compression: string; readonly level?: number }
  | { readonly id: number; readonly op: 'decode'; readonly object: Uint8Array; readonly what: string; readonly destination?: string }
  /** Memory of an encoded object, given back once stored (spare-buffers.ts); not answered. */
  | { readonly id: number; readonly op: 'recycle'; readonly memory: ArrayBuffer };

export type WorkerResponse =
  | { readonly id: number; readonly ok: true; readonly encoded?: Omit<EncodedFile, 'body'> & { body: Uint8Array }; readonly data?: Uint8Array; readonly written?: number }
  | { readonly id: number; readonly ok: false; readonly error: { name: string; message: string } };

/** The worker script next to this module, when it has been bundled (archiver/dist/lib). */
export function bundledWorkerScript(): string | undefined {
  const script = path.join(__dirname, 'worker.cjs');
  return fs.existsSync(script) ? script : undefined;
}

interface Pending {
  readonly resolve: (response: WorkerResponse) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  /** The task it runs, if any. */
  current: number | undefined;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { request: WorkerRequest; transfer: ArrayBuffer[] }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** The memory of the bodies encode() handed out: only that is ever given back to a worker. */
  private readonly handedOut = new WeakSet<ArrayBuffer>();
  private nextRecycler = 0;

  constructor(
    private readonly script: string,
    private readonly size: number,
    private readonly compression: CompressionName,
    private readonly level: number | undefined,
  ) {}

  async encode(file: string): Promise<EncodedFile> {
    const response = await this.run({ id: 0, op: 'encode', file, compression: this.compression, level: this.level }, []);
    const encoded = response.encoded!;
    this.handedOut.add(encoded.body.buffer as ArrayBuffer);
    return { ...encoded, body: Buffer.from(encoded.body.buffer, encoded.body.byteOffset, encoded.body.byteLength) };
  }

  /**
   * Gives the memory of `body`, a body encode() returned, back to a worker for a later encode
   * (spare-buffers.ts says why). For a caller done with it: `body` is empty afterwards, and any
   * view of its memory too (the transfer detaches it). Anything else is left alone.
   */
  recycle(body: Buffer): void {
    const memory = body.buffer as ArrayBuffer;
    if (!this.handedOut.has(memory) || this.slots.length === 0) return;
    this.handedOut.delete(memory);
    const slot = this.slots[this.nextRecycler++ % this.slots.length];
    slot.worker.postMessage({ id: 0, op: 'recycle', memory } satisfies WorkerRequest, [memory]);
  }

  /**
   * Decodes `object` on a worker. With `consume`, an object that owns its memory is handed over
   * without a copy, and is empty afterwards (its memory moved to the worker): for a caller done
   * with it.
   */
  async decode(object: Buffer, what: string, consume = false): Promise<Buffer> {
    const owned = transferable(object, consume);
    const response = await this.run({ id: 0, op: 'decode', object: owned, what }, [owned.buffer as ArrayBuffer]);
    return Buffer.from(response.data!.buffer, response.data!.byteOffset, response.data!.byteLength);
  }

  /**
   * Decodes `object` on a worker, which writes the result to `destination` itself (a temporary
   * file renamed into place, not fsync'd: writeFileAtomically); resolves with the bytes written.
   * `consume` as for decode().
   */
  async decodeToFile(object: Buffer, what: string, destination: string, consume = false): Promise<number> {
    const owned = transferable(object, consume);
    const response = await this.run({ id: 0, op: 'decode', object: owned, what, destination }, [owned.buffer as ArrayBuffer]);
    return response.written!;
  }

  /** Starts every worker now (each loads the bundle and the codec: tens of milliseconds), not at the first task. */
  warm(): void {
    while (this.slots.length < this.size) this.spawn();
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
    this.slots.length = 0;
  }

  private run(request: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerResponse & { ok: true }> {
    const id = this.nextId++;
    return new Promise<WorkerResponse>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queue.push({ request: { ...request, id }, transfer });
      this.dispatch();
    }).then((response) => {
      if (response.ok) return response;
      throw reviveError(response.error);
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.current === undefined);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const { request, transfer } = this.queue.shift()!;
      slot.current = request.id;
      slot.worker.postMessage(request, transfer);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(this.script);
    worker.unref();
    const slot: Slot = { worker, current: undefined };
    worker.on('message', (response: WorkerResponse) => {
      slot.current = undefined;
      const pending = this.pending.get(response.id);
      this.pending.delete(response.id);
      pending?.resolve(response);
      this.dispatch();
    });
    worker.on('error', (error) => {
      // A crashed worker fails the task it held; the pool starts another for the rest.
      this.slots.splice(this.slots.indexOf(slot), 1);
      if (slot.current !== undefined) {
        this.pending.get(slot.current)?.reject(error);
        this.pending.delete(slot.current);
      }
      this.dispatch();
    });
    this.slots.push(slot);
    return slot;
  }
}

/**
 * `object`'s bytes in memory the worker may own: its own memory when the caller is done with it
 * (`consume`) and it owns all of its ArrayBuffer, else a copy (it may share its memory with others).
 */
function transferable(object: Buffer, consume: boolean): Uint8Array {
  if (consume && object.byteOffset === 0 && object.byteLength === object.buffer.byteLength) return new Uint8Array(object.buffer, 0, object.byteLength);
  const copy = new Uint8Array(object.byteLength);
  copy.set(object);
  return copy;
}
