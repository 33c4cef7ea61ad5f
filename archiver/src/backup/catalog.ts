/**
 * The backups of an archive: those whose manifest exists, oldest first. An unfinished backup (its
 * parts without a manifest: a backup killed half-way, or one running now) is never listed.
 */
import { ARCHIVE_LAYOUT, BACKUP_LAYOUT, backupPrefix } from '../../../contract';
import { BackupNotFoundError, ObjectNotFoundError } from '../errors';
import type { Storage } from '../storage/storage';
import { BackupManifest, decodeManifest } from './manifest';

/** `base_20261130T060102Z`: sortable, readable, one per second. */
export function backupName(at: Date): string {
  return `base_${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

export function isBackupName(name: string): boolean {
  return /^base_\d{8}T\d{6}Z$/.test(name);
}

export function manifestKey(name: string): string {
  return `${backupPrefix(name)}${BACKUP_LAYOUT.manifest}`;
}

/** Every complete backup, oldest first (by stop time, then name). */
export async function listBackups(storage: Storage): Promise<BackupManifest[]> {
  const objects = await storage.list(ARCHIVE_LAYOUT.basebackups);
  const names = objects
    .map((object) => object.key.slice(ARCHIVE_LAYOUT.basebackups.length).split('/'))
    .filter((parts) => parts.length === 2 && parts[1] === BACKUP_LAYOUT.manifest)
    .map((parts) => parts[0]);
  const manifests = await Promise.all(names.map((name) => readManifest(storage, name)));
  return manifests.sort((a, b) => a.stopTime.localeCompare(b.stopTime) || a.name.localeCompare(b.name));
}

export async function readManifest(storage: Storage, name: string): Promise<BackupManifest> {
  const key = manifestKey(name);
  try {
    return decodeManifest(await storage.get(key), `${key} at ${storage.location}`);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) throw new BackupNotFoundError(`no complete backup named ${name} at ${storage.location} (backup-list shows the backups)`);
    throw error;
  }
}

/** The backup named `name`, or the newest one for `LATEST`. */
export async function findBackup(storage: Storage, name: string): Promise<BackupManifest> {
  if (name.toUpperCase() !== 'LATEST') return readManifest(storage, name);
  const backups = await listBackups(storage);
  if (backups.length === 0) throw new BackupNotFoundError(`the archive at ${storage.location} holds no complete backup (take one with backup-push)`);
  return backups[backups.length - 1];
}
