/** The worker threads that hash and (de)compress for the background archiver, as bundled. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkerPool } from '../../archiver/src/worker-pool';
import { Codecs, decodeObject, encodeWalFile } from '../../archiver/src/wal-object';
import { CorruptObjectError } from '../../archiver/src/errors';
import { ROOT, makeSegment } from '../../testkit/archiver';
import { SmallDisk } from '../../testkit/small-disk';

const WORKER = path.join(ROOT, 'archiver/dist/lib/worker.cjs');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'worker-pool-'));
const pool = new WorkerPool(WORKER, 2, 'zstd', undefined);
const smallDisk = new SmallDisk(path.join(scratch, 'small-disk'));
afterAll(async () => {
  await pool.close();
  smallDisk.unmount();
  fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the codec pool', () => {
  it.each([
    ['a 41-byte history file (a pooled Buffer)', '00000002.history', Buffer.from('1\t0/3000000\tno recovery target specified\n')],
    ['an empty file', '000000010000000000000002.00000028.backup', Buffer.alloc(0)],
    ['a 16 MiB segment', '000000010000000000000003', makeSegment(5n, 3)],
  ])('encodes %s exactly as the main thread does, and decodes it back', async (_what, name, data) => {
    const file = path.join(scratch, name);
    fs.writeFileSync(file, data);
    const inline = await encodeWalFile(file, new Codecs().get('zstd'));
    const pooled = await pool.encode(file);
    expect(pooled.checksum).toBe(inline.checksum);
    expect(pooled.size).toBe(data.length);
    expect(pooled.body.equals(inline.body)).toBe(true);
    expect(pooled.segmentHeader).toStrictEqual(inline.segmentHeader);
    expect((await pool.decode(pooled.body, name)).equals(data)).toBe(true);
    expect((await decodeObject(pooled.body, name, new Codecs())).equals(data)).toBe(true);
  });

  it('runs many tasks at once and keeps each result with its task', async () => {
    const files = Array.from({ length: 12 }, (_, i) => {
      const file = path.join(scratch, `0000000100000000000000${(16 + i).toString(16).toUpperCase()}`);
      fs.writeFileSync(file, makeSegment(5n, 100 + i, 1 << 20));
      return file;
    });
    const encoded = await Promise.all(files.map((f) => pool.encode(f)));
    const decoded = await Promise.all(encoded.map((e, i) => pool.decode(e.body, files[i])));
    decoded.forEach((data, i) => expect(data.equals(fs.readFileSync(files[i]))).toBe(true));
  });

  it('reports a corrupted object as CorruptObjectError', async () => {
    const file = path.join(scratch, '000000010000000000000009');
    fs.writeFileSync(file, makeSegment(5n, 9, 1 << 20));
    const body = (await pool.encode(file)).body;
    body[body.length - 20] ^= 0xff;
    await expect(pool.decode(body, 'wal/000000010000000000000009')).rejects.toThrow(CorruptObjectError);
  });

  it('fails a task whose file cannot be read, naming it', async () => {
    await expect(pool.encode(path.join(scratch, 'missing'))).rejects.toThrow(/ENOENT.*missing/);
  });

  it('decodes to a file itself: the file whole, no temporary file left, and nothing written for a corrupted object', async () => {
    const file = path.join(scratch, '00000001000000000000000A');
    const data = makeSegment(5n, 10);
    fs.writeFileSync(file, data);
    const body = (await pool.encode(file)).body;
    const restored = path.join(scratch, 'restored', 'RECOVERYXLOG');
    fs.mkdirSync(path.dirname(restored));
    expect(await pool.decodeToFile(Buffer.from(body), 'wal/00000001000000000000000A', restored)).toBe(data.length);
    expect(fs.readFileSync(restored).equals(data)).toBe(true);
    const damaged = Buffer.from(body);
    damaged[damaged.length - 20] ^= 0xff;
    const other = path.join(scratch, 'restored', 'OTHER');
    await expect(pool.decodeToFile(damaged, 'wal/00000001000000000000000A', other)).rejects.toThrow(CorruptObjectError);
    expect(fs.readdirSync(path.dirname(restored))).toEqual(['RECOVERYXLOG']);
  });

  it('decodes segment after segment to files, at once and in turn, each file exactly its own segment (the workers reuse the memory restored bytes pass through)', async () => {
    const single = new WorkerPool(WORKER, 1, 'zstd', undefined);
    try {
      const segments = [17, 18, 19, 20].map((segment, i) => {
        const name = `0000000100000000000000${segment.toString(16).toUpperCase()}`;
        // Sizes differ, so that a shorter segment after a longer one would show stale bytes.
        const data = makeSegment(5n, segment, (4 - i) << 20);
        const file = path.join(scratch, name);
        fs.writeFileSync(file, data);
        return { name, data, file };
      });
      const bodies = await Promise.all(segments.map((s) => single.encode(s.file)));
      const out = path.join(scratch, 'in-turn');
      fs.mkdirSync(out);
      for (let round = 0; round < 2; round++) {
        for (const [i, s] of segments.entries()) {
          const destination = path.join(out, `${s.name}.${round}`);
          expect(await single.decodeToFile(Buffer.from(bodies[i].body), s.name, destination)).toBe(s.data.length);
          expect(fs.readFileSync(destination).equals(s.data)).toBe(true);
        }
      }
      // All at once on one worker, then on two.
      for (const target of [single, pool]) {
        const destinations = segments.map((s) => path.join(out, `${s.name}.together-${target === pool ? 2 : 1}`));
        await Promise.all(segments.map((s, i) => target.decodeToFile(Buffer.from(bodies[i].body), s.name, destinations[i])));
        segments.forEach((s, i) => expect(fs.readFileSync(destinations[i]).equals(s.data)).toBe(true));
      }
    } finally {
      await single.close();
    }
  });

  it('decoding to a full disk fails with ENOSPC and leaves no temporary file; the same worker then restores the next segment whole', async () => {
    const single = new WorkerPool(WORKER, 1, 'zstd', undefined);
    try {
      const name = '000000010000000000000015';
      const data = makeSegment(5n, 21, 16 << 20);
      const file = path.join(scratch, name);
      fs.writeFileSync(file, data);
      const body = (await single.encode(file)).body;
      smallDisk.mount(4);
      await expect(single.decodeToFile(Buffer.from(body), name, path.join(smallDisk.path, 'RECOVERYXLOG'))).rejects.toThrow(/ENOSPC/);
      expect(fs.readdirSync(smallDisk.path)).toEqual([]);
      const disk = fs.statfsSync(smallDisk.path);
      expect(disk.bfree).toBe(disk.blocks);
      const restored = path.join(scratch, 'after-full-disk');
      expect(await single.decodeToFile(Buffer.from(body), name, restored)).toBe(data.length);
      expect(fs.readFileSync(restored).equals(data)).toBe(true);
    } finally {
      smallDisk.unmount();
      await single.close();
    }
  });

  it('takes the memory of an object the caller is done with (consume), and copies one that shares its memory or is not given up', async () => {
    const file = path.join(scratch, '00000001000000000000000B');
    const data = makeSegment(5n, 11, 1 << 20);
    fs.writeFileSync(file, data);
    const encoded = (await pool.encode(file)).body;
    const own = Buffer.from(encoded); // a buffer of its own (larger than Node's pool)
    expect(own.byteOffset === 0 && own.byteLength === own.buffer.byteLength).toBe(true);
    expect((await pool.decode(own, 'wal/00000001000000000000000B', true)).equals(data)).toBe(true);
    expect(own.buffer.byteLength).toBe(0); // moved to the worker: no copy was made
    const kept = Buffer.from(encoded);
    expect((await pool.decode(kept, 'wal/00000001000000000000000B')).equals(data)).toBe(true);
    expect(kept.equals(encoded)).toBe(true);
    // A view into a larger buffer is copied even with consume: the rest belongs to others.
    const shared = Buffer.concat([Buffer.alloc(8), encoded]);
    const view = shared.subarray(8);
    expect((await pool.decode(view, 'wal/00000001000000000000000B', true)).equals(data)).toBe(true);
    expect(view.equals(encoded)).toBe(true);
  });

  it('takes back the memory of a body it encoded once the caller is done with it (recycle), and encodes the next files exactly as before', async () => {
    const files = [12, 13, 14, 15].map((segment) => {
      const file = path.join(scratch, `0000000100000000000000${segment.toString(16).toUpperCase().padStart(2, '0')}`);
      fs.writeFileSync(file, makeSegment(5n, segment, 2 << 20));
      return file;
    });
    const inline = new Codecs().get('zstd');
    // Several rounds, so that later encodes land in memory earlier bodies gave back.
    for (let round = 0; round < 3; round++) {
      for (const file of files) {
        const body = (await pool.encode(file)).body;
        expect(body.equals((await encodeWalFile(file, inline)).body)).toBe(true);
        expect((await decodeObject(body, file, new Codecs())).equals(fs.readFileSync(file))).toBe(true);
        const memory = body.buffer;
        pool.recycle(body);
        // Moved to a worker: neither the body nor any view of its memory can read or write it now.
        expect(body.length).toBe(0);
        expect(memory.byteLength).toBe(0);
        pool.recycle(body); // a second time: nothing to give
      }
    }
  });

  it('leaves alone what it did not hand out: a Buffer of Node\'s shared pool, a copy of a body', async () => {
    const small = Buffer.from('a history file\n');
    expect(small.buffer.byteLength).toBeGreaterThan(small.length); // a slice of Node's pool
    pool.recycle(small);
    expect(small.toString()).toBe('a history file\n');
    expect(Buffer.from('still usable').toString()).toBe('still usable');
    const file = path.join(scratch, '000000010000000000000010');
    fs.writeFileSync(file, makeSegment(5n, 16, 1 << 20));
    const copy = Buffer.from((await pool.encode(file)).body);
    const length = copy.length;
    pool.recycle(copy);
    expect(copy.length).toBe(length);
  });
});
