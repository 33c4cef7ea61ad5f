/**
 * `delete` and `wal-verify` through the built CLI, against real storage: archives written object by
 * object with the archiver's Storage (synthetic manifests, real history files) on each backend (a
 * local directory, s3rver, the GCS emulator); the deletion order under a storage that fails half
 * way; and the whole story with real PostgreSQL 15: three backups, `delete retain 2 --confirm`,
 * wal-verify, a restore of the oldest backup kept, `delete everything`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archive } from '../../../archiver/src/archive';
import { deletePlanned, readArchiveContents } from '../../../archiver/src/backup/archive-contents';
import { listBackups } from '../../../archiver/src/backup/catalog';
import { BackupManifest, encodeManifest } from '../../../archiver/src/backup/manifest';
import { planRetention } from '../../../archiver/src/backup/retention';
import { Logger } from '../../../archiver/src/logger';
import { openStorage } from '../../../archiver/src/storage/open';
import type { Storage } from '../../../archiver/src/storage/storage';
import { BACKEND_NAMES, TestBackend, startBackend } from '../../../testkit/backends';
import { LAUNCHER, runArchiver, runArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { PostgresCluster, giveToPostgres, postgresUser } from '../../../testkit/postgres';
import { backupKeys, lsnIn, nameAt, seg, segs, syntheticManifest } from '../../../testkit/synthetic-archive';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'retention-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const DAY = 86_400_000;
const quiet = new Logger('warn');

async function keysOf(storage: Storage): Promise<string[]> {
  return (await storage.list('')).map((object) => object.key);
}

/** Stores a complete synthetic backup: parts, backup_label, then its manifest. */
async function putBackup(storage: Storage, manifest: BackupManifest): Promise<void> {
  for (const key of backupKeys(manifest.name, false)) await storage.put(key, Buffer.from(`${key}\n`));
  await storage.put(`basebackups/${manifest.name}/manifest.json`, encodeManifest(manifest));
}

/** Archives a real history file (the archiver's envelope, as wal-push stores it). */
async function putHistory(storage: Storage, timeline: number, text: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(scratch, 'history-'));
  const file = path.join(dir, `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`);
  fs.writeFileSync(file, text);
  await new Archive({ storage, compression: 'none', log: quiet }).push(file);
  fs.rmSync(dir, { recursive: true, force: true });
}

describe.each(BACKEND_NAMES)('delete and wal-verify on %s (synthetic archive)', (backendName) => {
  let backend: TestBackend;
  let storage: Storage;
  let env: Record<string, string>;
  const now = Date.now();
  // Timeline 1 from segment 1; a promotion at 0/B000100 makes timeline 2 from segment 0x0B.
  const b1 = syntheticManifest({ start: new Date(now - 3 * DAY), stop: new Date(now - 3 * DAY + 60_000), startWal: seg(1, 0x02), stopWal: seg(1, 0x03) });
  const b2 = syntheticManifest({ start: new Date(now - 2 * DAY), stop: new Date(now - 2 * DAY + 60_000), startWal: seg(1, 0x05), stopWal: seg(1, 0x06) });
  const b3 = syntheticManifest({ start: new Date(now - DAY), stop: new Date(now - DAY + 60_000), startWal: seg(2, 0x0c), stopWal: seg(2, 0x0c) });
  const leftover = nameAt(new Date(now - 2.5 * DAY));
  const running = nameAt(new Date(now - 60_000));
  const wal = [...segs(1, 0x01, 0x0a), `${seg(1, 0x0b)}.partial`, ...segs(2, 0x0b, 0x0e), `${seg(1, 0x05)}.00000028.backup`];

  beforeAll(async () => {
    backend = await startBackend(backendName, scratch);
    env = { ...backend.env, ARCHIVER_DAEMON: 'off' };
    storage = await openStorage(backend.storage);
    await storage.put('archive.json', Buffer.from(JSON.stringify({ systemIdentifier: b1.systemIdentifier, walSegmentSize: 16 * 1024 * 1024 })));
    for (const name of wal) await storage.put(`wal/${name}`, Buffer.from(name));
    await putHistory(storage, 2, `1\t${lsnIn(seg(1, 0x0b), 0x100)}\tno recovery target specified\n`);
    for (const backup of [b1, b2, b3]) await putBackup(storage, backup);
    await storage.put(`basebackups/${leftover}/parts/0000.tar`, Buffer.from('left over'));
    await storage.put(`basebackups/${running}/parts/0000.tar`, Buffer.from('in progress'));
  }, 120_000);

  afterAll(async () => {
    await storage?.close();
    await backend?.stop();
  });

  it('wal-verify follows timeline 1 into 2 through the history file and finds no gap', () => {
    const text = runArchiver(['wal-verify'], env);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`from ${seg(1, 0x02)} (start of the oldest backup, ${b1.name}) to ${seg(2, 0x0e)}`);
    expect(text.stdout).toContain(`timeline 2 (from timeline 1 at 0/B000100): ${seg(2, 0x0b)} .. ${seg(2, 0x0e)}, 4 of 4 segments`);
    const json = runArchiver(['wal-verify', '--json'], env);
    expect(json.status).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report.ok).toBe(true);
    expect(report.timelines.map((t: { timeline: number; first: string; last: string }) => [t.timeline, t.first, t.last])).toEqual([
      [1, seg(1, 0x02), seg(1, 0x0a)],
      [2, seg(2, 0x0b), seg(2, 0x0e)],
    ]);
  });

  it('delete retain 2 without --confirm prints the plan and deletes nothing', async () => {
    const before = await keysOf(storage);
    const result = runArchiver(['delete', 'retain', '2'], env);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`delete ${b1.name}`);
    expect(result.stdout).toContain(`keep   ${b3.name}`);
    expect(result.stdout).toContain(`delete timeline 1: ${seg(1, 0x01)} .. ${seg(1, 0x04)} (4 file(s))`);
    expect(result.stdout).toContain(`delete ${leftover}`);
    expect(result.stdout).toMatch(/dry run: 9 object\(s\) would be deleted; nothing was/);
    expect(await keysOf(storage)).toEqual(before);
  });

  it('delete retain 2 --confirm removes the oldest backup, the leftover and the WAL before the second backup; keeps the rest', async () => {
    const before = await keysOf(storage);
    const result = runArchiver(['delete', 'retain', '2', '--confirm', '--json'], env);
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.dryRun).toBe(false);
    expect(summary.wal.keptFrom).toBe(b2.startWal);
    const expectedGone = [...backupKeys(b1.name), `basebackups/${leftover}/parts/0000.tar`, ...segs(1, 0x01, 0x04).map((name) => `wal/${name}`)];
    const after = await keysOf(storage);
    expect(after).toEqual(before.filter((key) => !expectedGone.includes(key)));
    expect(after).toEqual(expect.arrayContaining(['archive.json', 'wal/00000002.history', `wal/${seg(1, 0x05)}`, `wal/${seg(1, 0x05)}.00000028.backup`, `wal/${seg(1, 0x0b)}.partial`, `basebackups/${running}/parts/0000.tar`]));
    expect((await listBackups(storage)).map((b) => b.name)).toEqual([b2.name, b3.name]);
    // Nothing more to do.
    expect(runArchiver(['delete', 'retain', '2'], env).stdout).toMatch(/dry run: 0 object\(s\) would be deleted/);
  });

  it('wal-verify still passes, from the oldest backup kept', () => {
    const result = runArchiver(['wal-verify'], env);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(`from ${seg(1, 0x05)} (start of the oldest backup, ${b2.name})`);
  });

  it('wal-verify fails (exit 1, WalNotContinuousError) on a missing segment, naming it', async () => {
    await storage.delete([`wal/${seg(1, 0x07)}`]);
    const result = runArchiver(['wal-verify'], env);
    expect(result.status).toBe(1);
    expect(result.stdout).toContain(`GAP timeline 1: ${seg(1, 0x07)} .. ${seg(1, 0x07)} (1 missing)`);
    expect(result.stderr).toMatch(/level=error .*error=WalNotContinuousError exit=1/);
    expect(result.stderr).toContain(`timeline 1: ${seg(1, 0x07)} .. ${seg(1, 0x07)} (1 missing)`);
  });

  it('refuses bad command lines (exit 2) and an unknown backup (exit 74), deleting nothing', async () => {
    const before = await keysOf(storage);
    expect(runArchiver(['delete'], env).status).toBe(2);
    expect(runArchiver(['delete', 'retain', '0', '--confirm'], env).status).toBe(2);
    expect(runArchiver(['delete', 'before', '2026-11-30T06:00:00', '--confirm'], env).status).toBe(2);
    const unknown = runArchiver(['delete', 'before', 'base_20200101T000000Z', '--confirm'], env);
    expect(unknown.status).toBe(74);
    expect(unknown.stderr).toContain('error=BackupNotFoundError');
    expect(await keysOf(storage)).toEqual(before);
  });

  it('delete everything deletes nothing without --confirm, and every object with it', async () => {
    const before = await keysOf(storage);
    const dry = runArchiver(['delete', 'everything'], env);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toContain(`everything: would delete every object of the archive (${before.length}), archive.json last`);
    expect(await keysOf(storage)).toEqual(before);
    const done = runArchiver(['delete', 'everything', '--confirm'], env);
    expect(done.status).toBe(0);
    expect(await storage.list('')).toEqual([]);
  });
});

describe('the bundles', () => {
  it('delete and wal-verify are a bundle of their own, not in the one every WAL call loads', () => {
    const lib = path.join(path.dirname(LAUNCHER), '..', 'lib');
    expect(fs.existsSync(path.join(lib, 'retention.cjs'))).toBe(true);
    const main = fs.readFileSync(path.join(lib, 'archiver.cjs'), 'utf8');
    expect(main).toContain('./retention.cjs');
    expect(main).not.toContain('function planRetention');
    expect(main).not.toContain('function verifyWal');
    expect(fs.readFileSync(path.join(lib, 'retention.cjs'), 'utf8')).toContain('function planRetention');
  });
});

describe('the deletion order', () => {
  /** A storage that records delete calls and fails the `failAt`-th one. */
  function recording(inner: Storage, failAt = Infinity): { storage: Storage; calls: string[][] } {
    const calls: string[][] = [];
    const storage: Storage = {
      location: inner.location,
      get: (key, options) => inner.get(key, options),
      getStream: (key, options) => inner.getStream(key, options),
      stat: (key, options) => inner.stat(key, options),
      put: (key, body, options) => inner.put(key, body, options),
      putStream: (key, body, options) => inner.putStream(key, body, options),
      list: (prefix, options) => inner.list(prefix, options),
      delete: async (keys, options) => {
        calls.push([...keys]);
        if (calls.length === failAt) throw new Error('storage went away');
        return inner.delete(keys, options);
      },
      close: () => inner.close(),
    };
    return { storage, calls };
  }

  async function localArchive(): Promise<Storage> {
    const storage = await openStorage({ kind: 'local', root: fs.mkdtempSync(path.join(scratch, 'order-')) });
    const now = Date.now();
    for (let i = 0; i < 3; i++) {
      const start = new Date(now - (3 - i) * DAY);
      await putBackup(storage, syntheticManifest({ start, stop: new Date(start.getTime() + 60_000), startWal: seg(1, 0x10 * (i + 1)) }));
    }
    for (const name of segs(1, 0x08, 0x38)) await storage.put(`wal/${name}`, Buffer.from(name));
    return storage;
  }

  it('deletes every manifest before any other object of a backup, and WAL last', async () => {
    const inner = await localArchive();
    const { storage, calls } = recording(inner);
    const plan = planRetention({ ...(await readArchiveContents(storage)), now: new Date() }, { retain: 1 });
    await deletePlanned(storage, plan, quiet);
    const order = calls.flat();
    const firstOther = order.findIndex((key) => !key.endsWith('/manifest.json'));
    expect(order.slice(0, firstOther)).toHaveLength(2);
    expect(order.slice(firstOther).some((key) => key.endsWith('/manifest.json'))).toBe(false);
    const lastBackupObject = order.map((key) => key.startsWith('basebackups/')).lastIndexOf(true);
    expect(order.findIndex((key) => key.startsWith('wal/'))).toBeGreaterThan(lastBackupObject);
  });

  it('a delete cut short leaves no listed backup with objects missing', async () => {
    for (let failAt = 1; failAt <= 3; failAt++) {
      const inner = await localArchive();
      const { storage } = recording(inner, failAt);
      const plan = planRetention({ ...(await readArchiveContents(storage)), now: new Date() }, { retain: 1 });
      await expect(deletePlanned(storage, plan, quiet)).rejects.toThrow('storage went away');
      const keys = await keysOf(inner);
      for (const backup of await listBackups(inner)) {
        expect(keys).toEqual(expect.arrayContaining(backupKeys(backup.name)));
        // The WAL a listed backup needs is all there too.
        expect(keys).toEqual(expect.arrayContaining(segs(1, parseInt(backup.startWal.slice(16), 16), 0x38).map((name) => `wal/${name}`)));
      }
    }
  });
});

describe('with PostgreSQL 15: three backups, delete retain 2, wal-verify, restore, delete everything', () => {
  let backend: TestBackend;
  let primary: PostgresCluster;
  let env: Record<string, string>;
  const names: string[] = [];
  const manifests: Record<string, { startWal: string }> = {};

  /** As the sidecar runs it: as postgres, beside the server. */
  const archiver = (args: string[], extra: Record<string, string> = {}) => runArchiverAsPostgres(args, { ...env, ...extra });
  const serverEnv = () => ({ PGHOST: primary.baseDir, PGPORT: String(primary.port) });
  const rows = (cluster: PostgresCluster) => cluster.sql('select count(*) from story');

  beforeAll(async () => {
    backend = await startBackend('a local directory', scratch);
    const base = fs.mkdtempSync(path.join(scratch, 'pg-'));
    fs.chmodSync(base, 0o755);
    giveToPostgres(base);
    env = { ...backend.env, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
    primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
    primary.start();
    primary.sql('create table story(batch int, id int, payload text)');
  }, 120_000);

  afterAll(async () => {
    stopArchiver(env);
    await primary?.remove();
    await backend?.stop();
  });

  it('takes three backups with WAL between them', async () => {
    for (let batch = 1; batch <= 3; batch++) {
      primary.sql(`insert into story select ${batch}, g, md5(g::text) from generate_series(1, 20000) g`);
      primary.sql('select pg_switch_wal()');
      const pushed = archiver(['backup-push', '--json', '--no-progress'], serverEnv());
      expect(pushed.stderr).toMatch(/msg="backup complete"/);
      expect(pushed.status).toBe(0);
      const summary = JSON.parse(pushed.stdout);
      names.push(summary.name);
      manifests[summary.name] = summary;
      await new Promise((resolve) => setTimeout(resolve, 1100)); // backup names are per second
    }
    primary.sql('insert into story select 4, g, md5(g::text) from generate_series(1, 20000) g');
    primary.sql('select pg_switch_wal()');
    await primary.waitForArchiving();
    expect(new Set(names).size).toBe(3);
    const verified = archiver(['wal-verify']);
    expect(verified.stdout).toMatch(/^ok: 1 timeline\(s\)/m);
    expect(verified.status).toBe(0);
  }, 300_000);

  it('delete retain 2 --confirm removes the oldest backup and the WAL before the second one\'s startWal, and nothing else', async () => {
    const storage = await openStorage(backend.storage);
    try {
      const before = await keysOf(storage);
      const second = manifests[names[1]].startWal;
      const result = archiver(['delete', 'retain', '2', '--confirm']);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain(`delete ${names[0]}`);
      const after = await keysOf(storage);
      const gone = before.filter((key) => !after.includes(key));
      const walGone = gone.filter((key) => key.startsWith('wal/')).map((key) => key.slice(4));
      expect(walGone.length).toBeGreaterThan(0);
      expect(walGone.every((name) => name.slice(8, 24) < second.slice(8))).toBe(true);
      const walKept = after.filter((key) => key.startsWith('wal/')).map((key) => key.slice(4));
      expect(walKept).toContain(second);
      expect(walKept.filter((name) => !name.endsWith('.history')).every((name) => name.slice(8, 24) >= second.slice(8))).toBe(true);
      expect(gone.filter((key) => key.startsWith('basebackups/')).every((key) => key.startsWith(`basebackups/${names[0]}/`))).toBe(true);
      expect(after.some((key) => key.startsWith(`basebackups/${names[0]}/`))).toBe(false);
    } finally {
      await storage.close();
    }
    const listed = archiver(['backup-list', '--json']);
    expect(JSON.parse(listed.stdout).map((b: { name: string }) => b.name)).toEqual(names.slice(1));
    const verified = archiver(['wal-verify']);
    expect(verified.status).toBe(0);
    expect(verified.stdout).toContain(`(start of the oldest backup, ${names[1]})`);
  }, 120_000);

  it('the oldest backup kept still restores, with every row', async () => {
    const parent = fs.mkdtempSync(path.join(scratch, 'restore-'));
    giveToPostgres(parent);
    const directory = path.join(parent, 'data');
    const restoreEnv = { ...backend.env, ARCHIVER_DAEMON: 'off' };
    const fetched = spawnSync(LAUNCHER, ['backup-fetch', names[1], directory, '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`, '--no-progress'], {
      env: { PATH: process.env.PATH!, ...restoreEnv },
      encoding: 'utf8',
      timeout: 300_000,
      ...postgresUser(),
    });
    expect(fetched.stderr).toMatch(/msg="restore complete"/);
    expect(fetched.status).toBe(0);
    const restored = await PostgresCluster.create({ env: restoreEnv, fromDataDirectory: directory, settings: { archive_mode: 'off' } });
    try {
      restored.start(false);
      await restored.waitForRecoveryEnd(180_000);
      expect(rows(restored)).toBe(rows(primary));
      expect(rows(restored)).toBe('80000');
    } finally {
      await restored.remove();
      fs.rmSync(parent, { recursive: true, force: true });
    }
  }, 300_000);

  it('delete everything: nothing without --confirm, nothing left with it', async () => {
    primary.stop();
    stopArchiver(env);
    const storage = await openStorage(backend.storage);
    try {
      const before = await keysOf(storage);
      expect(before.length).toBeGreaterThan(5);
      expect(archiver(['delete', 'everything']).status).toBe(0);
      expect(await keysOf(storage)).toEqual(before);
      const done = archiver(['delete', 'everything', '--confirm']);
      expect(done.status).toBe(0);
      expect(await storage.list('')).toEqual([]);
    } finally {
      await storage.close();
    }
  }, 120_000);
});
