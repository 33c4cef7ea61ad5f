/**
 * `archiver install <directory>`: what the init container runs. Copies the archiver (launcher,
 * Node runtime, bundle and native modules) from its image into the volume it shares with the
 * PostgreSQL container.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../errors';

export async function run(args: readonly string[]): Promise<void> {
  if (args.length !== 1 || !path.isAbsolute(args[0])) throw new UsageError('install takes one argument, the absolute directory to install into, e.g. install /opt/archiver');
  // This bundle lives in <home>/lib; the installation is <home>.
  const home = path.resolve(__dirname, '..');
  const target = args[0];
  fs.mkdirSync(target, { recursive: true });
  fs.cpSync(home, target, { recursive: true, dereference: true, force: true });
  process.stderr.write(`archiver: installed ${home} into ${target}\n`);
}
