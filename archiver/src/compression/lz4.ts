/**
 * lz4 through lz4-napi (lz4_flex, prebuilt in an npm platform package). Writes LZ4 frames (the
 * format of `lz4`, not lz4-napi's size-prefixed raw blocks) with a content checksum, on the libuv
 * threadpool.
 *
 * lz4-napi decodes only the first frame of its input and ignores what follows, and has no streams.
 * So this file finds frame boundaries itself (`Lz4FrameSplitter`): `decompress` decodes every frame
 * (`cat a.lz4 b.lz4` is valid lz4, and so is the output of `compressStream`, one frame per
 * `STREAM_FRAME_SIZE` bytes of input) and refuses trailing bytes that are not a frame.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type * as Lz4Napi from 'lz4-napi';
import type { Codec, CodecOptions, CompressionName } from './codec';
import { DecompressionError } from '../errors';
import { rejectEmpty, rejectOptions } from './codec';

/**
 * Input bytes per frame written by `compressStream`: the memory a decompressing stream needs for a
 * frame we wrote. (A single-frame file written by the `lz4` tool is held whole by
 * `decompressStream`: lz4-napi can only decode whole frames.)
 */
export const STREAM_FRAME_SIZE = 4 * 1024 * 1024;

const FRAME_MAGIC = 0x184d2204;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const LEGACY_MAGIC = 0x184c2102;
/** Maximum block size by the BD byte's block-size id (4..7). */
const BLOCK_MAX_SIZE: Readonly<Record<number, number>> = { 4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20 };

export class Lz4Codec implements Codec {
  public readonly name: CompressionName = 'lz4';
  public readonly level = undefined;
  private readonly lz4: typeof Lz4Napi;

  constructor(options: CodecOptions) {
    rejectOptions('lz4', options, []);
    this.lz4 = loadLz4Napi();
  }

  public async compress(data: Buffer): Promise<Buffer> {
    return this.lz4.compressFrame(data, { contentChecksum: true });
  }

  public async decompress(data: Buffer): Promise<Buffer> {
    rejectEmpty('lz4', data);
    const splitter = new Lz4FrameSplitter();
    const frames = splitter.push(data);
    if (splitter.pendingBytes > 0) {
      throw splitter.truncated();
    }
    const parts: Buffer[] = [];
    for (const frame of frames) {
      parts.push(await this.decodeFrame(frame));
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  public compressStream(): Transform {
    return new Lz4CompressStream((chunk) => this.lz4.compressFrame(chunk, { contentChecksum: true }));
  }

  public decompressStream(): Transform {
    return new Lz4DecompressStream((frame) => this.decodeFrame(frame));
  }

  private async decodeFrame(frame: Buffer): Promise<Buffer> {
    try {
      return await this.lz4.decompressFrame(frame);
    } catch (error) {
      throw DecompressionError.from('lz4', error);
    }
  }
}

/** Cuts the input into `STREAM_FRAME_SIZE` pieces and writes each as one frame. */
class Lz4CompressStream extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private framesWritten = 0;

  constructor(private readonly compressFrame: (chunk: Buffer) => Promise<Buffer>) {
    super();
  }

  public override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.writeFrames(false).then(() => callback(), callback);
  }

  public override _flush(callback: TransformCallback): void {
    this.writeFrames(true).then(() => callback(), callback);
  }

  /** Writes every full frame pending; at the end also the rest (for an empty input: one empty frame, as `compress` writes). */
  private async writeFrames(end: boolean): Promise<void> {
    while (this.pendingBytes >= STREAM_FRAME_SIZE || (end && (this.pendingBytes > 0 || this.framesWritten === 0))) {
      const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
      const rest = all.subarray(Math.min(all.length, STREAM_FRAME_SIZE));
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      this.push(await this.compressFrame(all.subarray(0, all.length - rest.length)));
      this.framesWritten++;
    }
  }
}

/** Hands whole frames (see `Lz4FrameSplitter`) to lz4-napi one by one. */
class Lz4DecompressStream extends Transform {
  private readonly splitter = new Lz4FrameSplitter();
  private bytesIn = 0;

  constructor(private readonly decodeFrame: (frame: Buffer) => Promise<Buffer>) {
    super();
  }

  public override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytesIn += chunk.length;
    this.decodeAll(chunk).then(() => callback(), (error: unknown) => callback(DecompressionError.from('lz4', error)));
  }

  public override _flush(callback: TransformCallback): void {
    if (this.bytesIn === 0) {
      callback(new DecompressionError('lz4', 'empty input'));
    } else if (this.splitter.pendingBytes > 0) {
      callback(this.splitter.truncated());
    } else {
      callback();
    }
  }

  private async decodeAll(chunk: Buffer): Promise<void> {
    for (const frame of this.splitter.push(chunk)) {
      this.push(await this.decodeFrame(frame));
    }
  }
}

/** What a frame's descriptor says about the rest of it. */
interface FrameLayout {
  readonly blockChecksum: boolean;
  readonly contentChecksum: boolean;
  readonly maxBlock: number;
}

/**
 * Cuts a byte stream into LZ4 frames (LZ4 Frame Format 1.6) by reading only their headers and
 * block sizes, holding no more than the current frame; skippable frames are dropped. Throws
 * `DecompressionError` at bytes that cannot start or continue a frame.
 */
class Lz4FrameSplitter {
  /** Buffered input: the current frame's bytes, then whatever follows them. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The chunk that reads start from, and its offset; reads within one frame only move forward. */
  private cursorIndex = 0;
  private cursorBase = 0;
  /** Where the next structure of the current frame starts, counted from the frame's first byte. */
  private position = 0;
  /** `undefined` until the current frame's header is read; 'skippable' for a skippable frame. */
  private layout: FrameLayout | 'skippable' | undefined;
  /** Whether `position` is the current frame's end (its EndMark, or a skippable frame's size, was read). */
  private ended = false;
  /** Offset of the current frame in the whole input, for messages. */
  private frameOffset = 0;

  /** Bytes held that do not yet make a whole frame. */
  public get pendingBytes(): number {
    return this.buffered;
  }

  /** The error for an input that ends with `pendingBytes` of an unfinished frame. */
  public truncated(): DecompressionError {
    return new DecompressionError('lz4', `truncated frame: the input ends ${this.buffered} bytes into the frame at byte ${this.frameOffset}`);
  }

  /** Adds input; returns the frames (not skippable ones) that it completes, in order. */
  public push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Buffer[] = [];
    for (let length = this.scan(); length !== undefined; length = this.scan()) {
      const frame = this.take(length);
      if (this.layout !== 'skippable') {
        frames.push(frame);
      }
      this.frameOffset += length;
      this.position = 0;
      this.layout = undefined;
      this.ended = false;
    }
    return frames;
  }

  /** The current frame's length once all of it is buffered; `undefined` until then. */
  private scan(): number | undefined {
    if (this.layout === undefined && !this.readHeader()) {
      return undefined;
    }
    while (!this.ended) {
      const blockHeader = this.read(this.position, 4);
      if (blockHeader === undefined) {
        return undefined;
      }
      const layout = this.layout as FrameLayout;
      const value = blockHeader.readUInt32LE(0);
      if (value === 0) {
        // EndMark, then the content checksum if the frame has one.
        this.position += 4 + (layout.contentChecksum ? 4 : 0);
        this.ended = true;
      } else {
        const blockSize = value & 0x7fffffff;
        if (blockSize > layout.maxBlock) {
          throw new DecompressionError(
            'lz4',
            `block of ${blockSize} bytes at byte ${this.frameOffset + this.position} exceeds the frame's maximum of ${layout.maxBlock}`,
          );
        }
        this.position += 4 + blockSize + (layout.blockChecksum ? 4 : 0);
      }
    }
    return this.buffered >= this.position ? this.position : undefined;
  }

  /** Reads the current frame's header into `layout` and `position`; false until it is buffered. */
  private readHeader(): boolean {
    const head = this.read(0, 6);
    if (head === undefined) {
      // A skippable frame's header is 8 bytes, a frame's at least 7: 6 bytes tell the kind.
      return false;
    }
    const magic = head.readUInt32LE(0);
    if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) {
      const size = this.read(4, 4);
      if (size === undefined) {
        return false;
      }
      this.layout = 'skippable';
      this.position = 8 + size.readUInt32LE(0);
      this.ended = true;
      return true;
    }
    if (magic === LEGACY_MAGIC) {
      throw new DecompressionError('lz4', `legacy lz4 format (lz4 -l) at byte ${this.frameOffset} is not supported`);
    }
    if (magic !== FRAME_MAGIC) {
      throw new DecompressionError('lz4', `no lz4 frame at byte ${this.frameOffset} (magic 0x${magic.toString(16).padStart(8, '0')})`);
    }
    const flg = head[4];
    const bd = head[5];
    const maxBlock = BLOCK_MAX_SIZE[bd >> 4];
    // version 01, reserved bits zero, a known block size
    if (flg >> 6 !== 1 || (flg & 0x02) !== 0 || (bd & 0x8f) !== 0 || maxBlock === undefined) {
      throw new DecompressionError('lz4', `invalid frame descriptor at byte ${this.frameOffset}`);
    }
    this.layout = { blockChecksum: (flg & 0x10) !== 0, contentChecksum: (flg & 0x04) !== 0, maxBlock };
    // magic, FLG, BD, [content size], [dictionary id], header checksum
    this.position = 6 + ((flg & 0x08) !== 0 ? 8 : 0) + ((flg & 0x01) !== 0 ? 4 : 0) + 1;
    return true;
  }

  /** `count` bytes at `position` of the current frame, or `undefined` if not all buffered yet. */
  private read(position: number, count: number): Buffer | undefined {
    if (position + count > this.buffered) {
      return undefined;
    }
    while (this.cursorBase + this.chunks[this.cursorIndex].length <= position) {
      this.cursorBase += this.chunks[this.cursorIndex].length;
      this.cursorIndex++;
    }
    const first = this.chunks[this.cursorIndex];
    const start = position - this.cursorBase;
    if (start + count <= first.length) {
      return first.subarray(start, start + count);
    }
    const bytes = Buffer.alloc(count);
    let copied = first.copy(bytes, 0, start);
    for (let index = this.cursorIndex + 1; copied < count; index++) {
      copied += this.chunks[index].copy(bytes, copied, 0, count - copied);
    }
    return bytes;
  }

  /** Removes the first `length` buffered bytes (the current frame) and returns them. */
  private take(length: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    const rest = all.subarray(length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    this.cursorIndex = 0;
    this.cursorBase = 0;
    return all.subarray(0, length);
  }
}

function loadLz4Napi(): typeof Lz4Napi {
  try {
    return require('lz4-napi') as typeof Lz4Napi;
  } catch (error) {
    throw new Error(
      `lz4 compression needs the native module lz4-napi, which failed to load (${error instanceof Error ? error.message : String(error)}); ` +
        'reinstall it (npm ci installs its prebuilt platform package) or choose another compression',
      { cause: error },
    );
  }
}
