/**
 * A download's body read into one Buffer (archiver/src/storage/read-body.ts): with a known
 * length, into a buffer of exactly that length that owns its memory (the worker pool takes it
 * without a copy); a body that ends short or runs long is an error, never a shorter object.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readBody } from '../../../archiver/src/storage/read-body';

const bytes = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) & 0xff));
/** The bytes as a stream of chunks of `size` (a socket's reads). */
const chunked = (data: Buffer, size: number) => Readable.from(Array.from({ length: Math.ceil(data.length / size) }, (_, i) => data.subarray(i * size, (i + 1) * size)));

describe('readBody', () => {
  it('joins the chunks into one buffer of the Content-Length that owns all its memory', async () => {
    const body = await readBody(chunked(bytes, 16_384), bytes.length);
    expect(body.equals(bytes)).toBe(true);
    expect(body.byteOffset).toBe(0);
    expect(body.buffer.byteLength).toBe(bytes.length);
  });

  it('refuses a body that ends before its Content-Length (a connection cut short)', async () => {
    await expect(readBody(chunked(bytes.subarray(0, 99_000), 16_384), bytes.length)).rejects.toThrow('the body ended after 99000 of its 100000 bytes');
  });

  it('refuses a body longer than its Content-Length', async () => {
    await expect(readBody(chunked(bytes, 16_384), bytes.length - 1)).rejects.toThrow('longer than its Content-Length of 99999 bytes');
  });

  it('joins the chunks when no length is known, and reads an empty body', async () => {
    expect((await readBody(chunked(bytes, 10_000), undefined)).equals(bytes)).toBe(true);
    expect((await readBody(Readable.from([]), 0)).length).toBe(0);
    expect((await readBody(Readable.from([]), undefined)).length).toBe(0);
  });
});
