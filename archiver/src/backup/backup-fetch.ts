/**
 * `archiver backup-fetch <name|LATEST> <directory>`: restores a base backup into an empty
 * directory — parts downloaded, decompressed and written in parallel, every file verified
 * against the manifest — and, with `recovery`, the settings that replay the archived WAL to the
 * target. A failed restore removes what it wrote: nothing half-restored is left to start. One
 * killed before its end, with no chance to clean up, leaves no global/pg_control (written last of
 * all): PostgreSQL refuses to start on what it left.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { BACKUP_LAYOUT, backupPrefix } from '../../../contract';
import type { ArchiverConfig } from '../config';
import { TargetNotEmptyError } from '../errors';
import { fsyncDirectory } from '../fsync-directory';
import { Logger } from '../logger';
import type { Storage } from '../storage/storage';
import { findBackup, listBackups } from './catalog';
import type { BackupManifest } from './manifest';
import { deltaChain } from './delta-chain';
import { PartRunner } from './part-runner';
import { PG_CONTROL } from './data-directory';
import { RestoreLayer, controlFileParts, planRestore, restoreSteps } from './restore-plan';
import { Progress } from './progress';
import { RecoverySettingsOptions, recoverySettings } from './recovery-settings';
import { RecoveryTarget, checkReachable, chooseBackup, describeTarget } from './recovery-target';

export interface BackupFetchOptions {
  /** A backup name or `LATEST`. LATEST with a target: the newest backup that reaches it. */
  readonly backup: string;
  readonly directory: string;
  readonly target: RecoveryTarget;
  /** Write the recovery settings and recovery.signal. */
  readonly recovery?: Omit<RecoverySettingsOptions, 'target' | 'backupName' | 'writtenAt'>;
  /** Parts restored at once. @default 2 */
  readonly concurrency?: number;
  /** fsync every file and directory. @default true */
  readonly sync?: boolean;
  readonly terminal?: boolean;
}

export async function backupFetch(config: ArchiverConfig, storage: Storage, log: Logger, options: BackupFetchOptions): Promise<BackupManifest> {
  const backup = await pickBackup(storage, options.backup, options.target);
  const chain = backup.base === undefined ? [backup] : deltaChain(backup, await listBackups(storage), storage.location);
  const plan = planRestore(chain);
  const target = path.resolve(options.directory);
  const created = await prepareTarget(target);
  const blog = log.child({ backup: backup.name });
  blog.info('restore started', { directory: target, target: describeTarget(options.target), stop_lsn: backup.stopLsn, stop_time: backup.stopTime, ...(chain.length > 1 ? { chain: chain.map((b) => b.name).join(',') } : {}) });
  try {
    for (const directory of backup.directories) {
      await fs.mkdir(path.join(target, directory.path), { recursive: true, mode: directory.mode });
      await fs.chmod(path.join(target, directory.path), directory.mode);
    }
    const progress = new Progress({ what: `restore ${backup.name}`, totalBytes: plan.bytes, log: blog, terminal: options.terminal });
    const sync = options.sync ?? true;
    // The parts are downloaded here, through this client, and handed to the threads (body-channel.ts).
    const runner = new PartRunner(config.storage, options.concurrency ?? 2, (bytes) => progress.add(bytes), storage);
    const fetchJob = (layer: RestoreLayer, index: number) => ({
      op: 'fetch' as const,
      fetch: { key: `${backupPrefix(layer.backup.name)}${layer.backup.parts[index].key}`, target, pieces: layer.parts.get(index)!, directories: layer.backup.directories, sync },
    });
    const restoreParts = (layer: RestoreLayer, indexes: readonly number[]) => runner.run(indexes.map((index) => fetchJob(layer, index)));
    try {
      // pg_control comes last of all (controlFileParts): a restore cut short leaves no directory
      // that PostgreSQL would start.
      const control = plan.layers.map(controlFileParts);
      // Every layer's parts, the costliest first, a part of a later backup of the chain as soon as
      // the parts it writes onto are written (restoreSteps: a delta applies onto what its base wrote).
      const steps = restoreSteps(plan, (k) => control[k]);
      const started = process.hrtime.bigint();
      const partsOf = plan.layers.map((_, k) => steps.filter((step) => step.layer === k).length);
      const left = [...partsOf];
      await runner.run(
        steps.map((step) => fetchJob(plan.layers[step.layer], step.part)),
        {
          after: steps.map((step) => step.after),
          onDone: (index) => {
            const k = steps[index].layer;
            if (--left[k] === 0 && chain.length > 1) {
              const layer = plan.layers[k];
              blog.info('layer of the chain restored', { layer: layer.backup.name, parts: partsOf[k], bytes: layer.bytes, elapsed_seconds: Number(process.hrtime.bigint() - started) / 1e9 });
            }
          },
        },
      );
      // A file restored as ranges got its time only now that every range is written.
      for (const file of plan.rangedFiles) await fs.utimes(path.join(target, file.path), file.mtime, file.mtime);
      const prefix = backupPrefix(backup.name);
      await writeFile(target, 'backup_label', await storage.get(`${prefix}${BACKUP_LAYOUT.backupLabel}`));
      if (backup.hasTablespaceMap) await writeFile(target, 'tablespace_map', await storage.get(`${prefix}${BACKUP_LAYOUT.tablespaceMap}`));
      await fs.mkdir(path.join(target, 'pg_wal', 'archive_status'), { recursive: true, mode: 0o700 });
      if (options.recovery) {
        const settings = recoverySettings({ ...options.recovery, target: options.target, backupName: backup.name, writtenAt: new Date() });
        await fs.appendFile(path.join(target, 'postgresql.auto.conf'), settings, { mode: 0o600 });
        await writeFile(target, 'recovery.signal', Buffer.alloc(0));
      }
      // Everything else durable, names included, before pg_control is written.
      if (sync) await syncDirectories(target, backup);
      for (const [k, layer] of plan.layers.entries()) if (control[k].length > 0) await restoreParts(layer, control[k]);
      if (sync) await fsyncDirectory(path.join(target, path.dirname(PG_CONTROL)));
    } finally {
      await runner.close();
    }
    progress.finish();
    await fs.chmod(target, 0o700);
    blog.info('restore complete', { directory: target, bytes: backup.size, recovery: options.recovery ? 'configured' : 'not configured' });
    return backup;
  } catch (error) {
    blog.warn('restore failed: what it wrote is removed', { error: (error as Error).message, directory: target });
    await emptyDirectory(target, created);
    throw error;
  }
}

async function pickBackup(storage: Storage, name: string, target: RecoveryTarget): Promise<BackupManifest> {
  if (name.toUpperCase() === 'LATEST') {
    if (target.kind === 'latest' || target.kind === 'immediate') return findBackup(storage, 'LATEST');
    return chooseBackup(await listBackups(storage), target, storage.location);
  }
  const backup = await findBackup(storage, name);
  checkReachable(backup, target);
  return backup;
}

/** Creates the directory, or checks that it is empty; true when it was created here. */
async function prepareTarget(target: string): Promise<boolean> {
  const entries = await fs.readdir(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (entries === undefined) {
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
    return true;
  }
  if (entries.length > 0) {
    throw new TargetNotEmptyError(`backup-fetch: the directory ${target} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); restore into an empty or new directory: nothing is overwritten`);
  }
  return false;
}

async function emptyDirectory(target: string, created: boolean): Promise<void> {
  if (created) {
    await fs.rm(target, { recursive: true, force: true });
    return;
  }
  for (const entry of await fs.readdir(target).catch(() => [] as string[])) {
    await fs.rm(path.join(target, entry), { recursive: true, force: true });
  }
}

async function writeFile(directory: string, name: string, data: Buffer): Promise<void> {
  const handle = await fs.open(path.join(directory, name), 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs every directory, deepest first, so that every file's name is durable too. */
async function syncDirectories(target: string, backup: BackupManifest): Promise<void> {
  const directories = [...backup.directories.map((d) => path.join(target, d.path)), target].sort((a, b) => b.length - a.length);
  for (const directory of directories) await fsyncDirectory(directory);
}
