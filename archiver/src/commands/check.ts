/**
 * `archiver check`: reads the configuration and prints it (credentials masked) as JSON; with
 * `--storage`, also lists the archive to prove the storage answers.
 */
import { describeConfig, readConfig } from '../config';

export async function check(args: readonly string[]): Promise<void> {
  const config = readConfig();
  const out: Record<string, unknown> = { config: describeConfig(config) };
  if (args.includes('--storage')) {
    const { openArchive } = await import('../daemon');
    const archive = await openArchive(config);
    try {
      out.identity = (await archive.readIdentity()) ?? null;
      out.location = archive.location;
    } finally {
      await archive.close();
    }
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
