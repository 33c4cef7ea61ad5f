import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { InvalidKeyError, ObjectExistsError, ObjectNotFoundError, StorageError, StorageOperation } from '../errors';
import { fsyncDirectory } from '../fsync-directory';
import { compareKeys, forEachLimited, LocalStorageOptions, ObjectInfo, PutOptions, Storage, validateKey, validatePrefix } from './storage';

/**
 * Objects in a local directory (a mounted volume, NFS, tests): key 'a/b/c' is file 'ROOT/a/b/c'.
 *
 * Durability of a put: the data goes to a temp file in the object's directory, is fsynced, then
 * renamed to the object's name (or hard-linked for `ifAbsent`: link() never replaces), and the
 * directory is fsynced, as are the parents of directories the put created. A crash at any point
 * leaves either no object or the whole object under the key, plus at worst a stray temp file.
 *
 * Temp files are named '.tmp-<random>'; list() skips them and keys whose last segment starts with
 * '.tmp-' are refused. A put cut short by a crash (a backup killed while it uploads a part) leaves
 * its temp file, which no listing shows: `delete` removes every directory it leaves without
 * objects, with the temp files in it (see `delete`); elsewhere they stay (a put may be in flight).
 *
 * Files are created with mode 0600 and directories with 0700 (WAL holds the database's data).
 *
 * Unlike a bucket, a directory tree cannot hold both 'a' and 'a/b': the second put fails with a
 * StorageError. The archiver's key layout never does this.
 *
 * Local operations are not cancelled midway: a signal is checked before each one starts.
 * Failures are not transient (a full disk does not empty itself between attempts).
 */
export class LocalStorage implements Storage {
  public readonly location: string;
  private readonly root: string;

  constructor(options: LocalStorageOptions) {
    if (typeof options.root !== 'string' || options.root === '') {
      throw new Error(`local storage: root must be a directory path, got ${JSON.stringify(options.root)}`);
    }
    this.root = path.resolve(options.root);
    this.location = `file://${this.root}`;
  }

  async get(key: string): Promise<Buffer> {
    const file = this.pathOf(key);
    try {
      return await fsp.readFile(file);
    } catch (error) {
      throw this.mapError('get', key, error);
    }
  }

  async getStream(key: string): Promise<NodeJS.ReadableStream> {
    const file = this.pathOf(key);
    let handle: fsp.FileHandle | undefined;
    try {
      handle = await fsp.open(file, 'r');
      if (!(await handle.stat()).isFile()) {
        throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      }
    } catch (error) {
      await handle?.close().catch(() => undefined);
      throw this.mapError('getStream', key, error);
    }
    return handle.createReadStream({ autoClose: true });
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.pathOf(key);
    try {
      const stats = await fsp.stat(file);
      return stats.isFile() ? { key, size: stats.size, lastModified: stats.mtime } : undefined;
    } catch (error) {
      if (isNotFound(error)) {
        return undefined;
      }
      throw new StorageError({ operation: 'stat', location: this.location, key, cause: error, transient: false });
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    // FileHandle.writeFile writes in 512 KiB pieces. One write() of a whole ~3 MiB WAL object cost
    // 4-8 ms of kernel CPU (ext4, copying into fresh page-cache pages), the same bytes in 128 KiB
    // to 1 MiB pieces 1.3-1.9 ms (100 fsync'd files each way, 2026-12-03): ~8 ms of the background
    // archiver's ~55 ms per segment on a busy two-core machine.
    await this.writeAtomically('put', key, options, (handle) => handle.writeFile(body));
  }

  async putStream(key: string, body: NodeJS.ReadableStream, options: PutOptions = {}): Promise<void> {
    await this.writeAtomically('putStream', key, options, async (handle) => {
      for await (const chunk of body) {
        await handle.writeFile(chunk); // at the current position, in 512 KiB pieces (see put)
      }
    });
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const found: ObjectInfo[] = [];
    try {
      await this.walk(slash === -1 ? '' : prefix.slice(0, slash), prefix, found);
    } catch (error) {
      throw new StorageError({ operation: 'list', location: this.location, key: prefix, cause: error, transient: false });
    }
    return found.sort((a, b) => compareKeys(a.key, b.key));
  }

  /**
   * Unlinks the keys' files, then removes each directory this leaves without objects (no file but
   * temp files, no subdirectory), deepest first, up to the root (never the root itself), with its
   * temp files: what puts cut short there left (a backup killed mid-part), which no listing shows
   * and nothing else would ever remove. Retention empties a directory only of a backup that has
   * ended (complete, or unfinished and judged no longer running), and `wal/` only with
   * `everything`: nothing writes there any more (a put that still did would fail, and be retried).
   * That clean-up is best effort: the keys are deleted whatever it meets.
   */
  async delete(keys: readonly string[]): Promise<void> {
    const files = keys.map((key) => this.pathOf(key));
    await forEachLimited(files, 16, async (file, index) => {
      try {
        await fsp.unlink(file);
      } catch (error) {
        // A directory is not an object (EISDIR): absent, like a missing file.
        if (!isNotFound(error)) {
          throw new StorageError({ operation: 'delete', location: this.location, key: keys[index], cause: error, transient: false });
        }
      }
    });
    await this.removeEmptied(files.map((file) => path.dirname(file)));
  }

  async close(): Promise<void> {
    // No handles are kept between calls.
  }

  /** `directories` and their parents, deepest first, while each holds nothing but temp files (see `delete`). */
  private async removeEmptied(directories: readonly string[]): Promise<void> {
    const pending = new Set(directories.filter((directory) => directory.startsWith(`${this.root}${path.sep}`)));
    while (pending.size > 0) {
      const deepest = [...pending].reduce((a, b) => (b.length > a.length ? b : a));
      pending.delete(deepest);
      if (await removeIfOnlyTemp(deepest)) {
        const parent = path.dirname(deepest);
        if (parent !== this.root) pending.add(parent);
      }
    }
  }

  private pathOf(key: string): string {
    validateKey(key);
    const segments = key.split('/');
    if (segments[segments.length - 1].startsWith(TEMP_PREFIX)) {
      throw new InvalidKeyError(key, `names starting with '${TEMP_PREFIX}' are reserved for the local backend's temp files`);
    }
    return path.join(this.root, ...segments);
  }

  private mapError(operation: StorageOperation, key: string, error: unknown): Error {
    if (isNotFound(error)) {
      return new ObjectNotFoundError(key, this.location);
    }
    return new StorageError({ operation, location: this.location, key, cause: error, transient: false });
  }

  /**
   * 1. Create the object's directory (fsyncing the parents of the directories created).
   * 2. Write the data to a new temp file beside the object, fsync it, close it.
   * 3. Publish it: rename() over the key, or for ifAbsent link() (EEXIST: the object exists) and
   *    unlink the temp.
   * 4. fsync the directory so that the new name survives a crash.
   * On failure the temp file is removed; the key is untouched.
   */
  private async writeAtomically(
    operation: 'put' | 'putStream',
    key: string,
    options: PutOptions,
    write: (handle: fsp.FileHandle) => Promise<void>,
  ): Promise<void> {
    const file = this.pathOf(key);
    const directory = path.dirname(file);
    const temp = path.join(directory, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    let tempExists = false;
    try {
      await makeDirectory(directory);
      const handle = await fsp.open(temp, 'wx', 0o600);
      tempExists = true;
      try {
        await write(handle);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (options.ifAbsent === true) {
        try {
          await fsp.link(temp, file);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new ObjectExistsError(key, this.location);
          }
          throw error;
        }
        await fsp.unlink(temp);
      } else {
        await fsp.rename(temp, file);
      }
      tempExists = false;
      await fsyncDirectory(directory);
    } catch (error) {
      if (tempExists) {
        await fsp.rm(temp, { force: true }).catch(() => undefined);
      }
      if (error instanceof ObjectExistsError) {
        throw error;
      }
      throw new StorageError({ operation, location: this.location, key, cause: error, transient: false });
    }
  }

  /** Adds to `found` the files under directory `directoryKey` whose keys start with `prefix`. */
  private async walk(directoryKey: string, prefix: string, found: ObjectInfo[]): Promise<void> {
    const directory = directoryKey === '' ? this.root : path.join(this.root, ...directoryKey.split('/'));
    let entries;
    try {
      entries = await fsp.readdir(directory, { withFileTypes: true });
    } catch (error) {
      if (isNotFound(error)) {
        return;
      }
      throw error;
    }
    const files: string[] = [];
    for (const entry of entries) {
      const key = directoryKey === '' ? entry.name : `${directoryKey}/${entry.name}`;
      if (entry.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) {
          await this.walk(key, prefix, found);
        }
      } else if (entry.isFile() && !entry.name.startsWith(TEMP_PREFIX) && key.startsWith(prefix)) {
        files.push(key);
      }
    }
    await forEachLimited(files, 64, async (key) => {
      try {
        const stats = await fsp.stat(path.join(directory, key.slice(key.lastIndexOf('/') + 1)));
        found.push({ key, size: stats.size, lastModified: stats.mtime });
      } catch (error) {
        // Deleted in the meantime: not listed.
        if (!isNotFound(error)) {
          throw error;
        }
      }
    });
  }
}

/** Prefix of temp file names; list() skips such files. */
const TEMP_PREFIX = '.tmp-';

function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/**
 * Removes `directory` with its temp files when it holds nothing else; whether it is gone (absent
 * already counts). It stops reading at the first other entry (`wal/` may hold many thousands). An
 * error leaves it in place, the keys deleted all the same.
 */
async function removeIfOnlyTemp(directory: string): Promise<boolean> {
  try {
    const temps: string[] = [];
    for await (const entry of await fsp.opendir(directory)) {
      if (!entry.isFile() || !entry.name.startsWith(TEMP_PREFIX)) return false;
      temps.push(entry.name);
    }
    for (const name of temps) await fsp.rm(path.join(directory, name), { force: true });
    await fsp.rmdir(directory);
    return true;
  } catch (error) {
    return isNotFound(error);
  }
}

/** mkdir -p, then fsync the parent of every directory it created, deepest first. */
async function makeDirectory(directory: string): Promise<void> {
  const firstCreated = await fsp.mkdir(directory, { recursive: true, mode: 0o700 });
  if (firstCreated === undefined) {
    return;
  }
  for (let created = directory; ; created = path.dirname(created)) {
    await fsyncDirectory(path.dirname(created));
    if (created === firstCreated || path.dirname(created) === created) {
      return;
    }
  }
}

