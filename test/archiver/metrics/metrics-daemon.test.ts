/**
 * The counters of the background archiver's metrics (archiver/src/metrics/), with the daemon run
 * in this process on the real local backend and the built launcher making PostgreSQL's calls: a
 * push asked for and the files pushed ahead, the launcher's push-ahead hits (it takes a marker
 * without a word to the daemon), a fetch from the archive, the files prefetched, the launcher's
 * prefetch hits, a file not in the archive, and the calls' durations.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARCHIVER_METRICS, METRICS_PATH } from '../../../contract';
import { readConfig, type ArchiverConfig } from '../../../archiver/src/config';
import { DaemonHandle, runDaemon } from '../../../archiver/src/daemon/server';
import { fakeDataDirectory, makeSegment, runArchiverAsync, scrapeMetrics } from '../../../testkit/archiver';
import { capturingLogger, waitUntil } from '../../../testkit/doubles';
import { freePort } from '../../../testkit/ports';

const M = Object.fromEntries(Object.entries(ARCHIVER_METRICS).map(([key, metric]) => [key, metric.name])) as { [K in keyof typeof ARCHIVER_METRICS]: string };
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-daemon-'));
let daemon: DaemonHandle | undefined;
afterAll(async () => {
  await daemon?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** A scrape; an empty map while nothing answers. */
async function scrape(port: number): Promise<Map<string, number>> {
  return (await scrapeMetrics(port, METRICS_PATH)) ?? new Map();
}

describe('the background archiver\'s counters', () => {
  it('count pushes, push-ahead hits, fetches from the archive and the spool, prefetches, misses and call durations', async () => {
    const pg = fakeDataDirectory(scratch);
    const segments = [1, 2, 3].map((i) => `00000001000000000000000${i}`);
    for (const [i, name] of segments.entries()) pg.addReady(name, makeSegment(42n, i + 1, 1 << 20));
    const env = { ARCHIVER_REPOSITORY: `file://${path.join(scratch, 'repo')}`, ARCHIVER_SPOOL: path.join(scratch, 'spool'), ARCHIVER_PREFETCH: '2', ARCHIVER_DAEMON: 'external' };
    const config = readConfig({ ...env, ARCHIVER_WORKERS: '0', ARCHIVER_DAEMON_IDLE_SECONDS: '0', PGDATA: pg.dataDir, PGHOST: path.join(scratch, 'no-server') }, '/') as ArchiverConfig & { spool: string };
    const port = await freePort();
    const { log, lines } = capturingLogger();
    daemon = await runDaemon(config, log, { metrics: { port, host: '127.0.0.1' }, backups: false });
    expect(daemon).toBeDefined();

    // archive_command for the first: pushed when asked; the other two pushed ahead.
    const first = await runArchiverAsync(['wal-push', `pg_wal/${segments[0]}`], env, pg.dataDir);
    expect(first.status).toBe(0);
    await waitUntil(() => segments.slice(1).every((name) => fs.existsSync(path.join(env.ARCHIVER_SPOOL, 'pushed', name))), 'the others pushed ahead');
    // archive_command for the second: the launcher takes its marker.
    expect((await runArchiverAsync(['wal-push', `pg_wal/${segments[1]}`], env, pg.dataDir)).status).toBe(0);
    let m = new Map<string, number>();
    await waitUntil(async () => (m = await scrape(port)).get(M.walPushAheadHits) === 1, 'the launcher\'s hit counted');
    expect(m.get(`${M.walPushedFiles}{ahead="false"}`)).toBe(1);
    expect(m.get(`${M.walPushedFiles}{ahead="true"}`)).toBe(2);
    expect(m.get(M.walPushedBytes)).toBe(3 << 20);
    expect(m.get(`${M.walPushDuration}_count`)).toBe(3);
    expect(m.get(`${M.walCallDuration}_count{operation="push"}`)).toBe(1);
    // The fake pg_wal still marks all three ready (no PostgreSQL renames them).
    expect(m.get(M.walReadyFiles)).toBe(3);
    expect(m.get(M.postgresUp)).toBe(0);

    // restore_command for the first: from the archive, and the next two prefetched.
    const restored = path.join(pg.walDir, 'RECOVERYXLOG');
    expect((await runArchiverAsync(['wal-fetch', segments[0], restored], env, pg.dataDir)).status).toBe(0);
    await waitUntil(() => segments.slice(1).every((name) => fs.existsSync(path.join(env.ARCHIVER_SPOOL, 'prefetch', name))), 'the others prefetched');
    // The second from the spool, by the launcher alone.
    expect((await runArchiverAsync(['wal-fetch', segments[1], restored], env, pg.dataDir)).status).toBe(0);
    // Not in the archive.
    expect((await runArchiverAsync(['wal-fetch', '000000010000000000000009', restored], env, pg.dataDir)).status).toBe(74);
    await waitUntil(async () => (m = await scrape(port)).get(`${M.walFetchedFiles}{source="prefetch"}`) === 1, 'the launcher\'s prefetch hit counted');
    expect(m.get(`${M.walFetchedFiles}{source="archive"}`)).toBe(1);
    expect(m.get(M.walPrefetchedFiles)).toBe(2);
    expect(m.get(M.walFetchNotFound)).toBe(1);
    expect(m.get(`${M.walCallDuration}_count{operation="fetch"}`)).toBe(2);
    expect([...m.keys()].some((key) => key.startsWith(M.walFetchFailures))).toBe(false);
    expect(lines.filter((line) => line.level === 'error')).toEqual([]);
  }, 60_000);
});
