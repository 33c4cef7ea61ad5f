/**
 * One background archiver per spool (archiver/src/daemon/lock.ts): an abstract Unix socket named
 * after the spool's real path, which a second process cannot bind and the kernel frees with its
 * holder.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SpoolLock, acquireSpoolLock, lockName } from '../../../archiver/src/daemon/lock';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lock-test-'));
const held: SpoolLock[] = [];
afterAll(async () => {
  await Promise.allSettled(held.map((lock) => lock.release()));
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function acquire(spool: string): Promise<SpoolLock | undefined> {
  const lock = await acquireSpoolLock(spool);
  if (lock) held.push(lock);
  return lock;
}

describe('the spool lock', () => {
  it('is held by one taker at a time; released, it can be taken again', async () => {
    const spool = fs.mkdtempSync(path.join(scratch, 'spool-'));
    const first = await acquire(spool);
    expect(first).toBeDefined();
    expect(await acquire(spool)).toBeUndefined();
    await first!.release();
    expect(await acquire(spool)).toBeDefined();
  });

  it('is one lock for one directory, whatever path reaches it (a symlink)', async () => {
    const spool = fs.mkdtempSync(path.join(scratch, 'spool-'));
    const link = path.join(scratch, `link-to-${path.basename(spool)}`);
    fs.symlinkSync(spool, link);
    expect(lockName(link)).toBe(lockName(spool));
    expect(await acquire(spool)).toBeDefined();
    expect(await acquire(link)).toBeUndefined();
  });

  it('is another lock for another spool', async () => {
    const [a, b] = [fs.mkdtempSync(path.join(scratch, 'spool-')), fs.mkdtempSync(path.join(scratch, 'spool-'))];
    expect(lockName(a)).not.toBe(lockName(b));
    expect(await acquire(a)).toBeDefined();
    expect(await acquire(b)).toBeDefined();
  });

  it('is an abstract socket name: no file, and short whatever the spool\'s path', () => {
    const deep = path.join(scratch, 'x'.repeat(200), 'spool');
    expect(lockName(deep).startsWith('\0')).toBe(true);
    expect(Buffer.byteLength(lockName(deep))).toBeLessThan(108);
  });
});
