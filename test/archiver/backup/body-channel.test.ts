import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { BODY_BUFFER_BYTES, BODY_WINDOW, receiveBody, sendBody } from '../../../archiver/src/backup/body-channel';
import { CorruptObjectError, exitCodeOf } from '../../../archiver/src/errors';

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('body channel: a part downloaded on the main thread, read on a worker thread', () => {
  it('delivers every byte in order, then the end', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const chunks = Array.from({ length: Math.ceil(data.length / 65_536) }, (_, i) => data.subarray(i * 65_536, (i + 1) * 65_536));
    const { port1, port2 } = new MessageChannel();
    const sender = sendBody(Readable.from(chunks), port1);
    expect((await readAll(receiveBody(port2))).equals(data)).toBe(true);
    await sender.done;
  });

  it('keeps memory bounded: with a reader that does not read, the download pauses', async () => {
    const source = new PassThrough({ highWaterMark: 64 * 1024 });
    const { port1, port2 } = new MessageChannel();
    sendBody(source, port1);
    const received = receiveBody(port2);
    received.pause();
    // Offer far more than the window and the reader's buffer hold: 400 chunks of 64 KiB.
    let offered = 0;
    for (let i = 0; i < 400; i++) {
      if (!source.write(randomBytes(64 * 1024))) break;
      offered += 1;
      await tick();
      if (i > 60 && source.writableLength > 0) break;
    }
    await tick();
    // The source is left holding what the channel refused: the download waits, nothing piles up
    // beyond the reader's buffer and the chunks in flight.
    expect(source.writableLength + source.readableLength).toBeGreaterThan(0);
    expect(received.readableLength).toBeLessThanOrEqual(BODY_BUFFER_BYTES + BODY_WINDOW * 64 * 1024);
    expect(offered).toBeLessThan(400);
    received.destroy();
  });

  it('fails the reader with the download\'s own error, revived by name so that its exit code holds', async () => {
    const source = new PassThrough();
    const { port1, port2 } = new MessageChannel();
    const sender = sendBody(source, port1);
    const received = receiveBody(port2);
    source.write(Buffer.from('the first bytes'));
    setTimeout(() => source.destroy(new CorruptObjectError('part-0003 at s3://bucket is damaged')), 30);
    const error = await readAll(received).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(CorruptObjectError);
    expect(error?.message).toBe('part-0003 at s3://bucket is damaged');
    expect(exitCodeOf(error)).toBe(exitCodeOf(new CorruptObjectError('x')));
    await sender.done;
  });

  it('stops the download when the reader gives up (a damaged part, a full disk)', async () => {
    const source = new PassThrough();
    const { port1, port2 } = new MessageChannel();
    const sender = sendBody(source, port1);
    const received = receiveBody(port2);
    source.write(randomBytes(1024));
    await tick();
    received.on('error', () => undefined);
    received.destroy(new Error('disk full'));
    await sender.done;
    expect(source.destroyed).toBe(true);
  });

  it('stops the download when the job ends from the sending side', async () => {
    const source = new PassThrough();
    const { port1, port2 } = new MessageChannel();
    const sender = sendBody(source, port1);
    receiveBody(port2);
    sender.stop();
    await sender.done;
    expect(source.destroyed).toBe(true);
  });
});
