/**
 * Delta backups on their failure paths, with real PostgreSQL 15, a local archive and real parts: a
 * `backup-push --delta` killed while its parts upload is never listed, the next delta succeeds and
 * its chain restores exactly the rows, and retention afterwards leaves nothing of the killed one;
 * a delta chain whose part is damaged (bytes flipped, or cut short) — the delta's or its base's —
 * fails naming the object and leaves nothing; a delta restore into a disk that fills up fails with
 * RestoreWriteError naming the file, and leaves the directory as it found it.
 */
import { ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../../contract';
import { LAUNCHER, eventually, lastLog, runArchiverAsPostgres, spawnArchiverAsPostgres, stopArchiver } from '../../../testkit/archiver';
import { TestBackend, startBackend } from '../../../testkit/backends';
import { SmallDisk } from '../../../testkit/small-disk';
import { PostgresCluster } from '../../../testkit/postgres';
import { archivingEnv, testScratch } from '../../../testkit/scratch';

const { dir: scratch, postgresDirectory } = testScratch('backup-failure-paths-delta-');

const archiver = runArchiverAsPostgres;

interface Manifest {
  name: string;
  base?: string;
  size: number;
  parts: { key: string; size: number; storedSize: number }[];
  files: { path: string; size: number; part: number }[];
  deltas?: { path: string; size: number; pages: number; blobSize: number; part: number; ranges?: { part: number }[] }[];
}

let backend: TestBackend;
let primary: PostgresCluster;
let env: Record<string, string>;
let root: string;
const smallDiskMount = new SmallDisk(path.join(scratch, 'small-disk'));
const smallDisk = smallDiskMount.path;
const serverEnv = () => ({ ...env, PGHOST: primary.baseDir, PGPORT: String(primary.port) });
const restoreEnv = () => ({ ...backend.env, ARCHIVER_DAEMON: 'off' });
const manifestOf = (name: string): Manifest => JSON.parse(fs.readFileSync(backend.objectFile(`basebackups/${name}/manifest.json`)!, 'utf8'));
const backupNames = () => (JSON.parse(archiver(['backup-list', '--json'], env).stdout) as { name: string }[]).map((b) => b.name);
/** Every table's rows, as one comparable line. */
const fingerprint = (cluster: PostgresCluster) =>
  cluster.sql(
    "select string_agg(relname || '=' || coalesce((xpath('/row/c/text()', query_to_xml('select count(*) || '':'' || md5(string_agg(t::text, '','' order by t::text)) as c from ' || quote_ident(relname) || ' t', false, true, '')))[1]::text, ''), ' ' order by relname) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace",
  );

/** Every file and directory under `directory`, relative, sorted ([] when it does not exist). */
function tree(directory: string): string[] {
  if (!fs.existsSync(directory)) return [];
  return (fs.readdirSync(directory, { recursive: true }) as string[]).sort();
}

function push(...args: string[]): Manifest {
  const pushed = archiver(['backup-push', '--json', '--no-progress', '--part-size-mib', '1', ...args], serverEnv());
  expect(pushed.stderr).toMatch(/msg="backup complete"/);
  expect(pushed.status).toBe(0);
  return manifestOf(JSON.parse(pushed.stdout).name);
}

/** The key of the part that holds the (first range of the) delta of `relation` in `backup`. */
function partOfDelta(backup: Manifest, relation: string): string {
  const delta = backup.deltas!.find((d) => d.path === relation)!;
  return `basebackups/${backup.name}/${backup.parts[delta.ranges?.[0].part ?? delta.part].key}`;
}

/** The key of the part that holds (the first range of) `file` in the full backup `backup`. */
function partOfFile(backup: Manifest, file: string): string {
  const entry = backup.files.find((f) => f.path === file)!;
  return `basebackups/${backup.name}/${backup.parts[entry.part].key}`;
}

const noted: { full?: Manifest; delta?: Manifest; rowsAtDelta?: string; killed?: string } = {};

beforeAll(async () => {
  backend = await startBackend('a local directory', scratch);
  root = (backend.storage as { root: string }).root;
  const base = postgresDirectory();
  env = archivingEnv(backend.env, base);
  primary = await PostgresCluster.create({ env, settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${LAUNCHER} wal-push %p'`, archive_timeout: 60 } });
  primary.start();
  primary.sql('create table big(id int primary key, payload text)');
  primary.sql("insert into big select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 100000) g");
  primary.sql('vacuum analyze');
  noted.full = push();
  // What the deltas store: a fifth of big's rows updated, and a new table of ~13 MB (every page
  // of it in the delta: its base has no copy), which a small disk that holds the base lacks room for.
  primary.sql('update big set payload = upper(payload) where id % 5 = 0');
  primary.sql("create table fresh as select g id, repeat(md5(g::text), 4) payload from generate_series(1, 80000) g");
}, 120_000);

afterAll(async () => {
  // One hook, in order: the mount goes before the directory that holds it.
  try {
    stopArchiver(env);
    await primary?.remove();
    await backend?.stop();
  } finally {
    smallDiskMount.unmount();
  }
}, 120_000);

describe('a backup-push --delta killed while its parts upload', () => {
  it('is never listed; the next delta succeeds and its chain restores exactly the rows', async () => {
    const before = backupNames();
    expect(before).toEqual([noted.full!.name]);
    const child = spawnArchiverAsPostgres(['backup-push', '--delta', '--no-progress', '--part-size-mib', '1', '--concurrency', '1'], serverEnv());
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const closed = new Promise((resolve) => child.once('close', resolve));
    const killed = await killWhileUploading(child, () => stderr);
    noted.killed = killed;
    await closed;
    expect(stderr).toMatch(new RegExp(`msg="backup started" .*delta_of=${noted.full!.name}`));
    // Killed half-way: parts stored, pg_backup_stop never reached (no backup_label), no manifest.
    const left = fs.readdirSync(path.join(root, 'basebackups', killed));
    expect(left).toEqual(['parts']);
    expect(backupNames()).toEqual(before);
    // The server's backup ended with the session.
    expect(await eventually(() => primary.sql("select count(*) from pg_stat_activity where application_name = 'archiver backup'") === '0', 10_000)).toBe(true);

    primary.sql("insert into fresh select g, 'after the kill' from generate_series(80001, 81000) g");
    noted.rowsAtDelta = fingerprint(primary);
    const delta = push('--delta');
    noted.delta = delta;
    expect(delta.base).toBe(noted.full!.name);
    expect(backupNames()).toEqual([noted.full!.name, delta.name]);
    // Writes after the backup must not reach a restore to its end.
    primary.sql('delete from big where id < 1000');
    expect(await restoreRows(delta.name)).toBe(noted.rowsAtDelta);
  }, 120_000);

  it('retention afterwards removes everything of the killed one: no object, no file', () => {
    const dryRun = JSON.parse(archiver(['delete', 'retain', '1', '--json'], env).stdout);
    expect(dryRun.unfinished).toEqual([expect.objectContaining({ name: noted.killed, keep: false, reason: `unfinished, started before the newest complete backup (${noted.delta!.name})` })]);
    const deleted = archiver(['delete', 'retain', '1', '--confirm', '--json'], env);
    expect(deleted.status).toBe(0);
    // The chain is kept whole.
    expect(backupNames()).toEqual([noted.full!.name, noted.delta!.name]);
    // Nothing of the killed backup: neither a listed object nor what its cut-short upload left
    // (a partial part, directories).
    expect(tree(path.join(root, 'basebackups', noted.killed!))).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'basebackups')).sort()).toEqual([noted.full!.name, noted.delta!.name].sort());
  });
});

describe('a damaged part of a delta chain', () => {
  /** Runs backup-fetch of the chain with `key` damaged by `damage`, restores the object, returns the result. */
  function fetchWithDamaged(key: string, damage: (original: Buffer) => Buffer, backup = noted.delta!.name) {
    const file = backend.objectFile(key)!;
    const original = fs.readFileSync(file);
    fs.writeFileSync(file, damage(original));
    try {
      const parent = postgresDirectory();
      const directory = path.join(parent, 'data');
      const result = archiver(['backup-fetch', backup, directory, '--no-progress'], restoreEnv());
      return { ...result, left: fs.readdirSync(parent) };
    } finally {
      fs.writeFileSync(file, original);
    }
  }
  /** A run of bytes flipped in the middle: a single flipped byte may turn a match into an equal one. */
  const flip = (original: Buffer) => {
    const damaged = Buffer.from(original);
    for (let i = Math.floor(damaged.length / 2); i < Math.floor(damaged.length / 2) + 64; i++) damaged[i] ^= 0xa5;
    return damaged;
  };
  const truncate = (original: Buffer) => original.subarray(0, Math.floor(original.length * 0.6));

  it.each([
    ['bytes flipped', flip],
    ['cut short', truncate],
  ])("the delta's part, %s: fails (exit 1) naming the object, and leaves nothing", (_how, damage) => {
    const key = partOfDelta(noted.delta!, primary.sql("select pg_relation_filepath('big')"));
    const result = fetchWithDamaged(key, damage);
    expect(result.status).toBe(EXIT_CODES.error);
    expect(result.left).toEqual([]);
    expect(result.stderr).toMatch(/msg="restore failed: what it wrote is removed"/);
    expect(lastLog(result.stderr)).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'CorruptObjectError', exit: '1' });
    expect(lastLog(result.stderr).msg).toContain(`${key} at file://${root}`);
  });

  it('stored without compression (no checksum but the files\'): a damaged tar header or page-delta header fails with CorruptObjectError naming the object', () => {
    // zstd's own checksum catches any flipped byte at once; without it the damage reaches the tar
    // parser, the page delta and the files' CRC-32s, each of which must say which object it is.
    primary.sql('update big set payload = lower(payload) where id % 7 = 0');
    const pushed = archiver(['backup-push', '--delta', '--json', '--no-progress', '--part-size-mib', '1'], { ...serverEnv(), ARCHIVER_COMPRESSION: 'none' });
    expect(pushed.status).toBe(0);
    const delta = manifestOf(JSON.parse(pushed.stdout).name);
    const key = partOfDelta(delta, primary.sql("select pg_relation_filepath('big')"));
    const stored = fs.readFileSync(backend.objectFile(key)!);
    const paxHeader = stored.indexOf('PaxHeader');
    const pageDelta = stored.indexOf('PGWD');
    expect([paxHeader, pageDelta].every((at) => at > 0)).toBe(true);
    const flipAt = (at: number) => (original: Buffer) => {
      const damaged = Buffer.from(original);
      for (let i = at; i < at + 4; i++) damaged[i] ^= 0xa5;
      return damaged;
    };
    // The tar parser's (the pax header's checksum) and the page delta's own (its block count).
    for (const at of [paxHeader, pageDelta + 20]) {
      const result = fetchWithDamaged(key, flipAt(at), delta.name);
      expect(result.status).toBe(EXIT_CODES.error);
      expect(result.left).toEqual([]);
      expect(lastLog(result.stderr), `bytes flipped at ${at}`).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'CorruptObjectError', exit: '1' });
      expect(lastLog(result.stderr).msg).toContain(`${key} at file://${root}`);
    }
  }, 60_000);

  it.each([
    ['bytes flipped', 'the chain', flip],
    ['cut short', 'the full backup alone', truncate],
  ])("its base's part, %s: %s fails naming the object, and leaves nothing", (_how, what, damage) => {
    const key = partOfFile(noted.full!, primary.sql("select pg_relation_filepath('big')"));
    const result = fetchWithDamaged(key, damage, what === 'the chain' ? noted.delta!.name : noted.full!.name);
    expect(result.status).toBe(EXIT_CODES.error);
    expect(result.left).toEqual([]);
    expect(lastLog(result.stderr)).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'CorruptObjectError', exit: '1' });
    expect(lastLog(result.stderr).msg).toContain(`${key} at file://${root}`);
  });
});

describe('a delta restore into a disk that fills up', () => {
  it('fails (exit 1) with RestoreWriteError naming the file, and leaves the directory as it found it', () => {
    const full = noted.full!;
    const delta = noted.delta!;
    // Room for what the base lays down, not for what the delta adds (its new table, ~13 MB).
    expect(delta.size - full.size).toBeGreaterThan(10 * 1024 * 1024);
    const mib = Math.ceil((full.size + (delta.size - full.size) / 2) / (1024 * 1024));
    smallDiskMount.mount(mib);
    const result = archiver(['backup-fetch', delta.name, smallDisk, '--no-progress'], restoreEnv());
    expect(result.status).toBe(EXIT_CODES.error);
    expect(result.stderr).toMatch(/msg="restore failed: what it wrote is removed"/);
    expect(fs.readdirSync(smallDisk)).toEqual([]);
    // Nothing held open or left hidden: the space is free again.
    const disk = fs.statfsSync(smallDisk);
    expect(disk.bfree).toBe(disk.blocks);
    const line = lastLog(result.stderr);
    expect(line).toMatchObject({ level: 'error', command: 'backup-fetch', error: 'RestoreWriteError', exit: '1' });
    const named = new RegExp(`^cannot write ${smallDisk}/(\\S+): ENOSPC: no space left on device`).exec(line.msg);
    expect(named, line.msg).not.toBeNull();
    // A file the delta writes: the base's layer fitted.
    expect([...delta.files, ...delta.deltas!].map((f) => f.path)).toContain(named![1]);
  }, 60_000);
});

/**
 * Waits until the backup has stored at least two parts and is writing the next one (a partial
 * part on disk), stops it there (SIGSTOP) and kills it (SIGKILL): killed half-way for certain,
 * never between parts or after the last. Returns the backup's name.
 */
async function killWhileUploading(child: ChildProcessWithoutNullStreams, stderr: () => string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`the backup did not get half-way:\n${stderr()}`);
    if (child.exitCode !== null) throw new Error(`the backup ended before it was killed:\n${stderr()}`);
    const name = /backup=(base_\w+)/.exec(stderr())?.[1];
    const parts = name === undefined ? [] : tree(path.join(root, 'basebackups', name, 'parts'));
    if (parts.filter((p) => !p.startsWith('.tmp-')).length >= 2 && parts.some((p) => p.startsWith('.tmp-'))) {
      child.kill('SIGSTOP');
      // Still half-way once stopped?
      const now = tree(path.join(root, 'basebackups', name!, 'parts'));
      if (now.some((p) => p.startsWith('.tmp-')) && !fs.existsSync(path.join(root, 'basebackups', name!, 'backup_label'))) {
        child.kill('SIGKILL');
        return name!;
      }
      child.kill('SIGCONT');
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Restores `name` with recovery to the end of that backup, starts it, and returns its rows. */
async function restoreRows(name: string): Promise<string> {
  const directory = path.join(postgresDirectory(), 'data');
  const fetched = archiver(['backup-fetch', name, directory, '--target-immediate', '--recovery', '--restore-command', `${LAUNCHER} wal-fetch %f %p`, '--no-progress'], restoreEnv());
  expect(fetched.stderr).toMatch(/msg="restore complete"/);
  expect(fetched.status).toBe(0);
  const restored = await PostgresCluster.create({ env: restoreEnv(), inPlaceDataDirectory: directory, settings: { archive_mode: 'off' } });
  try {
    restored.start(false);
    await restored.waitForRecoveryEnd(120_000);
    return fingerprint(restored);
  } finally {
    await restored.remove();
  }
}
