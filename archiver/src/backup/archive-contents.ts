/**
 * The I/O around the retention planner (retention.ts): one listing of the whole archive with the
 * manifests of its complete backups, and the deletion of a plan, step by step, in its order.
 */
import { ARCHIVE_LAYOUT, BACKUP_LAYOUT } from '../../../contract';
import { BackupNotFoundError } from '../errors';
import { Logger } from '../logger';
import { forEachLimited, type ObjectInfo, type Storage } from '../storage/storage';
import { readManifest } from './catalog';
import type { BackupManifest } from './manifest';
import type { RetentionPlan } from './retention';

export interface ArchiveContents {
  /** Every object of the archive. */
  readonly objects: readonly ObjectInfo[];
  /** The complete backups, oldest first (by stop time, then name: catalog.ts's order). */
  readonly backups: readonly BackupManifest[];
}

/** Keys deleted per storage request (S3's DeleteObjects takes 1000), each with its own deadline. */
const DELETE_BATCH = 1000;
/** Manifests read at once (each lists every file of its backup: they can be large). */
const MANIFEST_READS = 8;

/**
 * Lists the whole archive once and reads the manifest of every backup that has one. A manifest
 * that is gone by the time it is read (another delete) is left out; one that cannot be read fails
 * the whole: nothing is planned on a catalog read in part.
 */
export async function readArchiveContents(storage: Storage): Promise<ArchiveContents> {
  const objects = await storage.list('');
  const names = objects
    .map((object) => object.key.split('/'))
    .filter((parts) => parts.length === 3 && `${parts[0]}/` === ARCHIVE_LAYOUT.basebackups && parts[2] === BACKUP_LAYOUT.manifest)
    .map((parts) => parts[1]);
  const manifests: (BackupManifest | undefined)[] = [];
  await forEachLimited(names, MANIFEST_READS, async (name, index) => {
    manifests[index] = await readManifest(storage, name).catch((error) => {
      if (error instanceof BackupNotFoundError) return undefined;
      throw error;
    });
  });
  const backups = manifests.filter((manifest): manifest is BackupManifest => manifest !== undefined);
  backups.sort((a, b) => a.stopTime.localeCompare(b.stopTime) || a.name.localeCompare(b.name));
  return { objects, backups };
}

/** Deletes what `plan` says, one step after the other (manifests first); returns the count. */
export async function deletePlanned(storage: Storage, plan: RetentionPlan, log: Logger): Promise<number> {
  let deleted = 0;
  for (const step of plan.steps) {
    for (let start = 0; start < step.keys.length; start += DELETE_BATCH) {
      await storage.delete(step.keys.slice(start, start + DELETE_BATCH));
    }
    deleted += step.keys.length;
    log.info('deleted', { step: step.what, objects: step.keys.length, location: storage.location });
  }
  return deleted;
}
