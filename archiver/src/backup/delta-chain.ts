/**
 * The chain of a delta backup: the full backup it rests on and every delta between, oldest
 * first. Pure, over the catalog's manifests. A restore lays the chain down in that order; retention
 * never deletes a backup a kept delta rests on.
 */
import { BackupNotFoundError, CorruptObjectError } from '../errors';
import type { BackupManifest } from './manifest';

/**
 * `backup` and its bases, the full backup first, `backup` last. Fails when a base is not among
 * `backups` (deleted, or never completed: the delta cannot be restored), is not of the same
 * database, or the chain loops.
 */
export function deltaChain(backup: BackupManifest, backups: readonly BackupManifest[], location: string): BackupManifest[] {
  const byName = new Map(backups.map((b) => [b.name, b]));
  const chain: BackupManifest[] = [backup];
  for (let current = backup; current.base !== undefined; ) {
    const base = byName.get(current.base);
    if (!base) throw new BackupNotFoundError(`backup ${current.name} is a delta of ${current.base}, which is not a complete backup at ${location}: ${backup.name} cannot be restored (restore an older full backup, or take a new one)`);
    if (base.systemIdentifier !== current.systemIdentifier) throw new CorruptObjectError(`backup ${current.name} names ${base.name} as its base, a backup of another database (system ${base.systemIdentifier}, not ${current.systemIdentifier})`);
    if (chain.includes(base)) throw new CorruptObjectError(`the bases of backup ${backup.name} loop back to ${base.name}`);
    chain.unshift(base);
    current = base;
  }
  return chain;
}

/** Every backup that `backups` (by name) rest on, themselves included. */
export function withBases(names: Iterable<string>, backups: readonly BackupManifest[]): Set<string> {
  const byName = new Map(backups.map((b) => [b.name, b]));
  const closed = new Set<string>();
  for (const name of names) {
    for (let current = byName.get(name); current && !closed.has(current.name); current = current.base === undefined ? undefined : byName.get(current.base)) {
      closed.add(current.name);
    }
  }
  return closed;
}
