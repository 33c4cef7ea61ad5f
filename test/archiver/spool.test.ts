/**
 * The spool (archiver/src/spool.ts): what the background archiver leaves for the launcher, trusted
 * only for the archive location that made it (.owner), only for the very file a marker names,
 * and, for prefetched files, only within the boot that wrote them (.boot).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SPOOL_LAYOUT, pushedMarker, spoolOwner } from '../../contract';
import { Spool } from '../../archiver/src/spool';

const OWNER = spoolOwner('s3://bucket/team-a/kubedb/demo/db/archive', 'http://minio:9000');
const OTHER_OWNER = spoolOwner('s3://new-bucket/team-a/kubedb/demo/db/archive', 'http://minio:9000');
const NAME = '000000010000000000000001';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function freshSpool(owner = OWNER): Spool {
  return new Spool(fs.mkdtempSync(path.join(scratch, 'spool-')), owner);
}

const bootId = () => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

describe('Spool', () => {
  describe('claim and owned', () => {
    it('claims an empty spool: pushed/ and prefetch/ (mode 0700), and .owner naming the location', async () => {
      const spool = freshSpool();
      expect(await spool.owned()).toBe(false);
      await spool.claim();
      expect(await spool.owned()).toBe(true);
      expect(fs.readFileSync(path.join(spool.dir, SPOOL_LAYOUT.owner), 'utf8')).toBe(`${OWNER}\n`);
      for (const dir of [spool.pushedDir, spool.prefetchDir]) expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      expect(await new Spool(spool.dir, OTHER_OWNER).owned()).toBe(false);
    });

    it('keeps its own markers and prefetched files when its owner claims it again', async () => {
      const spool = freshSpool();
      await spool.claim();
      await spool.markPushed(`/data/pg_wal/${NAME}`);
      fs.writeFileSync(spool.prefetchPath(NAME), 'segment');
      await spool.claim();
      expect(await spool.pushedNames()).toEqual([NAME]);
      expect(await spool.prefetchedNames()).toEqual([NAME]);
    });

    it('drops another location\'s markers and prefetched files when claimed', async () => {
      const old = freshSpool();
      await old.claim();
      await old.markPushed(`/data/pg_wal/${NAME}`);
      fs.writeFileSync(old.prefetchPath(NAME), 'segment');
      const claimed = new Spool(old.dir, OTHER_OWNER);
      await claimed.claim();
      expect(await claimed.owned()).toBe(true);
      expect(await old.owned()).toBe(false);
      expect(await claimed.pushedNames()).toEqual([]);
      expect(await claimed.prefetchedNames()).toEqual([]);
    });
  });

  describe('markPushed and takePushed', () => {
    it('writes one line per file, named after it: the contract\'s pushedMarker(owner, path)', async () => {
      const spool = freshSpool();
      await spool.claim();
      expect(await spool.markPushed(`/data/pg_wal/${NAME}`)).toBe(true);
      expect(fs.readFileSync(path.join(spool.pushedDir, NAME), 'utf8')).toBe(`${pushedMarker(OWNER, `/data/pg_wal/${NAME}`)}\n`);
      expect(`${pushedMarker(OWNER, `/data/pg_wal/${NAME}`)}\n`).toBe(`${OWNER}\t/data/pg_wal/${NAME}\n`);
    });

    it('takes a marker once, and only for the same owner and the same path', async () => {
      const spool = freshSpool();
      await spool.claim();
      await spool.markPushed(`/data/pg_wal/${NAME}`);
      expect(await spool.takePushed(`/elsewhere/${NAME}`)).toBe(false);
      expect(await new Spool(spool.dir, OTHER_OWNER).takePushed(`/data/pg_wal/${NAME}`)).toBe(false);
      expect(await spool.pushedNames()).toEqual([NAME]);
      expect(await spool.takePushed(`/data/pg_wal/${NAME}`)).toBe(true);
      expect(await spool.takePushed(`/data/pg_wal/${NAME}`)).toBe(false);
      expect(await spool.pushedNames()).toEqual([]);
    });

    it('fails to record (false, nothing left) once the spool belongs to another location', async () => {
      const spool = freshSpool();
      await spool.claim();
      await new Spool(spool.dir, OTHER_OWNER).claim();
      expect(await spool.markPushed(`/data/pg_wal/${NAME}`)).toBe(false);
      expect(await spool.pushedNames()).toEqual([]);
    });
  });

  describe('takePrefetched', () => {
    async function withPrefetched(spool: Spool): Promise<string> {
      await spool.claim();
      await spool.recordBoot();
      expect(await spool.offerPrefetched(NAME, async (file) => fs.writeFileSync(file, 'verified segment'))).toBe(true);
      return path.join(spool.dir, '..', `restored-${path.basename(spool.dir)}`);
    }

    it('moves a prefetched file into place within the boot that wrote it (.boot holds the boot id)', async () => {
      const spool = freshSpool();
      const destination = await withPrefetched(spool);
      expect(fs.readFileSync(path.join(spool.dir, SPOOL_LAYOUT.boot), 'utf8')).toBe(`${bootId()}\n`);
      expect(await spool.takePrefetched(NAME, destination)).toBe(true);
      expect(fs.readFileSync(destination, 'utf8')).toBe('verified segment');
      expect(await spool.prefetchedNames()).toEqual([]);
    });

    it('takes nothing written before another boot, or with no boot recorded', async () => {
      const spool = freshSpool();
      const destination = await withPrefetched(spool);
      fs.writeFileSync(path.join(spool.dir, SPOOL_LAYOUT.boot), 'a-boot-before-a-crash\n');
      expect(await spool.takePrefetched(NAME, destination)).toBe(false);
      fs.rmSync(path.join(spool.dir, SPOOL_LAYOUT.boot));
      expect(await spool.takePrefetched(NAME, destination)).toBe(false);
      expect(fs.existsSync(destination)).toBe(false);
      expect(await spool.prefetchedNames()).toEqual([NAME]);
    });

    it('takes nothing from a spool that belongs to another location', async () => {
      const spool = freshSpool();
      const destination = await withPrefetched(spool);
      expect(await new Spool(spool.dir, OTHER_OWNER).takePrefetched(NAME, destination)).toBe(false);
      expect(fs.existsSync(destination)).toBe(false);
    });
  });

  it('lists the markers, never one still being written (its temporary file): a cleanup of stale markers would delete it under its writer', async () => {
    const spool = freshSpool();
    await spool.claim();
    expect(await spool.markPushed(`/pg_wal/${NAME}`)).toBe(true);
    fs.writeFileSync(path.join(spool.pushedDir, `${NAME.replace(/1$/, '2')}.archiver-123-abcdef.tmp`), 'half');
    expect(await spool.pushedNames()).toStrictEqual([NAME]);
  });

  it('clear forgets every marker and prefetched file, and keeps the owner', async () => {
    const spool = freshSpool();
    await spool.claim();
    await spool.markPushed(`/data/pg_wal/${NAME}`);
    await spool.markPushed('/data/pg_wal/000000010000000000000002');
    await spool.offerPrefetched(NAME, async (file) => fs.writeFileSync(file, 'segment'));
    await spool.clear();
    expect(fs.readdirSync(spool.pushedDir)).toEqual([]);
    expect(fs.readdirSync(spool.prefetchDir)).toEqual([]);
    expect(await spool.owned()).toBe(true);
  });
});
