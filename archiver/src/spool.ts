/**
 * The spool: a directory beside pg_wal (same filesystem) where the background archiver leaves
 * work already done, for the launcher (archiver/bin/archiver) to pick up without starting Node:
 *
 *   .owner          the archive location the rest was made for (contract.ts `spoolOwner`)
 *   pushed/NAME     NAME is durably archived (written only after the put resolved); the file
 *                   holds the location it was archived to, which the taker compares
 *   prefetch/NAME   NAME restored from the archive, checksum verified; renamed into pg_wal by
 *                   the launcher
 *   .boot           the kernel's boot id when the prefetched files were written
 *   daemon-FP.sock  the background archiver serving configuration fingerprint FP
 *   daemon.port     "PORT TOKEN": where the newest background archiver listens on loopback TCP
 *                   for the launcher's bash helper, and the secret it must present (mode 0600)
 *
 * Markers and prefetched files are trusted only when `.owner` names the caller's location: a
 * writer first `claim()`s the spool (emptying it if it belonged to another location), and the
 * launcher compares `.owner` before it takes anything. The background archiver also empties the
 * spool when it starts.
 *
 * Prefetched files are not fsync'd (16 MiB each, competing with replay for the disk): they are
 * trusted only while `.boot` holds the running kernel's boot id. A file written and renamed
 * before a crash of the machine may be torn; after the reboot the boot id differs and nothing in
 * prefetch/ is taken. (Short of a crash, the page cache makes a renamed file whole.)
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

export class Spool {
  public readonly pushedDir: string;
  public readonly prefetchDir: string;

  private readonly ownerFile: string;

  /** `owner`: the caller's archive location (contract.ts `spoolOwner`). */
  constructor(
    public readonly dir: string,
    private readonly owner: string,
  ) {
    this.pushedDir = path.join(dir, 'pushed');
    this.prefetchDir = path.join(dir, 'prefetch');
    this.ownerFile = path.join(dir, '.owner');
  }

  /** Records the running kernel's boot id: prefetched files count until the next boot. */
  async recordBoot(): Promise<void> {
    const boot = await currentBootId();
    if (boot !== undefined) await fs.writeFile(path.join(this.dir, '.boot'), `${boot}\n`);
  }

  /** Whether prefetched files were written since the last boot. */
  async sameBoot(): Promise<boolean> {
    const [recorded, boot] = await Promise.all([fs.readFile(path.join(this.dir, '.boot'), 'utf8').catch(() => undefined), currentBootId()]);
    return boot !== undefined && recorded === `${boot}\n`;
  }

  /** Whether the spool's contents were made for this caller's location. */
  async owned(): Promise<boolean> {
    const recorded = await fs.readFile(this.ownerFile, 'utf8').catch(() => undefined);
    return recorded === `${this.owner}\n`;
  }

  /**
   * Makes the spool this location's before writing to it: another location's contents are
   * dropped. The owner is written first and the contents cleared after, so that a writer of the
   * old location (a background archiver still running) either sees the new owner when it checks
   * after writing (and removes what it wrote: `markPushed`), or wrote before the clear.
   */
  async claim(): Promise<void> {
    await this.ensure();
    if (await this.owned()) return;
    const temporary = `${this.ownerFile}.${process.pid}.tmp`;
    await fs.writeFile(temporary, `${this.owner}\n`);
    await fs.rename(temporary, this.ownerFile);
    await this.clear();
  }

  get portFile(): string {
    return path.join(this.dir, 'daemon.port');
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

  /**
   * Records that `name` is archived. False (and nothing recorded) when the spool now belongs to
   * another location: the caller's configuration is no longer the one in use.
   */
  async markPushed(name: string): Promise<boolean> {
    const marker = path.join(this.pushedDir, name);
    // The marker names its location: one written by a background archiver of the old location
    // in the moment a new one claims the spool is never taken for the new location.
    await fs.writeFile(marker, `${this.owner}\n`);
    if (await this.owned()) return true;
    await fs.rm(marker, { force: true });
    return false;
  }

  /** Places a prefetched file (written by `write` to a temporary path) under `name`, on the same terms as `markPushed`. */
  async offerPrefetched(name: string, write: (file: string) => Promise<void>): Promise<boolean> {
    const file = this.prefetchPath(name);
    await write(file);
    if (await this.owned()) return true;
    await fs.rm(file, { force: true });
    return false;
  }

  /** Consumes the marker of `name`; true when there was one, made for this location. */
  async takePushed(name: string): Promise<boolean> {
    const marker = path.join(this.pushedDir, name);
    if ((await fs.readFile(marker, 'utf8').catch(() => undefined)) !== `${this.owner}\n`) return false;
    try {
      await fs.unlink(marker);
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

  /** Moves a prefetched `name` to `destination`; true when it was there, made for this location since the last boot. */
  async takePrefetched(name: string, destination: string): Promise<boolean> {
    if (!(await this.owned()) || !(await this.sameBoot())) return false;
    try {
      await fs.rename(this.prefetchPath(name), destination);
      return true;
    } catch {
      return false;
    }
  }
}

/** The kernel's boot id (Linux), or undefined where there is none. */
async function currentBootId(): Promise<string | undefined> {
  return (await fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => undefined))?.trim();
}
