/**
 * Restore prefetch (archiver/src/prefetcher.ts): after a segment is served, the next `window`
 * segments of its timeline are downloaded into the spool, verified; the window moves as
 * PostgreSQL takes them, ends at a segment the archive does not hold, and what PostgreSQL will
 * not ask for (other timelines, earlier segments) is dropped. Real local archive, real spool.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spoolOwner } from '../../contract';
import { Archive } from '../../archiver/src/archive';
import { WalNotFoundError } from '../../archiver/src/errors';
import { Prefetcher } from '../../archiver/src/prefetcher';
import { Spool } from '../../archiver/src/spool';
import { openStorage } from '../../archiver/src/storage/open';
import { fakeDataDirectory, makeSegment } from '../../testkit/archiver';
import { capturingLogger, waitUntil } from '../../testkit/doubles';

const SYSID = 7311676708303809017n;
const SEGMENT_SIZE = 1 << 20;
const WINDOW = 3;
/** Segment `n` of timeline `timeline`. */
const seg = (n: number, timeline = 1) => `${timeline.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'prefetcher-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** An archive holding `names` (segments of 1 MiB), a claimed spool of this boot, and a prefetcher over both. */
async function setUp(names: readonly string[]) {
  const base = fs.mkdtempSync(path.join(scratch, 'case-'));
  const repository = path.join(base, 'repo');
  const { log } = capturingLogger();
  const archive = new Archive({ storage: await openStorage({ kind: 'local', root: repository }), compression: 'zstd', log });
  const pg = fakeDataDirectory(base);
  const segments = new Map<string, Buffer>();
  for (const [i, walName] of names.entries()) {
    segments.set(walName, makeSegment(SYSID, i + 1, SEGMENT_SIZE));
    await archive.push(pg.addReady(walName, segments.get(walName)!));
  }
  const spool = new Spool(path.join(base, 'spool'), spoolOwner(`file://${repository}`, undefined));
  await spool.claim();
  await spool.recordBoot();
  const prefetcher = new Prefetcher(archive, spool, WINDOW, 2, log);
  cleanups.push(() => prefetcher.close(), () => archive.close());
  const restored = path.join(base, 'restored');
  fs.mkdirSync(restored);
  /** Prefetched names in the spool, temporary files included (they must not stay). */
  const inSpool = () => fs.readdirSync(spool.prefetchDir).sort();
  const fetch = (walName: string) => prefetcher.fetch(walName, path.join(restored, walName));
  return { spool, prefetcher, segments, restored, inSpool, fetch };
}

describe('Prefetcher', () => {
  it('downloads the next segments of the window into the spool, verified, after a segment is served', async () => {
    const { inSpool, fetch, segments, spool, restored } = await setUp([1, 2, 3, 4, 5, 6].map((n) => seg(n)));
    expect(await fetch(seg(1))).toEqual({ source: 'archive' });
    expect(fs.readFileSync(path.join(restored, seg(1))).equals(segments.get(seg(1))!)).toBe(true);
    await waitUntil(() => inSpool().join() === [seg(2), seg(3), seg(4)].join(), 'segments 2, 3 and 4 in the spool');
    for (const n of [2, 3, 4]) expect(fs.readFileSync(spool.prefetchPath(seg(n))).equals(segments.get(seg(n))!)).toBe(true);
  });

  it('serves a prefetched segment from the spool and moves the window past it', async () => {
    const { inSpool, fetch, segments, restored } = await setUp([1, 2, 3, 4, 5, 6].map((n) => seg(n)));
    await fetch(seg(1));
    await waitUntil(() => inSpool().includes(seg(2)), 'segment 2 in the spool');
    expect(await fetch(seg(2))).toEqual({ source: 'prefetch' });
    expect(fs.readFileSync(path.join(restored, seg(2))).equals(segments.get(seg(2))!)).toBe(true);
    await waitUntil(() => inSpool().join() === [seg(3), seg(4), seg(5)].join(), 'the window moved to segments 3, 4 and 5');
  });

  it('moves the window when the launcher takes a prefetched segment (renames it away)', async () => {
    const { inSpool, fetch, prefetcher, spool, restored } = await setUp([1, 2, 3, 4, 5, 6].map((n) => seg(n)));
    prefetcher.watch();
    await fetch(seg(1));
    await waitUntil(() => inSpool().join() === [seg(2), seg(3), seg(4)].join(), 'segments 2, 3 and 4 in the spool');
    // What the launcher does: `mv "$spool/prefetch/NAME" "$3"`, without Node.
    fs.renameSync(spool.prefetchPath(seg(2)), path.join(restored, 'RECOVERYXLOG'));
    await waitUntil(() => inSpool().join() === [seg(3), seg(4), seg(5)].join(), 'the window moved to segments 3, 4 and 5');
  });

  it('prefetches nothing for a segment the archive does not hold: the window ends there', async () => {
    const { inSpool, fetch } = await setUp([1, 2, 3].map((n) => seg(n)));
    await fetch(seg(1));
    await waitUntil(() => inSpool().join() === [seg(2), seg(3)].join(), 'segments 2 and 3 in the spool');
    // Waits for the download of segment 4 in flight, if any, then finds nothing to hand over.
    await expect(fetch(seg(4))).rejects.toBeInstanceOf(WalNotFoundError);
    expect(inSpool()).toEqual([seg(2), seg(3)]);
  });

  it('drops prefetched segments of other timelines, and earlier ones of its own', async () => {
    const { inSpool, fetch } = await setUp([...[1, 2, 3, 4, 5, 6].map((n) => seg(n, 1)), ...[4, 5, 6, 7].map((n) => seg(n, 2))]);
    // PostgreSQL tries the newest timeline first, then the one the segment is on.
    await fetch(seg(4, 2));
    await waitUntil(() => inSpool().join() === [seg(5, 2), seg(6, 2), seg(7, 2)].join(), 'timeline 2 segments in the spool');
    await fetch(seg(4, 1));
    await waitUntil(() => inSpool().join() === [seg(5, 1), seg(6, 1)].join(), 'only timeline 1 segments after 4 in the spool');
    // Skipping ahead on the timeline drops what lies behind.
    await fetch(seg(1, 1));
    await waitUntil(() => inSpool().join() === [seg(2, 1), seg(3, 1), seg(4, 1), seg(5, 1), seg(6, 1)].join(), 'segments 2 to 6 in the spool');
    await fetch(seg(5, 1));
    await waitUntil(() => inSpool().join() === [seg(6, 1)].join(), 'segment 6 alone in the spool');
  });
});
