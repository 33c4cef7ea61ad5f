/**
 * The spool: a directory beside pg_wal (same filesystem) where the background archiver leaves
 * work already done, for the launcher (archiver/bin/archiver) to pick up without starting Node.
 * Its layout and line formats are part of the contract (contract/spool.ts); this module is the
 * archiver's side of it.
 *
 * Markers and prefetched files are trusted only when `.owner` names the caller's location: a
 * writer first `claim()`s the spool (emptying it if it belonged to another location), and the
 * launcher compares `.owner` before it takes anything. A marker also names the pg_wal file it was
 * made from, and is taken only for that file. The background archiver empties the spool when it
 * starts.
 *
 * Prefetched files are not fsync'd (16 MiB each, competing with replay for the disk): they are
 * trusted only while `.boot` holds the running kernel's boot id. A file written and renamed
 * before a crash of the machine may be torn; after the reboot the boot id differs and nothing in
 * prefetch/ is taken. (Short of a crash, the page cache makes a renamed file whole.)
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ARCHIVER_ENV, SPOOL_LAYOUT, pushedMarker } from '../../contract';
import { writeFileAtomically } from './write-file-atomically';
import { ConfigError } from './errors';

export class Spool {
  public readonly pushedDir: string;
  public readonly prefetchDir: string;
  /** Where the background archiver writes its address (contract: daemon.port). */
  public readonly portFile: string;

  private readonly ownerFile: string;
  private readonly bootFile: string;

  /** `owner`: the caller's archive location (contract `spoolOwner`). */
  constructor(
    public readonly dir: string,
    private readonly owner: string,
  ) {
    this.pushedDir = path.join(dir, SPOOL_LAYOUT.pushed);
    this.prefetchDir = path.join(dir, SPOOL_LAYOUT.prefetch);
    this.portFile = path.join(dir, SPOOL_LAYOUT.port);
    this.ownerFile = path.join(dir, SPOOL_LAYOUT.owner);
    this.bootFile = path.join(dir, SPOOL_LAYOUT.boot);
  }

  /** Creates the spool's directories (mode 0700); fails naming the spool and ARCHIVER_SPOOL. */
  async ensure(): Promise<void> {
    try {
      await fs.mkdir(this.pushedDir, { recursive: true, mode: 0o700 });
      await fs.mkdir(this.prefetchDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new ConfigError(
        ARCHIVER_ENV.spool,
        `cannot create the spool ${this.dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): set ${ARCHIVER_ENV.spool} to a writable directory on the filesystem of pg_wal`,
      );
    }
  }

  /** Records the running kernel's boot id: prefetched files count until the next boot. */
  async recordBoot(): Promise<void> {
    const boot = await currentBootId();
    if (boot !== undefined) await fs.writeFile(this.bootFile, `${boot}\n`);
  }

  /** Whether prefetched files were written since the last boot. */
  async sameBoot(): Promise<boolean> {
    const [recorded, boot] = await Promise.all([fs.readFile(this.bootFile, 'utf8').catch(() => undefined), currentBootId()]);
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

  /** Forgets all markers and prefetched files. */
  async clear(): Promise<void> {
    for (const dir of [this.pushedDir, this.prefetchDir]) {
      for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
        await fs.rm(path.join(dir, entry), { force: true });
      }
    }
  }

  /**
   * Records that the WAL file at `file` (absolute) is archived. False (and nothing recorded) when
   * the spool now belongs to another location: the caller's configuration is no longer the one
   * in use.
   */
  async markPushed(file: string): Promise<boolean> {
    const marker = path.join(this.pushedDir, path.basename(file));
    // Renamed into place: the launcher reads the marker without a lock, and a half-written one
    // would send its call the slow way.
    await writeFileAtomically(marker, Buffer.from(`${pushedMarker(this.owner, file)}\n`), false);
    if (await this.owned()) return true;
    await fs.rm(marker, { force: true });
    return false;
  }

  /** Consumes the marker of the WAL file at `file` (absolute); true when there was one, made for this location and this file. */
  async takePushed(file: string): Promise<boolean> {
    const marker = path.join(this.pushedDir, path.basename(file));
    const line = await fs.readFile(marker, 'utf8').catch(() => undefined);
    if (line !== `${pushedMarker(this.owner, file)}\n`) return false;
    try {
      await fs.unlink(marker);
      return true;
    } catch {
      return false;
    }
  }

  /** The names of the markers; not a marker being written (writeFileAtomically's `.tmp`), which a cleanup would remove under its writer. */
  async pushedNames(): Promise<string[]> {
    return (await fs.readdir(this.pushedDir).catch(() => [] as string[])).filter((name) => !name.endsWith('.tmp'));
  }

  async removePushed(name: string): Promise<void> {
    await fs.rm(path.join(this.pushedDir, name), { force: true });
  }

  /** Places a prefetched `name` (written by `write` to the path it is given) on the same terms as `markPushed`. */
  async offerPrefetched(name: string, write: (file: string) => Promise<void>): Promise<boolean> {
    const file = this.prefetchPath(name);
    await write(file);
    if (await this.owned()) return true;
    await fs.rm(file, { force: true });
    return false;
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
