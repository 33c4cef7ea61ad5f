/**
 * buildah and podman for the image tests (no Docker engine here; ../shared/containers/README.md
 * says how they are set up): the machine's shared storage, or a storage root of a test's own that
 * it removes afterwards, so that its images (and stand-in base images) never meet anyone else's.
 */
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './archiver';

/** The environment buildah and podman need here: runc, and ulimits this machine allows. */
export const CONTAINERS_ENV: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: path.resolve(ROOT, '../shared/containers/containers.conf') };

/** Where buildah and podman keep images and containers; the default is the machine's shared storage. */
export class ContainerStorage {
  /**
   * A storage root of its own, in a new directory of /tmp (podman refuses a runroot path over 50
   * characters); `remove()` deletes it with everything in it.
   */
  public static own(): ContainerStorage {
    return ContainerStorage.reopen(fs.mkdtempSync('/tmp/containers-'));
  }

  /** An own storage root made earlier by `own()` (its `dir`), e.g. of a process that died before removing it. */
  public static reopen(dir: string): ContainerStorage {
    const flags = ['--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'overlay'];
    return new ContainerStorage(flags, flags, dir);
  }

  /**
   * The machine's shared storage. buildah is told the overlay driver (vfs copies every layer);
   * podman is told nothing, since its database there recorded the default and refuses another.
   */
  public static readonly SHARED = new ContainerStorage(['--storage-driver', 'overlay'], []);

  private constructor(
    private readonly buildahFlags: readonly string[],
    /** The flags that select this storage, for podman commands run other than through `podman()` (e.g. spawned). */
    public readonly podmanFlags: readonly string[],
    /** An own storage root's directory (its `root` and `run` inside). */
    public readonly dir?: string,
  ) {}

  /** `BUILDAH` for scripts that take the command line to run buildah with (testkit/node-image-standin.sh). */
  public get buildahCommand(): string {
    return ['buildah', ...this.buildahFlags].join(' ');
  }

  public buildah(args: readonly string[], timeout = 170_000): SpawnSyncReturns<string> {
    return spawnSync('buildah', [...this.buildahFlags, ...args], { env: CONTAINERS_ENV, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  }

  public podman(args: readonly string[], timeout = 120_000): SpawnSyncReturns<string> {
    return spawnSync('podman', [...this.podmanFlags, ...args], { env: CONTAINERS_ENV, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  }

  /** `podman run --rm` without network, never pulling: ARGS are run's options, the image and its arguments. */
  public run(args: readonly string[]): SpawnSyncReturns<string> {
    return this.podman(['run', '--rm', '--network', 'none', '--pull=never', ...args]);
  }

  /** Deletes an own storage root: its containers, images and layers' mounts first. */
  public remove(): void {
    if (!this.dir) throw new Error('the shared container storage is not removed by a test');
    // Not `podman system reset`: that also deletes the machine's shared networks and secrets.
    this.podman(['rm', '--all', '--force']);
    this.buildah(['rm', '--all']);
    this.buildah(['rmi', '--all', '--force']);
    // A layer's mount left behind would keep the directory busy.
    const mounts = spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).stdout.split('\n').filter((m) => m.startsWith(this.dir + '/'));
    for (const mount of mounts.reverse()) spawnSync('umount', ['-l', mount]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
