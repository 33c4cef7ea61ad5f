/**
 * Compression benchmark on one WAL segment: `npx tsx bench/compression.ts [segment-file]`.
 *
 * Without a file it uses a synthetic WAL-like segment; a real one is better: `KEEPSEG=/tmp/seg
 * ../shared/bench/archive-bench.sh ...` copies one out of a benchmark cluster.
 *
 * Columns: ratio = compressed / original; compress and decompress MiB/s through the codec's
 * promise API, one call at a time (median of RUNS); "2 at once" = two calls in flight together
 * (MiB/s of input in total: more than one call's figure only where the work runs on the libuv
 * threadpool or on zstd's workers); require ms = loading the codec's library in a fresh `node`
 * (median of 5; the archiver pays it once per segment); CLI = whether the command-line tool
 * (zstd, lz4, gzip, brotli) decompresses the output back to the segment.
 *
 * Figures on a real PostgreSQL 15 segment (md5 text rows, as archive-bench.sh makes), 2026-11-24,
 * 2 shared cores, Node 20.20.2, zstd-napi 0.0.13 (libzstd 1.5.7), lz4-napi 2.10.0:
 *
 * | codec  | level     | ratio | compress MiB/s | 2 at once | decompress MiB/s | 2 at once | require ms | CLI |
 * |--------|-----------|-------|----------------|-----------|------------------|-----------|------------|-----|
 * | zstd   | 1         | 0.178 | 958-1030       | 1090-1096 | 2704-2751        | 1882-1978 | 4.7-4.9    | yes |
 * | zstd   | 2         | 0.164 | 950-962        | 961-963   | 2349-2467        | 1841-2557 | 4.7-4.9    | yes |
 * | zstd   | 3         | 0.177 | 616-622        | 621-624   | 2092-2503        | 1666-2296 | 4.7-4.9    | yes |
 * | zstd   | -1        | 0.341 | 1223-1247      | 1214-1222 | 3039-3090        | 2240-2681 | 4.7-4.9    | yes |
 * | zstd   | 1 workers=2 | 0.181 | 1457-1634    | 1510-1673 | 2527-2737        | 2302-2787 | 4.7-4.9    | yes |
 * | lz4    | -         | 0.401 | 844-946        | 1379-1531 | 994-1022         | 579-639   | 3.6        | yes |
 * | gzip   | 1         | 0.262 | 168-174        | 320-327   | 309-313          | 433-454   | 1.1        | yes |
 * | gzip   | 6         | 0.258 | 78-82          | 132-152   | 283-315          | 418-457   | 1.1        | yes |
 * | brotli | 1         | 0.195 | 400-409        | 670-675   | 280-319          | 388-418   | 1.1        | yes |
 * | brotli | 4         | 0.174 | 143-173        | 226-253   | 333-334          | 403-413   | 1.1        | yes |
 *
 * Two runs while other tests shared the machine (load ~2): compare rows of one run only. zstd-napi
 * has no threadpool API, so two zstd calls at once take turns unless `workers` is set; lz4-napi and
 * node:zlib run on the threadpool. `node -e 0` itself costs 80-86 ms (shared/bench/README.md).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type CodecOptions, type CompressionName, loadCodec } from '../archiver/src/compression';

const RUNS = 7;
const MiB = 1024 * 1024;

interface Case {
  readonly name: CompressionName;
  readonly options: CodecOptions;
}

const CASES: readonly Case[] = [
  { name: 'zstd', options: { level: 1 } },
  { name: 'zstd', options: { level: 2 } },
  { name: 'zstd', options: { level: 3 } },
  { name: 'zstd', options: { level: -1 } },
  { name: 'zstd', options: { level: 1, workers: 2 } },
  { name: 'lz4', options: {} },
  { name: 'gzip', options: { level: 1 } },
  { name: 'gzip', options: { level: 6 } },
  { name: 'brotli', options: { level: 1 } },
  { name: 'brotli', options: { level: 4 } },
  { name: 'none', options: {} },
];

/** The module each codec loads, for the require-time column. */
const LIBRARY: Record<CompressionName, string | undefined> = {
  zstd: 'zstd-napi',
  lz4: 'lz4-napi',
  gzip: 'node:zlib',
  brotli: 'node:zlib',
  none: undefined,
};

const CLI: Partial<Record<CompressionName, string>> = { zstd: 'zstd', lz4: 'lz4', gzip: 'gzip', brotli: 'brotli' };

async function main(): Promise<void> {
  const file = process.argv[2];
  const segment = file === undefined ? syntheticSegment() : readFileSync(file);
  const size = segment.length / MiB;
  console.log(`segment: ${file ?? 'synthetic WAL-like data'} (${size.toFixed(0)} MiB); median of ${RUNS} runs\n`);
  const scratch = mkdtempSync(path.join(tmpdir(), 'compression-bench-'));
  const requireMs = new Map<string, string>();
  const header = ['codec', 'level', 'ratio', 'compress MiB/s', '2 at once', 'decompress MiB/s', '2 at once', 'require ms', 'CLI'];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  try {
    for (const { name, options } of CASES) {
      const codec = loadCodec(name, options);
      const compressed = await codec.compress(segment);
      if (!(await codec.decompress(compressed)).equals(segment)) {
        throw new Error(`${name} did not round-trip`);
      }
      const compressOne = await median(() => codec.compress(segment));
      const compressTwo = await median(() => Promise.all([codec.compress(segment), codec.compress(segment)]));
      const decompressOne = await median(() => codec.decompress(compressed));
      const decompressTwo = await median(() => Promise.all([codec.decompress(compressed), codec.decompress(compressed)]));
      const library = LIBRARY[name];
      if (library !== undefined && !requireMs.has(library)) {
        requireMs.set(library, requireTime(library).toFixed(1));
      }
      const speed = (mebibytes: number, seconds: number): string => (name === 'none' ? '-' : (mebibytes / seconds).toFixed(0));
      const level = [codec.level ?? '-', options.workers ? `workers=${options.workers}` : ''].join(' ').trim();
      const row = [
        name,
        level,
        (compressed.length / segment.length).toFixed(3),
        speed(size, compressOne),
        speed(2 * size, compressTwo),
        speed(size, decompressOne),
        speed(2 * size, decompressTwo),
        library === undefined ? '-' : requireMs.get(library),
        cliReads(name, compressed, segment, scratch),
      ];
      console.log(`| ${row.join(' | ')} |`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Median seconds of RUNS calls, after one warm-up call. */
async function median(run: () => Promise<unknown>): Promise<number> {
  await run();
  const seconds: number[] = [];
  for (let index = 0; index < RUNS; index++) {
    const start = process.hrtime.bigint();
    await run();
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  seconds.sort((a, b) => a - b);
  return seconds[seconds.length >> 1];
}

/** Milliseconds a fresh `node` spends in require(library), median of 5. */
function requireTime(library: string): number {
  const code = `const s = process.hrtime.bigint(); require(${JSON.stringify(library)}); console.log(Number(process.hrtime.bigint() - s) / 1e6);`;
  const times: number[] = [];
  for (let index = 0; index < 5; index++) {
    times.push(Number(execFileSync(process.execPath, ['-e', code], { cwd: path.resolve(__dirname, '../archiver'), encoding: 'utf8' })));
  }
  times.sort((a, b) => a - b);
  return times[2];
}

function cliReads(name: CompressionName, compressed: Buffer, segment: Buffer, scratch: string): string {
  const tool = CLI[name];
  if (tool === undefined) {
    return '-';
  }
  if (spawnSync('which', [tool], { stdio: 'ignore' }).status !== 0) {
    return `(no ${tool})`;
  }
  const file = path.join(scratch, `segment.${name}`);
  writeFileSync(file, compressed);
  const result = spawnSync(tool, ['-d', '-c', file], { maxBuffer: 2 * segment.length });
  return result.status === 0 && result.stdout.equals(segment) ? 'yes' : 'no';
}

/** 16 MiB of 8 KiB pages of md5-text records, roughly like the WAL of archive-bench.sh's inserts. */
function syntheticSegment(): Buffer {
  const out = Buffer.alloc(16 * MiB);
  let id = 1;
  for (let page = 0; page < out.length; page += 8192) {
    out.writeUInt32LE(0xd110, page);
    out.writeUInt32LE(page, page + 8);
    for (let offset = page + 24; offset + 200 <= page + 8192; offset += 200, id++) {
      out.writeUInt32LE(200, offset);
      out.writeUInt32LE(Math.imul(id, 2654435761) >>> 0, offset + 4);
      out.writeBigUInt64LE(BigInt(id), offset + 24);
      out.write(createHash('md5').update(String(id)).digest('hex'), offset + 32, 'latin1');
      out.write(createHash('md5').update(String(id % 1000)).digest('hex').repeat(4), offset + 64, 'latin1');
    }
  }
  return out;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
