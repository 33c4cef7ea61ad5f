/**
 * A test file's scratch directory, and the archiver's environment for a database's calls in it:
 * the boilerplate every test against real PostgreSQL starts with.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { giveToPostgres } from './postgres';

export interface TestScratch {
  /** Under the run's TMPDIR, traversable by postgres; removed after the file's tests. */
  readonly dir: string;
  /** A new directory in it that postgres owns (for data directories, spools, restores). */
  postgresDirectory(): string;
}

export function testScratch(prefix: string): TestScratch {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    postgresDirectory() {
      const directory = fs.mkdtempSync(path.join(dir, 'dir-'));
      giveToPostgres(directory);
      return directory;
    },
  };
}

/**
 * The environment of a database's archiver calls: the backend's location, and the spool and
 * background archiver's log in `base` (a postgres-owned directory); the background archiver a
 * call starts exits after 30 idle seconds.
 */
export function archivingEnv(backendEnv: Record<string, string>, base: string): Record<string, string> {
  return { ...backendEnv, ARCHIVER_DAEMON_IDLE_SECONDS: '30', ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_LOG: path.join(base, 'daemon.log') };
}
