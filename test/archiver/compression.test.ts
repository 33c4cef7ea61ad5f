import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable, type Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPRESSION_NAMES, type CompressionName, DEFAULT_COMPRESSION, loadCodec, parseCompressionName } from '../../archiver/src/compression';
import { CompressionConfigError, DecompressionError } from '../../archiver/src/errors';
import { STREAM_FRAME_SIZE } from '../../archiver/src/compression/lz4';
import { DECOMPRESS_STREAM_CHUNK } from '../../archiver/src/compression/zstd';
import { freePort } from '../../testkit/ports';

const SEGMENT_SIZE = 16 * 1024 * 1024;
const REPO = path.resolve(__dirname, '../..');

/** The command-line tool that reads each codec's output (none for `none`). */
const CLI: Partial<Record<CompressionName, string>> = { zstd: 'zstd', lz4: 'lz4', gzip: 'gzip', brotli: 'brotli' };
const CODECS_WITH_CHECKSUM: readonly CompressionName[] = ['zstd', 'lz4', 'gzip'];

/** A real segment where a PostgreSQL server can run here (root, server binaries), else a synthetic one. */
const POSTGRES_BIN = process.getuid?.() === 0 && which('runuser') ? postgresBin() : undefined;
const SEGMENT_SOURCE = POSTGRES_BIN === undefined ? 'a synthetic WAL-like segment: no PostgreSQL server here' : 'from a throwaway PostgreSQL cluster';

let scratch: string;
let segment: Buffer;
/** Output of a codec other than the one under test. */
let otherCodecOutput: Buffer;
const samples: Record<string, Buffer> = {
  'zero-length': Buffer.alloc(0),
  'one byte': Buffer.from([0x42]),
  random: randomBytes(1024 * 1024 + 17),
  'highly compressible (16 MiB of zeros)': Buffer.alloc(SEGMENT_SIZE),
};

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'compression-test-'));
  segment = POSTGRES_BIN === undefined ? syntheticWalSegment() : await realWalSegment(POSTGRES_BIN);
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe.each(COMPRESSION_NAMES)('%s codec', (name) => {
  const codec = loadCodec(name);

  it.each(Object.keys(samples))('round-trips %s', async (sample) => {
    const data = samples[sample];
    const compressed = await codec.compress(data);
    expect((await codec.decompress(compressed)).equals(data)).toBe(true);
    // Told the size recorded with the object, as a WAL fetch tells it.
    expect((await codec.decompress(compressed, data.length)).equals(data)).toBe(true);
  });

  it(`round-trips a 16 MiB WAL segment (${SEGMENT_SOURCE})`, async () => {
    const compressed = await codec.compress(segment);
    expect((await codec.decompress(compressed)).equals(segment)).toBe(true);
    if (name !== 'none') {
      expect(compressed.length).toBeLessThan(segment.length / 2);
    }
  });

  it('round-trips through its streams, fed in uneven pieces, across several lz4 frames', async () => {
    const data = Buffer.concat([segment, samples.random, segment.subarray(0, 3 * STREAM_FRAME_SIZE + 5)]);
    const compressed = await throughStream(codec.compressStream(), data, 65_521);
    expect((await throughStream(codec.decompressStream(), compressed, 4_093)).equals(data)).toBe(true);
    // Both directions speak the same format.
    expect((await codec.decompress(compressed)).equals(data)).toBe(true);
    const oneShot = await codec.compress(data);
    expect((await throughStream(codec.decompressStream(), oneShot, 1_000_003)).equals(data)).toBe(true);
  });

  it('streams an empty input to what decompresses to empty', async () => {
    const compressed = await throughStream(codec.compressStream(), Buffer.alloc(0));
    expect(await codec.decompress(compressed)).toHaveLength(0);
    expect(await throughStream(codec.decompressStream(), compressed)).toHaveLength(0);
  });

  it('compresses several segments at once', async () => {
    const inputs = [segment, samples.random, segment.subarray(1000)];
    const outputs = await Promise.all(inputs.map((input) => codec.compress(input)));
    const restored = await Promise.all(outputs.map((output) => codec.decompress(output)));
    restored.forEach((data, index) => expect(data.equals(inputs[index])).toBe(true));
  });

  if (name === 'none') {
    return;
  }

  describe('fails on bad input with a DecompressionError naming the codec, whole or streamed', () => {
    const cases: Array<[string, (compressed: Buffer) => Buffer]> = [
      ['empty input', () => Buffer.alloc(0)],
      ['truncated input', (compressed) => compressed.subarray(0, compressed.length - 7)],
      ['input cut after the header', (compressed) => compressed.subarray(0, 12)],
      ['garbage', () => Buffer.from('this was never compressed, it is plain text of some length')],
      ["another codec's output", () => otherCodecOutput],
    ];
    if (CODECS_WITH_CHECKSUM.includes(name)) {
      cases.push(['one flipped bit in the middle', (compressed) => flip(compressed, compressed.length >> 1, 1)]);
      cases.push(['64 corrupted bytes in the middle', (compressed) => flip(compressed, compressed.length >> 1, 64)]);
    }
    if (name !== 'brotli') {
      // Node's brotli decoder stops at the end of the stream and ignores what follows.
      cases.push(['trailing bytes after the data', (compressed) => Buffer.concat([compressed, Buffer.from('trailing junk!')])]);
    }

    beforeAll(async () => {
      otherCodecOutput = await loadCodec(name === 'gzip' ? 'zstd' : 'gzip').compress(samples.random);
    });

    it.each(cases)('fails for %s', async (_label, corrupt) => {
      const bad = corrupt(await codec.compress(segment));
      await expectDecompressionError(codec.decompress(bad), name);
      await expectDecompressionError(codec.decompress(bad, segment.length), name);
      await expectDecompressionError(throughStream(codec.decompressStream(), bad, 65_536), name);
    });

    it("keeps the caller's error when the caller destroys the stream (a pipeline whose source failed)", async () => {
      const stream = codec.decompressStream();
      const cause = Object.assign(new Error('source failed'), { code: 'ENOENT', errno: -2 });
      const emitted = new Promise<unknown>((resolve) => stream.once('error', resolve));
      stream.write((await codec.compress(samples.random)).subarray(0, 100));
      stream.destroy(cause);
      expect(await emitted).toBe(cause);
    });
  });
});

describe('frames', () => {
  it('zstd frames carry no content checksum of their own (the CRC-32 of envelope and manifest covers the same bytes)', async () => {
    const codec = loadCodec('zstd');
    const frame = await codec.compress(samples.random);
    expect(frame.readUInt32LE(0)).toBe(0xfd2fb528);
    expect(frame[4] & 0x04).toBe(0); // Frame_Header_Descriptor: Content_Checksum_flag
    const chunked = codec.chunkCompressor!(samples.random.length);
    chunked.push(samples.random, true);
    expect(chunked.output()[4] & 0x04).toBe(0);
  });

  it('zstd still reads, and verifies, frames written with a content checksum (objects archived before)', async () => {
    const original = samples.random.subarray(0, 256 * 1024);
    const withChecksum = execFileSync('zstd', ['-1', '-c', '--check'], { input: original });
    expect(withChecksum[4] & 0x04).toBe(0x04);
    const codec = loadCodec('zstd');
    expect((await codec.decompress(withChecksum)).equals(original)).toBe(true);
    // A damaged checksum field (the frame's last 4 bytes) fails to decompress.
    const damaged = Buffer.from(withChecksum);
    damaged[damaged.length - 1] ^= 0xff;
    await expect(codec.decompress(damaged)).rejects.toThrow();
  });

  it('zstd decompresses into the memory the caller hands in when the size is known, and into its own when it is not', async () => {
    const codec = loadCodec('zstd');
    const compressed = await codec.compress(segment);
    const memory = Buffer.alloc(segment.length + 100);
    const asked: number[] = [];
    const restored = await codec.decompress(compressed, segment.length, (size) => {
      asked.push(size);
      return memory.subarray(0, size);
    });
    expect(asked).toEqual([segment.length]);
    expect(restored.buffer).toBe(memory.buffer);
    expect(restored.equals(segment)).toBe(true);
    expect(memory.subarray(0, segment.length).equals(segment)).toBe(true);
    // Without a recorded size there is no size to allocate: the codec's own memory.
    const unsized = await codec.decompress(compressed, undefined, () => {
      throw new Error('not asked without a size');
    });
    expect(unsized.equals(segment)).toBe(true);
  });

  it('lz4 output is an LZ4 frame (not a raw block) with a content checksum', async () => {
    const frame = await loadCodec('lz4').compress(samples.random);
    expect(frame.readUInt32LE(0)).toBe(0x184d2204);
    expect(frame[4] & 0x04).toBe(0x04); // FLG: C.Checksum
  });

  it('lz4 decodes every one of concatenated frames (lz4-napi alone returns only the first)', async () => {
    const codec = loadCodec('lz4');
    const parts = [samples.random, segment.subarray(0, 100_000), samples['one byte']];
    const frames = await Promise.all(parts.map((part) => codec.compress(part)));
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    const joined = Buffer.concat([frames[0], skippable, frames[1], frames[2]]);
    expect((await codec.decompress(joined)).equals(Buffer.concat(parts))).toBe(true);
    expect((await throughStream(codec.decompressStream(), joined, 3)).equals(Buffer.concat(parts))).toBe(true);
  });

  it('zstd decompresses a stream into MiB chunks, not one chunk per 128 KiB block (the per-chunk work after it is what a restore paid for)', async () => {
    const codec = loadCodec('zstd');
    const compressed = await codec.compress(segment);
    const chunks: Buffer[] = [];
    // A Writable sees the chunks as pushed (an async iterator would join what is buffered).
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    await pipeline(Readable.from([compressed.subarray(0, 1000), compressed.subarray(1000)]), codec.decompressStream(), sink);
    expect(Buffer.concat(chunks).equals(segment)).toBe(true);
    expect(chunks.map((chunk) => chunk.length)).toStrictEqual(Array(SEGMENT_SIZE / DECOMPRESS_STREAM_CHUNK).fill(DECOMPRESS_STREAM_CHUNK));
  });

  it('zstd fills chunks taken from the allocator it is given: a consumer that gives each one back once read gets the same memory again', async () => {
    const codec = loadCodec('zstd');
    // Two inputs back to back, the second cut short, so that the stream also ends on a partial chunk.
    const data = Buffer.concat([segment, segment.subarray(0, 300_001)]);
    const compressed = await codec.compress(data);
    const free: Buffer[] = [];
    const handedOut = new Set<ArrayBuffer>();
    let allocations = 0;
    const allocate = (size: number) => {
      expect(size).toBe(DECOMPRESS_STREAM_CHUNK);
      const reused = free.pop();
      if (reused) return reused;
      allocations++;
      const fresh = Buffer.alloc(size);
      handedOut.add(fresh.buffer as ArrayBuffer);
      return fresh;
    };
    const digest = createHash('sha256');
    let length = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        expect(handedOut.has(chunk.buffer as ArrayBuffer)).toBe(true);
        digest.update(chunk);
        length += chunk.length;
        free.push(Buffer.from(chunk.buffer, 0, DECOMPRESS_STREAM_CHUNK)); // read: given back
        callback();
      },
    });
    await pipeline(Readable.from([compressed.subarray(0, 4096), compressed.subarray(4096)]), codec.decompressStream(allocate), sink);
    expect(length).toBe(data.length);
    expect(digest.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    // 17 chunks went through; only as many were allocated as were out at once (the stream holds
    // the one it fills while the sink reads the last).
    expect(allocations).toBeLessThanOrEqual(3);
  });

  describe('zstd told the recorded size (a WAL object: frames written chunk by chunk carry no content size)', () => {
    const chunked = (data: Buffer) => {
      const compressor = loadCodec('zstd').chunkCompressor!(data.length);
      for (let at = 0; at < data.length; at += 65_536) compressor.push(data.subarray(at, at + 65_536), at + 65_536 >= data.length);
      return Buffer.from(compressor.output());
    };

    it('decodes a chunked frame into one buffer of exactly that size, no copy of a larger one', async () => {
      const restored = await loadCodec('zstd').decompress(chunked(segment), segment.length);
      expect(restored.equals(segment)).toBe(true);
      expect(restored.buffer.byteLength).toBe(segment.length);
    });

    it('decodes every one of concatenated frames', async () => {
      const joined = Buffer.concat([chunked(segment.subarray(0, 1_000_000)), chunked(samples.random)]);
      const expected = Buffer.concat([segment.subarray(0, 1_000_000), samples.random]);
      expect((await loadCodec('zstd').decompress(joined, expected.length)).equals(expected)).toBe(true);
    });

    it('fails when the frame holds more than the recorded size, and returns short output for the caller to refuse', async () => {
      const codec = loadCodec('zstd');
      await expectDecompressionError(codec.decompress(chunked(segment), segment.length - 1), 'zstd');
      expect(await codec.decompress(chunked(segment.subarray(0, 4096)), segment.length)).toHaveLength(4096);
      // A failure leaves nothing behind for the next call.
      expect((await codec.decompress(chunked(segment), segment.length)).equals(segment)).toBe(true);
    });

    it('fails for a chunked frame cut short', async () => {
      const frame = chunked(segment);
      await expectDecompressionError(loadCodec('zstd').decompress(frame.subarray(0, frame.length >> 1), segment.length), 'zstd');
    });
  });

  it('zstd with workers writes the same format', async () => {
    const codec = loadCodec('zstd', { workers: 2 });
    const compressed = await codec.compress(segment);
    expect((await loadCodec('zstd').decompress(compressed)).equals(segment)).toBe(true);
    const streamed = await throughStream(codec.compressStream(), segment, 65_536);
    expect((await loadCodec('zstd').decompress(streamed)).equals(segment)).toBe(true);
  });

  it.each([
    ['zstd', 3],
    ['zstd', -1],
    ['gzip', 6],
    ['brotli', 4],
  ] as const)('%s at level %d round-trips and reports its level', async (name, level) => {
    const codec = loadCodec(name, { level });
    expect(codec.level).toBe(level);
    expect((await codec.decompress(await codec.compress(segment))).equals(segment)).toBe(true);
  });
});

describe('command-line interoperability', () => {
  for (const name of COMPRESSION_NAMES) {
    const tool = CLI[name];
    if (tool === undefined) {
      continue;
    }
    // scripts/system-deps.sh installs every tool (npm test runs it): a missing one is a failure.
    it(
      `${tool} -d reads our output (whole and streamed), and we read ${tool}'s`,
      async () => {
        expect(which(tool), `${tool} is not on PATH: run scripts/system-deps.sh`).toBe(true);
        const codec = loadCodec(name);
        const data = segment;
        const whole = path.join(scratch, `whole-${name}`);
        writeFileSync(whole, await codec.compress(data));
        expect(execFileSync(tool, ['-d', '-c', whole], { maxBuffer: 64 << 20 }).equals(data)).toBe(true);

        const streamedInput = Buffer.concat([data, data.subarray(0, STREAM_FRAME_SIZE + 1)]);
        const streamed = path.join(scratch, `streamed-${name}`);
        writeFileSync(streamed, await throughStream(codec.compressStream(), streamedInput, 65_536));
        expect(execFileSync(tool, ['-d', '-c', streamed], { maxBuffer: 64 << 20 }).equals(streamedInput)).toBe(true);

        const raw = path.join(scratch, `raw-${name}`);
        writeFileSync(raw, data);
        // The tools' fastest level: what is tested is that we read their format, and brotli's
        // default (quality 11) takes half a minute for 16 MiB.
        const byTool = execFileSync(tool, ['-1', '-c', raw], { maxBuffer: 64 << 20 });
        expect((await codec.decompress(byTool)).equals(data)).toBe(true);
        expect((await throughStream(codec.decompressStream(), byTool, 65_536)).equals(data)).toBe(true);
      },
    );
  }
});

describe('parseCompressionName', () => {
  it.each(COMPRESSION_NAMES)('accepts %s', (name) => {
    expect(parseCompressionName(name, 'ARCHIVER_COMPRESSION')).toBe(name);
  });

  it('gives the default when unset or empty', () => {
    expect(DEFAULT_COMPRESSION).toBe('zstd');
    expect(parseCompressionName(undefined, 'ARCHIVER_COMPRESSION')).toBe(DEFAULT_COMPRESSION);
    expect(parseCompressionName('', 'ARCHIVER_COMPRESSION')).toBe(DEFAULT_COMPRESSION);
  });

  it.each(['snappy', 'ZSTD', ' zstd', 'zstd-1', 'lz4 '])('fails for %j, naming the variable, the value and the accepted values', (value) => {
    const parse = (): CompressionName => parseCompressionName(value, 'ARCHIVER_COMPRESSION');
    expect(parse).toThrow(CompressionConfigError);
    expect(parse).toThrow(`ARCHIVER_COMPRESSION=${JSON.stringify(value)} is not a compression; expected one of zstd, lz4, gzip, brotli, none`);
  });
});

describe('loadCodec', () => {
  it.each([
    ['zstd', { level: 23 }, 'zstd level 23 is out of range; expected an integer from -7 to 22'],
    ['zstd', { level: 1.5 }, 'zstd level 1.5 is out of range'],
    ['zstd', { workers: -1 }, 'zstd workers -1 is out of range'],
    ['gzip', { level: 0 }, 'gzip level 0 is out of range; expected an integer from 1 to 9'],
    ['brotli', { level: 12 }, 'brotli level 12 is out of range; expected an integer from 0 to 11'],
    ['lz4', { level: 1 }, 'lz4 compression takes no level option (received 1)'],
    ['gzip', { workers: 2 }, 'gzip compression takes no workers option (received 2)'],
    ['none', { level: 1 }, 'none compression takes no level option'],
  ] as const)('fails for %s with %j', (name, options, message) => {
    expect(() => loadCodec(name, options)).toThrow(CompressionConfigError);
    expect(() => loadCodec(name, options)).toThrow(message);
  });

  it('fails for an unknown name', () => {
    expect(() => loadCodec('snappy' as CompressionName)).toThrow('unknown compression "snappy"; expected one of zstd, lz4, gzip, brotli, none');
  });

  it('loads only the library of the codec in use (the archiver starts once per segment)', () => {
    const script = `
      const { loadCodec } = require(${JSON.stringify(path.join(REPO, 'archiver/src/compression/index.ts'))});
      const loaded = () => ['zstd-napi', 'lz4-napi'].filter((m) => Object.keys(require.cache).some((k) => k.includes('/node_modules/' + m + '/')));
      const before = loaded();
      loadCodec('gzip');
      const afterGzip = loaded();
      loadCodec('lz4');
      console.log(JSON.stringify({ before, afterGzip, afterLz4: loaded() }));`;
    const result = spawnSync(process.execPath, [require.resolve('tsx/cli'), '-e', script], { cwd: REPO, encoding: 'utf8' });
    expect(result.stderr.replace(/^npm warn.*\n/gm, '')).toBe('');
    expect(JSON.parse(result.stdout.trim().split('\n').pop() ?? '')).toStrictEqual({ before: [], afterGzip: [], afterLz4: ['lz4-napi'] });
  });
});

/** Feeds `input` to `stream` in `pieceSize` pieces and collects what it emits. */
async function throughStream(stream: Transform, input: Buffer, pieceSize = 65_536): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < input.length; offset += pieceSize) {
    pieces.push(input.subarray(offset, offset + pieceSize));
  }
  const output: Buffer[] = [];
  await pipeline(Readable.from(pieces), stream, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      output.push(chunk);
    }
  });
  return Buffer.concat(output);
}

async function expectDecompressionError(promise: Promise<unknown>, codec: CompressionName): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(DecompressionError);
  expect((error as DecompressionError).codec).toBe(codec);
  expect((error as Error).message).toMatch(new RegExp(`^cannot decompress ${codec} data \\(corrupted, truncated or not ${codec}\\): .+`));
}

function flip(data: Buffer, at: number, count: number): Buffer {
  const copy = Buffer.from(data);
  for (let index = at; index < at + count; index++) {
    copy[index] ^= index === at && count === 1 ? 0x01 : 0x5a;
  }
  return copy;
}

function which(tool: string): boolean {
  return spawnSync('which', [tool], { stdio: 'ignore' }).status === 0;
}

/**
 * A finished 16 MiB segment from a throwaway PostgreSQL cluster (about 2 s), made the way
 * shared/bench/archive-bench.sh makes them: md5 text rows. Runs the server as the postgres user in
 * a temporary directory, on a free port and its own socket directory, and removes it all.
 */
async function realWalSegment(bin: string): Promise<Buffer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'compression-wal-'));
  const data = path.join(dir, 'data');
  const asPostgres = (command: string, args: string[]): string =>
    execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, command), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    execFileSync('chown', ['postgres', dir]);
    asPostgres('initdb', ['-D', data, '-A', 'trust', '--no-sync']);
    const port = await freePort();
    const settings = [`port=${port}`, `unix_socket_directories='${dir}'`, 'fsync=off', 'max_wal_size=1GB', 'checkpoint_timeout=1h'];
    writeFileSync(path.join(data, 'postgresql.auto.conf'), settings.join('\n') + '\n');
    asPostgres('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', 'start']);
    const sql = (query: string): string => asPostgres('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-qAtX', '-c', query]).trim();
    sql('create table t(id bigint, a text, b text)');
    sql('insert into t select g, md5(g::text), repeat(md5((g%1000)::text), 4) from generate_series(1, 150000) g');
    const current = sql('select pg_walfile_name(pg_current_wal_lsn())');
    const finished = readdirSync(path.join(data, 'pg_wal'))
      .filter((file) => /^[0-9A-F]{24}$/.test(file) && file < current)
      .sort()
      .pop();
    if (finished === undefined) {
      throw new Error(`no finished WAL segment before ${current}`);
    }
    return readFileSync(path.join(data, 'pg_wal', finished));
  } finally {
    try {
      asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
    } catch {
      // never started
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) {
    return undefined;
  }
  const versions = readdirSync(root)
    .filter((version) => existsSync(path.join(root, version, 'bin', 'initdb')))
    .sort((a, b) => Number(a) - Number(b));
  return versions.length === 0 ? undefined : path.join(root, versions[versions.length - 1], 'bin');
}

/**
 * 16 MiB shaped like WAL of md5 text rows: 8 KiB pages with a small header, records of an id, a
 * 32-character md5 and a 128-character repeated md5, each with a 24-byte record header.
 */
function syntheticWalSegment(): Buffer {
  const page = 8192;
  const out = Buffer.alloc(SEGMENT_SIZE);
  let id = 1;
  for (let pageStart = 0; pageStart < SEGMENT_SIZE; pageStart += page) {
    out.writeUInt32LE(0xd110, pageStart);
    out.writeUInt32LE(pageStart, pageStart + 8);
    let offset = pageStart + 24;
    while (offset + 200 <= pageStart + page) {
      const a = createHash('md5').update(String(id)).digest('hex');
      const b = createHash('md5').update(String(id % 1000)).digest('hex').repeat(4);
      out.writeUInt32LE(200, offset);
      out.writeUInt32LE(id * 2654435761, offset + 4); // stands in for the record's CRC
      out.writeBigUInt64LE(BigInt(id), offset + 24);
      out.write(a, offset + 32, 'latin1');
      out.write(b, offset + 64, 'latin1');
      offset += 200;
      id++;
    }
  }
  return out;
}
