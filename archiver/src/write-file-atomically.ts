/**
 * A file written whole or not at all: through a temporary file in the same directory and a rename
 * (readers never see it half-written, and a failure leaves nothing behind).
 *
 * A process killed while it writes (the sidecar's container stopped, a worker's process ended
 * by the OOM killer) cannot remove its temporary file. In pg_wal nobody else would: PostgreSQL
 * recycles and removes only the names of WAL files, and a 16 MiB `RECOVERYXLOG.archiver-….tmp`
 * would stay for the life of the volume. So the first write into a directory by a process
 * removes the temporaries there that were left by processes no longer running; a temporary of a
 * process that runs (another archiver writing the same name) is left to it. (A worker thread that
 * crashes mid-write while its process lives on leaves one under a live pid: it goes at the next
 * process's first write there.)
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

const TEMPORARY = /^(.+)\.archiver-(\d+)-[0-9a-z]+\.tmp$/;

/** Writes `data` to `file` through a temporary file in the same directory and a rename. */
export async function writeFileAtomically(file: string, data: Buffer, durable: boolean): Promise<void> {
  await sweepOnce(path.dirname(file));
  const temporary = temporaryName(file, process.pid);
  const handle = await fs.open(temporary, 'w', 0o600);
  try {
    try {
      await handle.writeFile(data);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, file);
  } catch (error) {
    // Nothing half-written stays behind: not the temporary file, whatever failed.
    await fs.rm(temporary, { force: true });
    throw error;
  }
}

/** `file.archiver-<pid>-<random>.tmp`: the writer's pid in the name tells a stale one. */
export function temporaryName(file: string, pid: number): string {
  return `${file}.archiver-${pid}-${Math.random().toString(36).slice(2, 8)}.tmp`;
}

/** Directories this process has swept: once each, the first time it writes there. */
const swept = new Map<string, Promise<void>>();

function sweepOnce(directory: string): Promise<void> {
  let sweep = swept.get(directory);
  if (!sweep) {
    sweep = removeStaleTemporaries(directory).then(
      () => undefined,
      () => undefined, // a directory that cannot be listed fails the write itself, with its own error
    );
    swept.set(directory, sweep);
  }
  return sweep;
}

/** Removes the temporaries in `directory` whose writer no longer runs; the names removed. */
export async function removeStaleTemporaries(directory: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(directory)) {
    const match = TEMPORARY.exec(name);
    if (!match) continue;
    const pid = Number(match[2]);
    if (pid === process.pid || running(pid)) continue;
    await fs.rm(path.join(directory, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
