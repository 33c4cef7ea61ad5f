/**
 * The spool: a directory beside pg_wal (same filesystem) where the background archiver leaves
 * work already done, for the launcher (archiver/bin/archiver) to pick up without starting Node:
 *
 *   pushed/NAME     empty file: NAME is durably archived (written only after the put resolved)
 *   prefetch/NAME   NAME restored from the archive, checksum verified, fsync'd; renamed into
 *                   pg_wal by the launcher
 *   daemon-FP.sock  the background archiver serving configuration fingerprint FP
 *
 * A marker is only ever trusted for the configuration that wrote it: the background archiver
 * empties the spool when it starts.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

export class Spool {
  public readonly pushedDir: string;
  public readonly prefetchDir: string;

  constructor(public readonly dir: string) {
    this.pushedDir = path.join(dir, 'pushed');
    this.prefetchDir = path.join(dir, 'prefetch');
  }

  socketPath(fingerprint: string): string {
    return path.join(this.dir, `daemon-${fingerprint}.sock`);
  }

  async ensure(): Promise<void> {
    await fs.mkdir(this.pushedDir, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.prefetchDir, { recursive: true, mode: 0o700 });
  }

  /** Forgets all markers and prefetched files. */
  async clear(): Promise<void> {
    for (const dir of [this.pushedDir, this.prefetchDir]) {
      for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
        await fs.rm(path.join(dir, entry), { force: true });
      }
    }
  }

  async markPushed(name: string): Promise<void> {
    await fs.writeFile(path.join(this.pushedDir, name), '');
  }

  /** Consumes the marker of `name`; true when there was one. */
  async takePushed(name: string): Promise<boolean> {
    try {
      await fs.unlink(path.join(this.pushedDir, name));
      return true;
    } catch {
      return false;
    }
  }

  async pushedNames(): Promise<string[]> {
    return fs.readdir(this.pushedDir).catch(() => []);
  }

  async removePushed(name: string): Promise<void> {
    await fs.rm(path.join(this.pushedDir, name), { force: true });
  }

  prefetchPath(name: string): string {
    return path.join(this.prefetchDir, name);
  }

  /** Prefetched names (temporary files excluded). */
  async prefetchedNames(): Promise<string[]> {
    return (await fs.readdir(this.prefetchDir).catch(() => [] as string[])).filter((n) => !n.endsWith('.tmp'));
  }

  /** Moves a prefetched `name` to `destination`; true when it was there. */
  async takePrefetched(name: string, destination: string): Promise<boolean> {
    try {
      await fs.rename(this.prefetchPath(name), destination);
      return true;
    } catch {
      return false;
    }
  }
}
