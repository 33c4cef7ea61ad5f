/**
 * `npm run rehearse [-- DATABASE_DIR]`: rehearses one database of dist/ (default
 * dist/dev/demo/wal-postgres) as containers (rehearsal.ts). Needs root, buildah and podman
 * (scripts/system-deps.sh installs them) and deb.debian.org for the postgres stand-in.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../testkit/archiver';
import { rehearse } from './rehearsal';

async function main(): Promise<number> {
  const database = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist/dev/demo/wal-postgres'));
  if (process.getuid?.() !== 0) {
    console.error('rehearse: run it as root (podman kube play with static IPs and hostPath volumes needs rootful podman)');
    return 2;
  }
  if (!fs.existsSync(database)) {
    console.error(`rehearse: ${database} does not exist: run npm run synth first, or name a database directory of dist/`);
    return 2;
  }
  // Short: podman refuses long runroot paths, and the pods' volume paths are printed.
  const directory = fs.mkdtempSync('/tmp/rehearse-');
  try {
    await rehearse({ database, dist: path.join(ROOT, 'dist'), directory, log: (line) => console.log(line) });
    return 0;
  } catch (error) {
    console.error(`rehearse: ${(error as Error).message}`);
    return 1;
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

void main().then((code) => process.exit(code));
