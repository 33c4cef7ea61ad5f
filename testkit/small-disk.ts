/**
 * A small disk for full-disk specs: a tmpfs of a few MiB mounted at a directory (we are root),
 * unmounted again (lazily when still busy) by `unmount()`, which the test's afterAll calls before
 * the scratch directory that holds the mount point is removed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export class SmallDisk {
  private mounted = false;

  constructor(public readonly path: string) {}

  /** Creates the mount point and mounts a tmpfs of `mib` MiB, writable by everyone. */
  mount(mib: number): void {
    fs.mkdirSync(this.path, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0777`, 'tmpfs', this.path]);
    this.mounted = true;
  }

  unmount(): void {
    if (!this.mounted) return;
    try {
      execFileSync('umount', [this.path]);
    } catch {
      execFileSync('umount', ['-l', this.path]);
    }
    this.mounted = false;
  }
}
