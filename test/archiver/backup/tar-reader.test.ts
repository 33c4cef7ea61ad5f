/**
 * The restore's tar reader: it reads what part-stream.ts writes (tar-stream's pack), whatever the
 * chunks it is pushed, hands out the data as views into those chunks (used before push returns,
 * so that their memory can be reused), and calls anything else damaged, naming the part.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { loadCodec } from '../../../archiver/src/compression';
import { decodeStream } from '../../../archiver/src/envelope';
import { CorruptObjectError } from '../../../archiver/src/errors';
import { PAX_FILE_SIZE, PAX_OFFSET, PartEntry, partStream } from '../../../archiver/src/backup/part-stream';
import { TAR_BLOCK, TarEntry, TarReader, TarVisitor } from '../../../archiver/src/backup/tar-reader';

interface Read {
  readonly entry: TarEntry;
  readonly data: Buffer;
}

/** A visitor that keeps what it is given (copies: the views are only valid during push). */
class Keeper implements TarVisitor {
  readonly entries: Read[] = [];
  private open: { entry: TarEntry; chunks: Buffer[] } | undefined;
  entry(entry: TarEntry): void {
    expect(this.open).toBeUndefined();
    this.open = { entry, chunks: [] };
  }
  data(chunk: Buffer): void {
    this.open!.chunks.push(Buffer.from(chunk));
  }
  entryEnd(): void {
    this.entries.push({ entry: this.open!.entry, data: Buffer.concat(this.open!.chunks) });
    this.open = undefined;
  }
}

interface Planned {
  readonly name: string;
  readonly type?: 'directory';
  readonly mode: number;
  readonly data?: Buffer;
  /** Store only this range of the file (as a file larger than a part is stored). */
  readonly range?: { readonly offset: number; readonly length: number };
}

/** A part's tar stream as the archiver writes it: part-stream.ts, from real files, unframed. */
async function packed(planned: readonly Planned[]): Promise<Buffer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tar-reader-'));
  try {
    const partEntries: PartEntry[] = planned.map((entry) => {
      const absolute = path.join(dir, entry.name.replace(/\//g, '_'));
      if (entry.type !== 'directory') writeFileSync(absolute, entry.data ?? Buffer.alloc(0));
      const range = entry.range && { ...entry.range, fileSize: entry.data!.length };
      return { absolute, path: entry.name, type: entry.type ?? 'file', mode: entry.mode, mtime: MTIME, ...(range ? { range } : {}) };
    });
    const { stream, result } = partStream(partEntries, loadCodec('none'));
    const out: Buffer[] = [];
    await pipeline(stream, decodeStream('the test part', (name) => loadCodec(name)), new Writable({ write: (chunk: Buffer, _e, callback) => (out.push(chunk), callback()) }));
    await result;
    return Buffer.concat(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readAll(tar: Buffer, pieceSize: number, visitor: TarVisitor = new Keeper()): TarVisitor {
  const reader = new TarReader(visitor, 'parts/0001.tar at file:///repo');
  for (let at = 0; at < tar.length; at += pieceSize) reader.push(tar.subarray(at, at + pieceSize));
  reader.end();
  return visitor;
}

const MTIME = 1_764_000_000;
const longName = `base/16384/${'x'.repeat(140)}`;
const large = randomBytes(2_500_001);
const entries: Planned[] = [
  { name: 'base', type: 'directory', mode: 0o700 },
  { name: 'PG_VERSION', mode: 0o600, data: Buffer.from('15\n') },
  { name: 'empty', mode: 0o600 },
  { name: 'base/1/1259', mode: 0o600, data: randomBytes(8192 * 3) },
  { name: longName, mode: 0o640, data: randomBytes(1000) },
  { name: 'base/16384/16397', mode: 0o600, data: large, range: { offset: 1_000_000, length: 1_500_001 } },
];
/** What each entry's data must read as. */
const expectedData = entries.map((entry) => (entry.range ? entry.data!.subarray(entry.range.offset, entry.range.offset + entry.range.length) : (entry.data ?? Buffer.alloc(0))));

describe('TarReader', () => {
  it('reads every entry part-stream.ts writes, exactly, whatever the size of the chunks it is pushed', async () => {
    const tar = await packed(entries);
    for (const pieceSize of [1, 7, TAR_BLOCK - 1, TAR_BLOCK, TAR_BLOCK + 1, 65_536, tar.length]) {
      const kept = readAll(tar, pieceSize) as Keeper;
      expect(kept.entries.map((read) => read.entry.name), `pieces of ${pieceSize}`).toStrictEqual(['base', 'PG_VERSION', 'empty', 'base/1/1259', longName, 'base/16384/16397']);
      expect(kept.entries.map((read) => read.entry.type)).toStrictEqual(['directory', 'file', 'file', 'file', 'file', 'file']);
      for (const [i, read] of kept.entries.entries()) {
        expect(read.data.equals(expectedData[i]), `${read.entry.name} in pieces of ${pieceSize}`).toBe(true);
        expect(read.entry.size).toBe(expectedData[i].length);
        expect(read.entry.mode).toBe(entries[i].mode);
        expect(read.entry.mtime).toBe(MTIME);
      }
      expect(kept.entries[5].entry.pax).toMatchObject({ [PAX_OFFSET]: '1000000', [PAX_FILE_SIZE]: '2500001' });
      expect(kept.entries[1].entry.pax).toStrictEqual({});
    }
  });

  it('hands out the data as views into the chunk pushed, never copies', async () => {
    const tar = await packed(entries);
    const chunk = Buffer.from(tar); // one chunk: every view must lie inside it
    const views: Buffer[] = [];
    readAll(chunk, chunk.length, { entry: () => undefined, data: (view) => views.push(view), entryEnd: () => undefined });
    expect(views.length).toBeGreaterThan(0);
    for (const view of views) {
      expect(view.buffer).toBe(chunk.buffer);
      expect(view.byteOffset).toBeGreaterThanOrEqual(chunk.byteOffset);
      expect(view.byteOffset + view.length).toBeLessThanOrEqual(chunk.byteOffset + chunk.length);
    }
  });

  it('names the types part-stream.ts never writes, for the visitor to refuse', async () => {
    const tar = rewriteSecondHeader(Buffer.from(await packed(entries)), 156, '2'); // type flag: symlink
    const kept = readAll(tar, 4096) as Keeper;
    expect(kept.entries.map((read) => `${read.entry.type} ${read.entry.name}`).slice(0, 3)).toStrictEqual(['directory base', 'symlink PG_VERSION', 'file empty']);
  });

  it('lets what the visitor throws pass as it is', async () => {
    const tar = await packed(entries);
    const refusal = new Error('the manifest does not list it');
    expect(() =>
      readAll(tar, 4096, {
        entry: (entry) => {
          if (entry.name === 'base/1/1259') throw refusal;
        },
        data: () => undefined,
        entryEnd: () => undefined,
      }),
    ).toThrow(refusal);
  });

  describe('calls a damaged stream damaged (CorruptObjectError naming the part)', () => {
    const damagedBy = async (damage: (tar: Buffer) => Buffer, reason: RegExp) => {
      const tar = damage(Buffer.from(await packed(entries)));
      let error: unknown;
      try {
        readAll(tar, 4096);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CorruptObjectError);
      expect((error as Error).message).toMatch(/^parts\/0001\.tar at file:\/\/\/repo is damaged: its tar stream cannot be read \(/);
      expect((error as Error).message).toMatch(reason);
    };

    it('a header whose bytes changed fails its checksum', () =>
      damagedBy((tar) => {
        tar[TAR_BLOCK + 3] ^= 0x01; // inside PG_VERSION's header (after the directory's)
        return tar;
      }, /a header fails its checksum/));

    it('a stream cut inside an entry', () => damagedBy((tar) => tar.subarray(0, TAR_BLOCK * 7 + 100), /it ends inside an entry/));

    it('a stream cut inside a header', () => damagedBy((tar) => tar.subarray(0, TAR_BLOCK + 100), /it ends inside a header/));

    it('a stream without the end-of-archive marker', async () => {
      const tar = await packed(entries);
      // The last entry's data and padding, without the two zero blocks after it.
      await damagedBy(() => tar.subarray(0, tar.length - 2 * TAR_BLOCK), /without the end-of-archive marker/);
    });

    it('bytes after the end-of-archive marker', () => damagedBy((tar) => Buffer.concat([tar, Buffer.from('more')]), /bytes follow the end-of-archive marker/));

    it('a header that is not ustar', () => damagedBy((tar) => rewriteSecondHeader(tar, 257, 'garbag'), /not ustar/));

    it('a size that is not a number', () => damagedBy((tar) => rewriteSecondHeader(tar, 124, '99999999999'), /size is not an octal number/));
  });
});

/**
 * Writes `text` at `offset` of the second header (PG_VERSION's, after the directory's) and sets
 * the header's checksum for its changed bytes, as a writer would: a header that passes the check.
 */
function rewriteSecondHeader(tar: Buffer, offset: number, text: string): Buffer {
  const header = tar.subarray(TAR_BLOCK, 2 * TAR_BLOCK);
  header.write(text, offset, 'latin1');
  rewriteChecksum(header);
  return tar;
}

/** Sets a header's checksum for its (changed) bytes, as a writer would. */
function rewriteChecksum(header: Buffer): void {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}
