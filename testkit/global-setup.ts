/**
 * Once per test run: builds the archiver (the tests run the same files the image ships), and gives
 * the run a temporary directory of its own. Every test file inherits it as TMPDIR, so whatever a
 * file leaves behind — also a file that failed before its own clean-up hooks ran — is removed with
 * it when the run ends.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildArchiver } from '../archiver/scripts/build';

export default async function setup(): Promise<() => void> {
  const runDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-wal-tests-'));
  // Like /tmp itself: test clusters run as the postgres user and make their directories here.
  fs.chmodSync(runDirectory, 0o1777);
  process.env.TMPDIR = runDirectory;
  await buildArchiver();
  return () => {
    // tsx (run by the synthesis tests) keeps its compile cache in the temp dir: not a leftover.
    const left = fs.readdirSync(runDirectory).filter((name) => !/^(tsx|v8-compile-cache)-/.test(name));
    if (left.length > 0) console.warn(`test run: removing what tests left in ${runDirectory}: ${left.join(', ')}`);
    fs.rmSync(runDirectory, { recursive: true, force: true });
  };
}
