/**
 * How the standbys (pods 1..N-1) get their first copy of the database.
 */

/** Where a standby with an empty volume gets its copy of the database. */
export enum CloneSource {
  /**
   * `pg_basebackup` from pod 0: every data file is read on the primary and sent over the network
   * while it serves its clients.
   */
  PRIMARY = 'primary',
  /**
   * The newest base backup of the database's own archive (`archiver backup-fetch LATEST`); the
   * standby then replays the archived WAL and streams the rest from pod 0: a new standby costs
   * the primary nothing but the WAL not archived yet. When the archive holds no backup yet, cannot
   * be read, or holds a backup that cannot follow pod 0, the standby clones pod 0 instead
   * (CloudNativePG's `bootstrap.recovery` for replicas, KubeDB's standby from the archive).
   */
  ARCHIVE = 'archive',
}

export const CLONE_SOURCES: readonly string[] = Object.values(CloneSource);

export interface StandbyProps {
  /**
   * Where a standby with an empty volume (a new member, or a lost volume) gets its copy.
   * @default CloneSource.PRIMARY
   */
  readonly cloneFrom?: CloneSource;
}
