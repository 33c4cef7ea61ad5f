/**
 * `archiver check [--storage]`: prints the configuration (credentials masked) as JSON, and the
 * sidecar's base-backup settings (POD_NAME, ARCHIVER_BACKUP_*) when any is set; with
 * `--storage`, reads the archive's identity to prove the storage answers, and fails (not found)
 * when the location holds no archive yet.
 */
import { readBackupSettings, readConfig, describeConfig } from '../config';
import { ArchiveNotFoundError, UsageError } from '../errors';
import { Logger } from '../logger';
import { openRepository } from '../repository';
import { BUNDLED } from '../storage/open';

export async function run(args: readonly string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<void> {
  const unknown = args.filter((a) => a !== '--storage');
  if (unknown.length > 0) throw new UsageError(`check takes only --storage; got ${unknown.join(' ')}`);
  const config = readConfig();
  const report: Record<string, unknown> = { config: describeConfig(config) };
  if (Object.keys(process.env).some((name) => name.startsWith('ARCHIVER_BACKUP_'))) {
    const backups = readBackupSettings();
    // The cron grammar is checked by the scheduler's bundle, loaded only here and in the sidecar.
    if (backups.schedule !== undefined) (BUNDLED ? (require('../backup/backup-scheduler') as typeof import('../backup/backup-scheduler')) : await import('../backup/backup-scheduler')).BackupSchedule.parse(backups.schedule);
    report.backups = backups;
  }
  if (!args.includes('--storage')) return out(`${JSON.stringify(report, null, 2)}\n`);
  const archive = await openRepository(config, { log: new Logger(config.logLevel) });
  try {
    report.location = archive.location;
    const identity = await archive.readIdentity();
    report.identity = identity ?? null;
    out(`${JSON.stringify(report, null, 2)}\n`);
    if (!identity) {
      throw new ArchiveNotFoundError(
        `the storage answers, but nothing is archived at ${archive.location} yet (no archive.json): PostgreSQL's first archived WAL file creates it. If you expected an archive there, check the bucket, prefix, namespace and name.`,
      );
    }
  } finally {
    await archive.close();
  }
}
