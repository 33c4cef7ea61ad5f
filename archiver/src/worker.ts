/** A worker thread of the pool (worker-pool.ts): encodes WAL files and decodes archived objects for the main thread. */
import { parentPort } from 'node:worker_threads';
import { CompressionName } from './compression/codec';
import { ScratchBuffer, SpareBuffers } from './spare-buffers';
import { Codecs, decodeObject, encodeWalFile } from './wal-object';
import { writeFileAtomically } from './write-file-atomically';
import type { WorkerRequest, WorkerResponse } from './worker-pool';

const codecs = new Codecs();

/**
 * Encoded objects' memory, given back by the main thread once stored (spare-buffers.ts). A few
 * per worker cover a backlog (the pool's other objects are in flight); an idle archiver lets
 * them go rather than hold megabytes for nothing.
 */
const spares = new SpareBuffers(3, 1 << 20);
/** A restored segment's memory, from its decompression until it is written out (decode to a file). */
const scratch = new ScratchBuffer();
const IDLE_MEMORY_MS = 30_000;
let idleTimer: NodeJS.Timeout | undefined;
/** Called after each use of the reused memory: 30 s after the last, both let theirs go. */
function releaseMemoryWhenIdle(): void {
  if (idleTimer) idleTimer.refresh();
  else
    idleTimer = setTimeout(() => {
      spares.clear();
      scratch.clear();
    }, IDLE_MEMORY_MS).unref();
}

/**
 * `buffer` backed by an ArrayBuffer of its own, which can be transferred instead of copied. Small
 * Buffers live in Node's shared pool (at an offset, among others' bytes): those are copied into a
 * fresh ArrayBuffer, never transferred.
 */
function ownBuffer(buffer: Buffer): Buffer {
  if (buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength) return buffer;
  const own = new ArrayBuffer(buffer.byteLength);
  new Uint8Array(own).set(buffer);
  return Buffer.from(own);
}

parentPort!.on('message', async (request: WorkerRequest) => {
  if (request.op === 'recycle') {
    spares.give(request.memory);
    releaseMemoryWhenIdle();
    return; // nobody waits for an answer
  }
  let response: WorkerResponse;
  const transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'encode') {
      // The body at offset 0 of memory of its own: it moves to the main thread without a copy.
      const encoded = await encodeWalFile(request.file, codecs.get(request.compression as CompressionName, request.level), (size) => spares.take(size));
      releaseMemoryWhenIdle();
      transfer.push(encoded.body.buffer as ArrayBuffer);
      response = { id: request.id, ok: true, encoded: { ...encoded, body: new Uint8Array(encoded.body.buffer, 0, encoded.body.byteLength) } };
    } else {
      const object = Buffer.from(request.object.buffer, request.object.byteOffset, request.object.byteLength);
      const destination = request.destination;
      if (destination !== undefined) {
        // Written out before the next task: the restored bytes may live in reused memory.
        const written = await scratch.lend(async (allocate) => {
          const decoded = await decodeObject(object, request.what, codecs, allocate);
          await writeFileAtomically(destination, decoded, false);
          return decoded.length;
        });
        releaseMemoryWhenIdle();
        response = { id: request.id, ok: true, written };
      } else {
        const decoded = await decodeObject(object, request.what, codecs);
        const data = ownBuffer(decoded);
        transfer.push(data.buffer as ArrayBuffer);
        response = { id: request.id, ok: true, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
      }
    }
  } catch (error) {
    const e = error as Error;
    response = { id: request.id, ok: false, error: { name: e.name, message: e.message } };
  }
  parentPort!.postMessage(response, transfer);
});
