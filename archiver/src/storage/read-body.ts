/**
 * Reads a download's body into one Buffer. The SDKs' own collectors gather the chunks, join them,
 * then copy the result into another fresh array: two copies of every object, each into memory
 * first touched there, and garbage for the collector of the main thread. When the length is
 * known, the body here goes once into a buffer of exactly that length, which owns its memory (the
 * worker pool takes it without a copy).
 */

/** The body's bytes; `expectedLength` (Content-Length) when known, checked: a body that ends short or runs long is an error. */
export async function readBody(body: AsyncIterable<Uint8Array | string>, expectedLength: number | undefined): Promise<Buffer> {
  if (expectedLength === undefined) {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    return Buffer.concat(chunks);
  }
  // Not zero-filled: every byte is written below, or the body is refused.
  const out = Buffer.allocUnsafeSlow(expectedLength);
  let offset = 0;
  for await (const chunk of body) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (offset + bytes.byteLength > expectedLength) {
      throw new Error(`the body is longer than its Content-Length of ${expectedLength} bytes`);
    }
    out.set(bytes, offset);
    offset += bytes.byteLength;
  }
  if (offset !== expectedLength) throw new Error(`the body ended after ${offset} of its ${expectedLength} bytes`);
  return out;
}
