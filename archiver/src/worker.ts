/** A worker thread of the pool (worker-pool.ts): encodes WAL files and decodes archived objects for the main thread. */
import { parentPort } from 'node:worker_threads';
import { CompressionName } from './compression/codec';
import { Codecs, decodeObject, encodeWalFile } from './wal-object';
import { writeFileAtomically } from './write-file-atomically';
import type { WorkerRequest, WorkerResponse } from './worker-pool';

const codecs = new Codecs();

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
  let response: WorkerResponse;
  const transfer: ArrayBuffer[] = [];
  try {
    if (request.op === 'encode') {
      const encoded = await encodeWalFile(request.file, codecs.get(request.compression as CompressionName, request.level));
      const body = ownBuffer(encoded.body);
      transfer.push(body.buffer as ArrayBuffer);
      response = { id: request.id, ok: true, encoded: { ...encoded, body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) } };
    } else {
      const decoded = await decodeObject(Buffer.from(request.object.buffer, request.object.byteOffset, request.object.byteLength), request.what, codecs);
      if (request.destination !== undefined) {
        await writeFileAtomically(request.destination, decoded, false);
        response = { id: request.id, ok: true, written: decoded.length };
      } else {
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
