/**
 * `archiver backup-push`: a base backup of the running database, read from its data directory
 * between pg_backup_start and pg_backup_stop (the non-exclusive API: on a primary or a standby).
 *
 * Order matters for the promise "a listed backup is always restorable":
 *   1. the parts (on worker threads, in parallel), then global/pg_control in a part of its own;
 *   2. pg_backup_stop, backup_label (and tablespace_map);
 *   3. wait until the archive holds every WAL segment from the start to the stop position;
 *   4. manifest.json, last. Before it exists the backup is not listed; a failure at any step
 *      leaves no manifest, and the next backup (another name) starts afresh.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { BACKUP_LAYOUT, backupPrefix, walKey } from '../../../contract';
import type { Archive } from '../archive';
import type { ArchiverConfig } from '../config';
import { BackupError, BackupInProgressError } from '../errors';
import { Logger } from '../logger';
import { nextSegment } from '../wal-names';
import { backupName, manifestKey } from './catalog';
import { DataEntry, PG_CONTROL, walkDataDirectory } from './data-directory';
import { formatLsn, parseLsn, segmentEndingAt } from './lsn';
import { BackupManifest, ManifestDelta, ManifestFile, ManifestRange, MANIFEST_FORMAT, combinedRanges, encodeManifest } from './manifest';
import type { Storage } from '../storage/storage';
import { listBackups } from './catalog';
import { deltaChain } from './delta-chain';
import { isPagedRelationFile } from './page-delta';
import type { DeltaSpec, StoredFile } from './part-stream';
import { PartRunner, PushedPart } from './part-runner';
import { PlannedPiece, planParts, partKey } from './parts-plan';
import { ConnectionSettings, PostgresSession, ServerFacts } from './postgres-session';
import { Progress } from './progress';
import { resetEndedRecoverySettings } from './recovery-end';

export interface BackupPushOptions {
  /** Ask for an immediate checkpoint at the start (`false`: a spread one, less I/O, slower start). @default true */
  readonly fast?: boolean;
  /** Parts stored at once, one worker thread each. @default 2 */
  readonly concurrency?: number;
  /** File bytes per part; larger files are cut into ranges of this size. @default DEFAULT_PART_BYTES (64 MiB) */
  readonly partBytes?: number;
  /** How long to wait for the WAL up to the stop position to reach the archive. @default 300 s */
  readonly walTimeoutSeconds?: number;
  readonly connection?: ConnectionSettings;
  /** A progress bar (true), log lines (false). @default stderr is a terminal */
  readonly terminal?: boolean;
  /**
   * A delta backup of the newest complete backup when one can serve as its base (same database
   * and timeline, a chain shorter than `deltaMaxSteps`); a full backup otherwise. @default false
   */
  readonly delta?: boolean;
  /** Deltas in a row at most before a full backup is taken again. @default DEFAULT_DELTA_MAX_STEPS */
  readonly deltaMaxSteps?: number;
}

/**
 * A full backup then up to six deltas: with a daily schedule, a full backup a week. Each step
 * adds the delta's restore time (its share of changed pages), and every one of them must be in
 * the archive for the newest to restore.
 */
export const DEFAULT_DELTA_MAX_STEPS = 6;

/** Takes a base backup into `archive`; resolves with its manifest once it is listed. */
export async function backupPush(config: ArchiverConfig, archive: Archive, log: Logger, options: BackupPushOptions = {}): Promise<BackupManifest> {
  const session = await PostgresSession.open(options.connection);
  try {
    const { facts } = session;
    const lock = await acquireBackupLock(facts.dataDirectory);
    if (!lock) throw new BackupInProgressError(`another backup of the database at ${facts.dataDirectory} is running; wait for it to finish`);
    try {
      await fs.access(path.join(facts.dataDirectory, 'PG_VERSION')).catch(() => {
        throw new BackupError(`the server's data directory ${facts.dataDirectory} cannot be read here: backup-push reads it directly, so it must run where the data volume is mounted at the same path (the archiver sidecar)`);
      });
      await archive.claimIdentity(facts.systemIdentifier, facts.walSegmentSize);
      // A backup of a server whose recovery is over never carries that recovery's settings
      // (recovery-end.ts): they are reset first, also when the sidecar's watcher has not yet.
      if (!facts.inRecovery) await resetEndedRecoverySettings(session, log);
      return await takeBackup(config, archive, session, log, options);
    } finally {
      await lock.release();
    }
  } finally {
    await session.close();
  }
}

async function takeBackup(config: ArchiverConfig, archive: Archive, session: PostgresSession, log: Logger, options: BackupPushOptions): Promise<BackupManifest> {
  const { facts } = session;
  const storage = archive.storage;
  const name = await freeBackupName(storage);
  const prefix = backupPrefix(name);
  const blog = log.child({ backup: name });
  const base = options.delta ? await chooseDeltaBase(storage, facts, options.deltaMaxSteps ?? DEFAULT_DELTA_MAX_STEPS, blog) : undefined;
  blog.info('backup started', { data_directory: facts.dataDirectory, from: facts.inRecovery ? 'standby' : 'primary', location: storage.location, ...(base ? { delta_of: base.name } : {}) });
  const start = await session.startBackup(name, options.fast ?? true);
  let stopped = false;
  try {
    const entries = await walkDataDirectory(facts.dataDirectory);
    const totalBytes = entries.reduce((sum, entry) => sum + entry.size, 0);
    const progress = new Progress({ what: `backup ${name}`, totalBytes, log: blog, terminal: options.terminal });
    const runner = new PartRunner(config.storage, options.concurrency ?? 2, (bytes) => progress.add(bytes));
    // A delta stores each relation file's pages changed since its base started.
    const baseSizes = base ? new Map([...base.files, ...(base.deltas ?? [])].map((file) => [file.path, file.size])) : undefined;
    const deltaOf = (entry: DataEntry): DeltaSpec | undefined =>
      base && entry.type === 'file' && isPagedRelationFile(entry.path) ? { threshold: parseLsn(base.startLsn), baseSize: baseSizes!.get(entry.path) ?? 0, pageSize: facts.pageSize } : undefined;
    const toJob = (part: readonly PlannedPiece[], index: number) => ({
      op: 'push' as const,
      key: `${prefix}${partKey(index)}`,
      entries: part.map(({ entry, range }) => {
        const delta = deltaOf(entry);
        return { absolute: path.join(facts.dataDirectory, entry.path), path: entry.path, type: entry.type, mode: entry.mode, mtime: entry.mtime, ...(range ? { range } : {}), ...(delta ? { delta } : {}) };
      }),
      compression: config.compression,
      level: config.compressionLevel,
    });
    const pushed: PushedPart[] = [];
    try {
      const plan = planParts(entries, options.partBytes);
      // The largest parts first: the threads then finish close together.
      const order = plan.map((part, index) => ({ index, bytes: partBytes(part) })).sort((a, b) => b.bytes - a.bytes || a.index - b.index);
      const results = await runner.run(order.map(({ index }) => toJob(plan[index], index)));
      order.forEach(({ index }, at) => {
        pushed[index] = results[at];
      });
      // pg_control last, once every other file is stored.
      const control = entries.find((entry) => entry.path === PG_CONTROL);
      if (!control) throw new BackupError(`${path.join(facts.dataDirectory, PG_CONTROL)} is missing: not a data directory`);
      pushed.push(...(await runner.run([toJob([{ entry: control }], plan.length)])));
    } finally {
      await runner.close();
    }
    progress.finish();

    const stop = await session.stopBackup();
    stopped = true;
    const snapshot = await session.snapshot().catch(() => undefined);
    const label = parseBackupLabel(stop.backupLabel);
    if (base && label.timeline !== base.timeline) {
      throw new BackupError(`the server moved to timeline ${label.timeline} during a delta backup of ${base.name} (timeline ${base.timeline}): page LSNs of two timelines cannot be compared; take a full backup`);
    }
    await storage.put(`${prefix}${BACKUP_LAYOUT.backupLabel}`, Buffer.from(stop.backupLabel));
    if (stop.tablespaceMap) await storage.put(`${prefix}${BACKUP_LAYOUT.tablespaceMap}`, Buffer.from(stop.tablespaceMap));

    const stopWal = segmentEndingAt(label.timeline, parseLsn(stop.stopLsn), facts.walSegmentSize);
    blog.info('waiting for the WAL of the backup to reach the archive', { start_wal: label.startWal, stop_wal: stopWal });
    await waitForWal(archive, label.startWal, stopWal, facts.walSegmentSize, (options.walTimeoutSeconds ?? 300) * 1000);

    const { files, deltas } = manifestFiles(pushed);
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      name,
      label: name,
      startLsn: formatLsn(parseLsn(start.startLsn)),
      stopLsn: formatLsn(parseLsn(stop.stopLsn)),
      startWal: label.startWal,
      stopWal,
      timeline: label.timeline,
      startTime: new Date(start.startTime).toISOString(),
      stopTime: new Date(stop.stopTime).toISOString(),
      systemIdentifier: facts.systemIdentifier,
      pgVersion: facts.versionNum,
      walSegmentSize: facts.walSegmentSize,
      fromStandby: facts.inRecovery,
      dataDirectory: facts.dataDirectory,
      compression: config.compression,
      size: [...files, ...deltas].reduce((sum, file) => sum + file.size, 0),
      storedSize: pushed.reduce((sum, part) => sum + part.storedSize, 0),
      hasTablespaceMap: stop.tablespaceMap !== '',
      stopSnapshot: snapshot,
      parts: pushed.map((part, index) => ({ key: partKey(index), size: part.tarBytes, storedSize: part.storedSize })),
      directories: entries.filter((entry) => entry.type === 'directory').map((entry) => ({ path: entry.path, mode: entry.mode })),
      files,
      ...(base ? { base: base.name, deltas } : {}),
      pageSize: facts.pageSize,
    };
    // A delete that ran meanwhile may have taken the base (it could not know of this delta):
    // listed without it, this backup could never be restored.
    if (base && (await storage.stat(manifestKey(base.name))) === undefined) {
      throw new BackupError(`the base of this delta, ${base.name}, was deleted while it was taken (a delete ran meanwhile): take the backup again`);
    }
    await storage.put(manifestKey(name), encodeManifest(manifest), { ifAbsent: true });
    blog.info('backup complete', {
      start_lsn: manifest.startLsn,
      stop_lsn: manifest.stopLsn,
      timeline: manifest.timeline,
      bytes: manifest.size,
      stored_bytes: manifest.storedSize,
      files: files.length + deltas.length,
      ...(base ? { delta_of: base.name, delta_files: deltas.length, delta_pages: deltas.reduce((sum, d) => sum + d.pages, 0) } : {}),
      seconds: Math.round((Date.parse(manifest.stopTime) - Date.parse(manifest.startTime)) / 100) / 10,
    });
    return manifest;
  } catch (error) {
    blog.warn('backup failed: nothing of it is listed', { error: (error as Error).message });
    if (!stopped) await session.stopBackup().catch(() => undefined);
    // Best effort: an unfinished backup is never listed, and `delete` removes what is left. Never
    // another backup's objects: a manifest this backup did not write (it writes it last) is one's.
    if ((await storage.stat(manifestKey(name)).catch(() => undefined)) === undefined) {
      const left = await storage.list(prefix).catch(() => []);
      await storage.delete(left.map((object) => object.key)).catch(() => undefined);
    }
    throw error;
  }
}

function partBytes(part: readonly PlannedPiece[]): number {
  return part.reduce((sum, { entry, range }) => sum + (range ? range.length : entry.size), 0);
}

/**
 * The manifest's files and page deltas from what each part stored, in path order: a file stored as
 * ranges is one entry, with its ranges in order and the CRC-32 of the whole (file, or blobs one
 * after the other) combined from theirs.
 */
export function manifestFiles(pushed: readonly PushedPart[]): { files: ManifestFile[]; deltas: ManifestDelta[] } {
  const files: ManifestFile[] = [];
  const deltas: ManifestDelta[] = [];
  const ranged = new Map<string, { first: StoredFile; pieces: { stored: StoredFile; part: number }[] }>();
  pushed.forEach((part, index) => {
    for (const stored of part.files) {
      if (stored.range) {
        const entry = ranged.get(stored.path) ?? { first: stored, pieces: [] };
        ranged.set(stored.path, entry);
        entry.pieces.push({ stored, part: index });
      } else if (stored.delta) {
        deltas.push({ path: stored.path, size: stored.delta.fileSize, mode: stored.mode, mtime: stored.mtime, blobSize: stored.size, pages: stored.delta.pages, checksum: stored.checksum, part: index });
      } else {
        files.push({ path: stored.path, size: stored.size, mode: stored.mode, mtime: stored.mtime, checksum: stored.checksum, part: index });
      }
    }
  });
  for (const { first, pieces } of ranged.values()) {
    pieces.sort((a, b) => a.stored.range!.offset - b.stored.range!.offset);
    const fileSize = first.range!.fileSize;
    let covered = 0;
    for (const { stored: piece } of pieces) {
      const range = piece.range!;
      if (range.offset !== covered || range.fileSize !== fileSize) throw new BackupError(`the ranges of ${first.path} do not cover it: one ends at ${covered}, the next starts at ${range.offset}`);
      covered += range.length;
    }
    if (covered !== fileSize) throw new BackupError(`the ranges of ${first.path} end at ${covered}, before the file's end at ${fileSize}`);
    const ranges: ManifestRange[] = pieces.map(({ stored: piece, part }) => ({ part, offset: piece.range!.offset, size: piece.size, checksum: piece.checksum }));
    const { size: stored, checksum } = combinedRanges(ranges);
    const pages = pieces.reduce((sum, { stored: piece }) => sum + (piece.delta?.pages ?? 0), 0);
    const common = { path: first.path, mode: first.mode, mtime: first.mtime, checksum, part: ranges[0].part, ranges };
    if (first.delta) deltas.push({ ...common, size: fileSize, blobSize: stored, pages });
    else files.push({ ...common, size: stored });
  }
  const byPath = <T extends { path: string }>(a: T, b: T) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { files: files.sort(byPath), deltas: deltas.sort(byPath) };
}

/**
 * The newest complete backup a delta can rest on: same database, same timeline (page LSNs of two
 * timelines do not compare), a chain of fewer than `maxSteps` deltas. None: a full backup, and the
 * log says why.
 */
async function chooseDeltaBase(storage: Storage, facts: ServerFacts, maxSteps: number, log: Logger): Promise<BackupManifest | undefined> {
  const backups = (await listBackups(storage)).filter((backup) => backup.systemIdentifier === facts.systemIdentifier);
  const newest = backups[backups.length - 1];
  const full = (reason: string) => {
    log.info('taking a full backup instead of a delta', { reason });
    return undefined;
  };
  if (!newest) return full('the archive holds no complete backup of this database');
  if (newest.timeline !== facts.timeline) return full(`the newest backup ${newest.name} is of timeline ${newest.timeline}, the server is on ${facts.timeline}`);
  let steps: number;
  try {
    steps = deltaChain(newest, backups, storage.location).length - 1;
  } catch (error) {
    return full(`the chain of ${newest.name} is broken: ${(error as Error).message}`);
  }
  if (steps >= maxSteps) return full(`the newest backup ${newest.name} ends a chain of ${steps} delta(s), the most allowed (--delta-max-steps ${maxSteps})`);
  return newest;
}

/** START WAL LOCATION's file and START TIMELINE from a backup_label. */
export function parseBackupLabel(label: string): { startWal: string; timeline: number } {
  const wal = /^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$/m.exec(label);
  const timeline = /^START TIMELINE: (\d+)$/m.exec(label);
  if (!wal || !timeline) throw new BackupError(`pg_backup_stop returned a backup_label this archiver cannot read:\n${label}`);
  return { startWal: wal[1], timeline: Number(timeline[1]) };
}

/**
 * Waits until every segment from `first` to `last` (same timeline) is in the archive: a backup is
 * restorable only with them. PostgreSQL archives them (the primary's pg_backup_stop switches to a
 * new segment; on a standby, the primary archives it when it fills or at archive_timeout).
 */
async function waitForWal(archive: Archive, first: string, last: string, segmentSize: number, timeoutMs: number): Promise<void> {
  const needed: string[] = [first];
  while (needed[needed.length - 1] !== last) {
    if (needed.length > 1_000_000) throw new BackupError(`the WAL from ${first} to ${last} is not a range of one timeline`);
    needed.push(nextSegment(needed[needed.length - 1], segmentSize));
  }
  const deadline = Date.now() + timeoutMs;
  let delay = 200;
  for (;;) {
    const present = new Set<string>();
    for (const group of new Set(needed.map((name) => name.slice(0, 16)))) {
      for (const object of await archive.storage.list(walKey(group))) present.add(object.key);
    }
    const missing = needed.filter((name) => !present.has(walKey(name)));
    if (missing.length === 0) return;
    if (Date.now() >= deadline) {
      throw new BackupError(
        `the WAL the backup needs is not in the archive after ${Math.round(timeoutMs / 1000)} s (missing: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}): check that archiving works (archive_mode, archive_command, the archiver's log)`,
      );
    }
    // Never past the deadline: one more look at it, then the verdict.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(delay, deadline - Date.now()))));
    delay = Math.min(delay * 2, 5000);
  }
}

/**
 * At most one backup per data directory: an abstract Unix socket named after it (released by the
 * kernel when the process dies, however it dies; shared by a pod's containers).
 */
/**
 * A name (one per second, backupName) under which the archive holds nothing yet: a backup that
 * starts in the second another one started in (a small database's backup takes less than a
 * second; a scheduled one may follow one taken at ready) waits for the next second rather than
 * write its parts among the other's.
 */
async function freeBackupName(storage: Storage): Promise<string> {
  for (;;) {
    const name = backupName(new Date());
    if ((await storage.list(backupPrefix(name))).length === 0) return name;
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 10));
  }
}

async function acquireBackupLock(dataDirectory: string): Promise<{ release(): Promise<void> } | undefined> {
  const name = `\0pg-wal-archiver-backup/${createHash('sha256').update(dataDirectory).digest('hex').slice(0, 32)}`;
  const server = net.createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error)));
    server.listen(name, () => {
      server.unref();
      resolve({ release: () => new Promise((done) => server.close(() => done())) });
    });
  });
}
