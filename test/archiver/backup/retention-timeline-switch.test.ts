/**
 * `delete retain 1 --confirm` and `wal-verify` on archives PostgreSQL 15 wrote itself (its
 * archive_command through the archiver), on s3rver and on the GCS emulator (retention-cli.test.ts
 * runs PostgreSQL on a local directory only), across a timeline switch: a backup on timeline 1, a
 * copy restored from it that promotes onto timeline 2 and archives into the same archive, a backup
 * there. wal-verify follows timeline 1 into 2 through PostgreSQL's own history file; the delete
 * keeps the newest backup, every history file and the WAL from its start on; the kept backup
 * restores with every row.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage } from '../../../archiver/src/storage/open';
import { LAUNCHER, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { PostgresCluster } from '../../../testkit/postgres';
import { archivingEnv as callEnv, testScratch } from '../../../testkit/scratch';

const { dir: scratch, postgresDirectory } = testScratch('retention-timeline-switch-');

/** As the sidecar runs it: as postgres, beside the server. */
const archiver = runArchiverAsPostgres;

const BATCH_ROWS = 5000;

function insertBatch(cluster: PostgresCluster, batch: number): void {
  cluster.sql(`insert into story select ${batch}, g, md5(g::text) from generate_series(1, ${BATCH_ROWS}) g`);
}

/** `batch:count` of every batch present, in order. */
function batches(cluster: PostgresCluster): string {
  return cluster.sql("select string_agg(batch || ':' || n, ' ' order by batch) from (select batch, count(*) n from story group by batch) s");
}

/** The name of the segment of `timeline` that holds `lsn` (16 MiB segments). */
function segmentOf(timeline: number, lsn: string): string {
  const [high, low] = lsn.split('/').map((part) => parseInt(part, 16));
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(high)}${hex(Math.floor(low / 0x1000000))}`;
}


/** The position of a WAL file name (log and segment, the timeline left out). */
const position = (name: string) => name.slice(8, 24);

interface Summary {
  readonly name: string;
  readonly timeline: number;
  readonly startWal: string;
  readonly stopWal: string;
}

describe.each(['s3rver (S3-compatible)', 'the GCS emulator'] as const)('delete and wal-verify across a timeline switch, PostgreSQL archiving to %s', (backendName) => {
  let backend: TestBackend;
  /** Timeline 1, stopped once the first backup and its WAL are archived. */
  let primary: PostgresCluster;
  /** Restored from the first backup, promoted onto timeline 2, archiving into the same archive. */
  let promoted: PostgresCluster | undefined;
  const envs: Record<string, string>[] = [];
  const backups: Summary[] = [];

  /** The configuration of a server's archive_command, with a spool of its own. */
  function archivingEnv(): Record<string, string> {
    const base = postgresDirectory();
    const env = callEnv(backend.env, base);
    envs.push(env);
    return env;
  }
  const restoreEnv = () => ({ ...backend.env, ARCHIVER_DAEMON: 'off' });
  const archiving = { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'` };

  async function keys(): Promise<string[]> {
    const storage = await openStorage(backend.storage);
    try {
      return (await storage.list('')).map((object) => object.key).sort();
    } finally {
      await storage.close();
    }
  }

  function backupPush(cluster: PostgresCluster, env: Record<string, string>): Summary {
    const pushed = archiver(['backup-push', '--json', '--no-progress'], { ...env, PGHOST: cluster.baseDir, PGPORT: String(cluster.port) });
    expect(pushed.stderr).toMatch(/msg="backup complete"/);
    expect(pushed.status).toBe(0);
    return JSON.parse(pushed.stdout) as Summary;
  }

  /** backup-fetch --recovery into a new directory; the cluster on it, started, recovered. */
  async function restore(backup: string, target: string[], env: Record<string, string>, settings: Record<string, string>): Promise<PostgresCluster> {
    const directory = path.join(postgresDirectory(), 'data');
    const fetched = archiver(['backup-fetch', backup, directory, ...target, '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`, '--no-progress'], restoreEnv());
    expect(fetched.stderr).toMatch(/msg="restore complete"/);
    expect(fetched.status).toBe(0);
    const cluster = await PostgresCluster.create({ env, inPlaceDataDirectory: directory, settings });
    try {
      cluster.start(false);
      await cluster.waitForRecoveryEnd(180_000);
    } catch (error) {
      await cluster.remove();
      throw error;
    }
    return cluster;
  }

  beforeAll(async () => {
    backend = await startBackend(backendName, scratch);
  }, 120_000);

  afterAll(async () => {
    for (const env of envs) stopArchiver(env);
    await promoted?.remove();
    await primary?.remove();
    await backend?.stop();
  }, 120_000);

  it('takes a backup on timeline 1, and one on timeline 2 of a copy recovered to a restore point and promoted; wal-verify follows 1 into 2', async () => {
    const primaryEnv = archivingEnv();
    primary = await PostgresCluster.create({ env: primaryEnv, settings: archiving });
    primary.start();
    primary.sql('create table story(batch int, id int, payload text)');
    insertBatch(primary, 1);
    backups.push(backupPush(primary, primaryEnv));
    insertBatch(primary, 2);
    primary.sql("select pg_create_restore_point('before-batch-3')");
    // Timeline 1 goes on past the switch point: batch 3 is archived there, and on no other timeline.
    insertBatch(primary, 3);
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
    primary.stop();

    // Recovery to the restore point, in the middle of a segment, then a promotion onto timeline 2.
    const promotedEnv = archivingEnv();
    promoted = await restore(backups[0].name, ['--target-name', 'before-batch-3'], promotedEnv, archiving);
    expect(promoted.sql('select timeline_id from pg_control_checkpoint()')).toBe('2');
    expect(batches(promoted)).toBe('1:5000 2:5000');
    insertBatch(promoted, 4);
    // Past the newest segment of timeline 1 before the second backup starts.
    for (let i = 0; i < 3; i++) {
      promoted.sql(`insert into story values (0, ${i}, 'filler')`);
      promoted.sql('select pg_switch_wal()');
    }
    promoted.sql('delete from story where batch = 0');
    backups.push(backupPush(promoted, promotedEnv));
    insertBatch(promoted, 5);
    promoted.sql('select pg_switch_wal()');
    await promoted.waitForArchiving();

    expect(backups.map((b) => b.timeline)).toEqual([1, 2]);
    expect(backups[1].startWal.slice(0, 8)).toBe('00000002');
    const stored = await keys();
    const history = stored.find((key) => key === 'wal/00000002.history');
    expect(history).toBeDefined();
    const newestOf = (timeline: string) => stored.filter((key) => key.startsWith(`wal/${timeline}`) && /^[0-9A-F]{24}$/.test(key.slice(4))).map((key) => key.slice(4)).sort().pop()!;
    expect(position(newestOf('00000001')) < position(backups[1].startWal)).toBe(true);

    const text = archiver(['wal-verify'], restoreEnv());
    expect(text.stdout).toContain(`from ${backups[0].startWal} (start of the oldest backup, ${backups[0].name}) to ${newestOf('00000002')}`);
    expect(text.stdout).toMatch(/^ok: 2 timeline\(s\)/m);
    expect(text.status).toBe(0);
    const json = archiver(['wal-verify', '--json'], restoreEnv());
    expect(json.status).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report.ok).toBe(true);
    const [one, two] = report.timelines as { timeline: number; parent?: number; switchLsn?: string; first: string; last: string; expected: number; segments: number }[];
    // Timeline 1 from the first backup's start to its newest segment, past the switch point.
    expect([one.timeline, one.first, one.last]).toEqual([1, backups[0].startWal, newestOf('00000001')]);
    // Timeline 2 from the segment that holds the switch point (PostgreSQL's own history file says where).
    const switchLsn = promoted.sql("select split_part(pg_read_file('pg_wal/00000002.history'), E'\\t', 2)");
    expect(two).toMatchObject({ timeline: 2, parent: 1, switchLsn, first: segmentOf(2, switchLsn), last: newestOf('00000002') });
    expect(switchLsn).not.toMatch(/\/[0-9A-F]{0,2}000000$/); // in the middle of a segment
    for (const timeline of [one, two]) expect(timeline.segments).toBe(timeline.expected);
  }, 300_000);

  it('delete retain 1 --confirm deletes the first backup and exactly the WAL before the second one\'s start, on both timelines; keeps the rest', async () => {
    const [first, second] = backups;
    const before = await keys();
    const result = archiver(['delete', 'retain', '1', '--confirm'], restoreEnv());
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`delete ${first.name}`);
    expect(result.stdout).toContain(`keep   ${second.name}`);
    const after = await keys();
    const isSegmentLike = (key: string) => key.startsWith('wal/') && !key.endsWith('.history');
    // Every object of the first backup, and every WAL file (segment, .partial, .backup) of any
    // timeline before the kept backup's start: no more, no less.
    const expectedGone = before.filter((key) => key.startsWith(`basebackups/${first.name}/`) || (isSegmentLike(key) && position(key.slice(4)) < position(second.startWal)));
    expect(before.filter((key) => !after.includes(key))).toEqual(expectedGone);
    expect(after.filter((key) => !before.includes(key))).toEqual([]);
    expect(expectedGone.some((key) => key.startsWith(`basebackups/${first.name}/`))).toBe(true);
    expect(expectedGone.some((key) => key.startsWith('wal/00000001'))).toBe(true);
    expect(expectedGone.some((key) => key.startsWith('wal/00000002'))).toBe(true);
    expect(after).toEqual(expect.arrayContaining(['archive.json', 'wal/00000002.history', `wal/${second.startWal}`, `wal/${second.stopWal}`, `basebackups/${second.name}/manifest.json`]));

    const listed = archiver(['backup-list', '--json'], restoreEnv());
    expect(JSON.parse(listed.stdout).map((b: { name: string }) => b.name)).toEqual([second.name]);
    expect(archiver(['delete', 'retain', '1'], restoreEnv()).stdout).toMatch(/dry run: 0 object\(s\) would be deleted/);
  }, 120_000);

  it('wal-verify still passes, from the backup kept, on timeline 2', () => {
    const verified = archiver(['wal-verify', '--json'], restoreEnv());
    expect(verified.status).toBe(0);
    const report = JSON.parse(verified.stdout);
    expect(report.ok).toBe(true);
    expect(report.from).toEqual({ backup: backups[1].name, segment: backups[1].startWal });
    expect(report.timelines.map((t: { timeline: number; first: string }) => [t.timeline, t.first])).toEqual([[2, backups[1].startWal]]);
    expect(report.timelines[0].segments).toBe(report.timelines[0].expected);
  });

  it('the backup kept restores, with every row of timeline 2 and none of timeline 1 after the switch', async () => {
    promoted!.stop();
    const restored = await restore(backups[1].name, [], restoreEnv(), { archive_mode: 'off' });
    try {
      expect(batches(restored)).toBe('1:5000 2:5000 4:5000 5:5000');
    } finally {
      await restored.remove();
    }
  }, 300_000);
});
