/**
 * Streamed uploads to S3: the archiver's own multipart engine (archiver/src/storage/s3.ts
 * putStream: parts through the project's Limiter, each retried by the RetryPolicy) against
 * @aws-sdk/lib-storage's `Upload`, at the same part size and concurrency, to one s3rver on
 * 127.0.0.1. Rounds alternate the two; the table gives the median and the range.
 *
 *   npx tsx bench/multipart.ts [--mib 256] [--rounds 5]
 *
 * Measured 2026-11-30 on the development machine (2 cores, shared): see the comment on putStream.
 */
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { openStorage } from '../archiver/src/storage/open';
import { startS3Server } from '../testkit/s3-server';
import { fixed, median, table } from './lib/report';

const PART_SIZE = 8 * 1024 * 1024;
const CONCURRENCY = 4;

function argument(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
}

/** `bytes` of compressible, non-repeating data, produced in 1 MiB chunks as it is read. */
function source(bytes: number): Readable {
  let produced = 0;
  let x = 12345;
  return new Readable({
    read() {
      if (produced >= bytes) return void this.push(null);
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, bytes - produced));
      for (let i = 0; i + 4 <= chunk.length; i += 4) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        chunk.writeUInt32LE(i % 8192 < 4096 ? x >>> 0 : 0, i);
      }
      produced += chunk.length;
      this.push(chunk);
    },
  });
}

async function main(): Promise<void> {
  const mib = argument('mib', 256);
  const rounds = argument('rounds', 5);
  const bytes = mib * 1024 * 1024;
  const server = await startS3Server({ buckets: ['bench'] });
  try {
    const ours = await openStorage({
      kind: 's3',
      bucket: 'bench',
      endpoint: server.endpoint,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      partSizeBytes: PART_SIZE,
      partConcurrency: CONCURRENCY,
    });
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: server.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    const ways: Record<string, (key: string) => Promise<void>> = {
      'ours (s3.ts putStream)': (key) => ours.putStream(key, source(bytes)),
      '@aws-sdk/lib-storage Upload': async (key) => {
        await new Upload({ client, params: { Bucket: 'bench', Key: key, Body: source(bytes) }, partSize: PART_SIZE, queueSize: CONCURRENCY }).done();
      },
    };
    const seconds: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? Object.keys(ways) : Object.keys(ways).reverse();
      for (const way of order) {
        const started = process.hrtime.bigint();
        await ways[way](`upload-${round}-${way.length}`);
        seconds[way].push(Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
    const rows = Object.entries(seconds).map(([way, runs]) => {
      const rates = runs.map((s) => mib / s);
      return [way, fixed(median(runs), 2), `${fixed(median(rates), 0)} (${fixed(Math.min(...rates), 0)}–${fixed(Math.max(...rates), 0)})`];
    });
    console.log(`Streamed upload of ${mib} MiB to s3rver, ${PART_SIZE >> 20} MiB parts, ${CONCURRENCY} at once, median of ${rounds} alternating rounds\n`);
    console.log(table(['engine', 'seconds', 'MiB/s (range)'], rows));
    await ours.close();
    client.destroy();
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
