/**
 * The local backend's leftovers of puts cut short (a backup killed while it uploads a part): a
 * temp file no listing shows. A delete that leaves a directory without objects removes it with
 * them, up to the root; a directory that still holds an object keeps them (a put may be in flight
 * there). A put that runs out of space half-way leaves neither a temp file nor an object.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../../archiver/src/errors';
import { openStorage } from '../../../archiver/src/storage/open';
import { testScratch } from '../../../testkit/scratch';
import { SmallDisk } from '../../../testkit/small-disk';

const { dir: scratch } = testScratch('local-leftovers-');
let roots = 0;

async function archiveWith(keys: readonly string[]): Promise<{ root: string; storage: Awaited<ReturnType<typeof openStorage>> }> {
  const root = path.join(scratch, `root-${++roots}`);
  const storage = await openStorage({ kind: 'local', root });
  for (const key of keys) await storage.put(key, Buffer.from(key));
  return { root, storage };
}

describe('local storage: delete and the temp files of puts cut short', () => {
  it('removes a directory it leaves without objects, with the temp files in it, and its emptied parents, never the root', async () => {
    const { root, storage } = await archiveWith(['basebackups/base_1/parts/0001.tar', 'basebackups/base_1/parts/0002.tar', 'basebackups/base_2/manifest.json']);
    fs.writeFileSync(path.join(root, 'basebackups/base_1/parts/.tmp-0123456789abcdef'), 'half a part');
    await storage.delete(['basebackups/base_1/parts/0001.tar', 'basebackups/base_1/parts/0002.tar']);
    expect(fs.readdirSync(path.join(root, 'basebackups'))).toEqual(['base_2']);
    await storage.delete(['basebackups/base_2/manifest.json']);
    expect(fs.readdirSync(root)).toEqual([]);
    expect(await storage.list('')).toEqual([]);
    await storage.close();
  });

  it('keeps the temp files of a directory that still holds an object (a put may be in flight there)', async () => {
    const { root, storage } = await archiveWith(['wal/000000010000000000000001', 'wal/000000010000000000000002']);
    fs.writeFileSync(path.join(root, 'wal/.tmp-0123456789abcdef'), 'a segment being pushed');
    await storage.delete(['wal/000000010000000000000001']);
    expect(fs.readdirSync(path.join(root, 'wal')).sort()).toEqual(['.tmp-0123456789abcdef', '000000010000000000000002']);
    await storage.close();
  });

  it('keeps a directory that holds a subdirectory, and deletes absent keys without complaint', async () => {
    const { root, storage } = await archiveWith(['a/b', 'a/c/d']);
    await storage.delete(['a/b', 'a/missing']);
    expect(fs.readdirSync(path.join(root, 'a'))).toEqual(['c']);
    expect((await storage.list('')).map((object) => object.key)).toEqual(['a/c/d']);
    await storage.close();
  });
});

describe('local storage: a put onto a full disk', () => {
  // Its own directory, unmounted before it is removed (the scratch directory's removal may run first).
  const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'local-full-disk-'));
  const smallDisk = new SmallDisk(path.join(mountPoint, 'disk'));
  afterAll(() => {
    smallDisk.unmount();
    fs.rmSync(mountPoint, { recursive: true, force: true });
  });

  it('fails with ENOSPC after writing part of the object, leaves nothing under the key, and the next put that fits is stored whole', async () => {
    smallDisk.mount(4);
    const storage = await openStorage({ kind: 'local', root: smallDisk.path });
    // 6 MiB: twelve of the 512 KiB writes a put makes; the disk fills after the eighth.
    const put = storage.put('wal/000000010000000000000001', randomBytes(6 * 1024 * 1024), { ifAbsent: true });
    await expect(put).rejects.toThrow(StorageError);
    await expect(put).rejects.toThrow(/ENOSPC/);
    expect(fs.readdirSync(path.join(smallDisk.path, 'wal'))).toEqual([]);
    expect(await storage.list('')).toEqual([]);
    const fits = randomBytes(3 * 1024 * 1024);
    await storage.put('wal/000000010000000000000001', fits, { ifAbsent: true });
    expect((await storage.get('wal/000000010000000000000001')).equals(fits)).toBe(true);
    await storage.close();
  });
});
