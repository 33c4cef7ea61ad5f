/**
 * A download handed from the main thread to a worker thread, chunk by chunk, over a MessagePort.
 *
 * Why: a restore's worker threads decompress, check and write; if each also opened the storage,
 * each would load the cloud SDK (its code compiled, its objects kept) in an isolate of its own.
 * perf on a 1.1 GB backup-fetch from S3: that cost ~1.4 CPU-seconds more than the same restore
 * from a directory — V8 compiling the SDK three times over and a major collection every few
 * hundred milliseconds in each thread, whose old generation the SDK had filled. The parts are
 * small next to what they restore (zstd: ~4% of it), so the main thread, which holds the one
 * storage client, downloads them and posts the compressed bytes; the threads never load the SDK.
 *
 * Flow control: the sender keeps at most BODY_WINDOW chunks unacknowledged; the receiver acknowledges
 * a chunk once its reader has room for it, so a slow disk slows the download instead of filling
 * memory. A failure on either side ends both: the receiver's stream fails with the sender's
 * error (revived by name, so that exit codes hold), and a receiver that stops early (a damaged
 * part) stops the download.
 */
import { Readable } from 'node:stream';
import type { MessagePort } from 'node:worker_threads';
import { reviveError } from '../errors';

/** Chunks in flight between the threads (each as the storage delivers it: 16–64 KiB typically). */
export const BODY_WINDOW = 32;
/** What the receiving stream buffers before it stops acknowledging. */
export const BODY_BUFFER_BYTES = 1024 * 1024;

/** Sender → receiver. */
type BodyMessage = { readonly type: 'chunk'; readonly data: Uint8Array } | { readonly type: 'end' } | { readonly type: 'error'; readonly error: { name: string; message: string } };

/** Receiver → sender. */
type CreditMessage = { readonly type: 'ack'; readonly count: number } | { readonly type: 'stop' };

/**
 * Posts `body` through `port` until it ends, fails, or the receiver stops it; resolves then (never
 * rejects: the receiver reports what happened). `stop()` ends it from this side (the job settled).
 */
export function sendBody(body: NodeJS.ReadableStream, port: MessagePort): { readonly done: Promise<void>; stop(): void } {
  const stream = body as Readable;
  let inFlight = 0;
  let finished = false;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  // After 'end' or 'error' the port stays open until the receiver has read them (closing it here
  // could drop them): the receiver closes it, or the job's end does (`stop`).
  const finish = (closePort: boolean) => {
    if (closePort) port.close();
    if (finished) return;
    finished = true;
    stream.off('data', onData);
    if (!stream.readableEnded) stream.destroy();
    resolveDone();
  };
  const post = (message: BodyMessage) => {
    if (!finished) port.postMessage(message);
  };
  const onData = (chunk: Buffer) => {
    post({ type: 'chunk', data: chunk });
    inFlight += 1;
    if (inFlight >= BODY_WINDOW) stream.pause();
  };
  port.on('message', (message: CreditMessage) => {
    if (message.type === 'stop') return finish(true);
    inFlight -= message.count;
    if (inFlight < BODY_WINDOW && stream.isPaused()) stream.resume();
  });
  port.on('close', () => finish(false));
  stream.on('data', onData);
  stream.once('end', () => {
    post({ type: 'end' });
    finish(false);
  });
  // `on`, not `once`: a stream destroyed here may still report its end as an error, which must
  // not go unhandled (it would end the process).
  stream.on('error', (error: Error) => {
    post({ type: 'error', error: { name: error.name, message: error.message } });
    finish(false);
  });
  return { done, stop: () => finish(true) };
}

/** The stream of what `sendBody` posts on the other end of `port`. */
export function receiveBody(port: MessagePort): Readable {
  let owed = 0;
  let ended = false;
  const acknowledge = () => {
    if (owed === 0 || ended) return;
    port.postMessage({ type: 'ack', count: owed } satisfies CreditMessage);
    owed = 0;
  };
  const stream = new Readable({
    highWaterMark: BODY_BUFFER_BYTES,
    read() {
      // The reader has room again: the chunks it was owed may come.
      acknowledge();
    },
    destroy(error, callback) {
      if (!ended) {
        ended = true;
        // Stopped early (a damaged part, a full disk): the download stops too.
        port.postMessage({ type: 'stop' } satisfies CreditMessage);
      }
      port.close();
      callback(error);
    },
  });
  port.on('message', (message: BodyMessage) => {
    if (ended) return;
    if (message.type === 'chunk') {
      owed += 1;
      if (stream.push(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength))) acknowledge();
    } else if (message.type === 'end') {
      ended = true;
      stream.push(null);
      port.close();
    } else {
      ended = true;
      stream.destroy(reviveError(message.error));
    }
  });
  return stream;
}
