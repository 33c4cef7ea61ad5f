import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Implementation } from '../../archiver/src/crc32';
import { ROOT } from '../../testkit/archiver';

describe('crc32: the checksum of every archived segment and backed-up file', () => {
  it('is computed by the SIMD implementation (@node-rs/crc32), not the zlib fallback', () => {
    expect(crc32Implementation()).toBe('simd');
  });

  it('gives the standard check value of CRC-32 (IEEE): "123456789" → cbf43926', () => {
    expect(crc32(Buffer.from('123456789')).toString(16)).toBe('cbf43926');
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });

  it.each([1, 7, 64, 4095, 65_536 + 3, 16 << 20])('equals node:zlib\'s CRC-32 over %i random bytes (objects written before read the same)', (length) => {
    const data = randomBytes(length);
    expect(crc32(data)).toBe(zlibCrc32(data));
  });

  it('continues from a previous CRC, including one with the high bit set, as the chunked readers use it', () => {
    const data = randomBytes(3 << 20);
    let crc = 0;
    let highBitSeen = false;
    for (let offset = 0; offset < data.length; offset += 100_003) {
      crc = crc32(data.subarray(offset, offset + 100_003), crc);
      highBitSeen ||= crc >= 0x8000_0000;
    }
    expect(crc).toBe(zlibCrc32(data));
    expect(highBitSeen).toBe(true);
    // A CRC above 2^31 given as the start value: the same as zlib's continuation.
    const start = 0xdead_beef;
    expect(crc32(data.subarray(0, 1000), start)).toBe(zlibCrc32(data.subarray(0, 1000), start));
  });

  it('works on a worker thread (the backup and push workers compute it there)', async () => {
    const data = randomBytes(1 << 20);
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { crc32 } = require(${JSON.stringify(require.resolve('@node-rs/crc32', { paths: [path.join(ROOT, 'archiver')] }))});
      parentPort.postMessage(crc32(Buffer.from(workerData)));
    `;
    const worker = new Worker(source, { eval: true, workerData: data });
    const result = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(result).toBe(zlibCrc32(data));
  });

  it.each(['@node-rs/crc32-linux-x64-gnu', '@node-rs/crc32'])('ships in the built archiver: the bundles in archiver/dist/lib resolve and load %s', (name) => {
    const lib = path.join(ROOT, 'archiver/dist/lib');
    const script = `const where = require.resolve(${JSON.stringify(name)}, { paths: [${JSON.stringify(lib)}] }); process.stdout.write(require(where).crc32(Buffer.from('123456789')).toString(16) + ' ' + where)`;
    const result = spawnSync(path.join(ROOT, 'archiver/dist/bin/node'), ['-e', script], { encoding: 'utf8', cwd: '/' });
    expect(result.stderr).toBe('');
    const [value, resolved] = result.stdout.split(' ');
    expect(value).toBe('cbf43926');
    expect(resolved.startsWith(path.join(lib, 'node_modules') + path.sep)).toBe(true);
  });
});
