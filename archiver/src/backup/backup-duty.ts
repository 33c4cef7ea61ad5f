/**
 * Which member of a database's StatefulSet takes the sidecar's base backups, and whether one is
 * due: pure decisions, specified by test/archiver/backup/backup-duty.test.ts. The scheduler
 * (backup-scheduler.ts) feeds them what the local server says about itself and what the archive
 * holds; the lease (backup-lease.ts) keeps two members from ever running at once, whatever these
 * decide.
 *
 * Each member sees only its own server: whether it is in recovery, whether its WAL receiver
 * streams (pg_stat_wal_receiver), and on the primary how many standbys stream from it
 * (pg_stat_replication; their names are not rendered into primary_conninfo, so not which ones).
 *
 * ARCHIVER_BACKUP_FROM=primary: the member whose server is not in recovery, at once.
 * ARCHIVER_BACKUP_FROM=standby: CloudNativePG's preference, kept simple:
 *   - a streaming standby takes them, waiting (ordinal − 1) × STANDBY_STEP_MS after the tick, so
 *     that the lowest ordinal goes first and a higher one only finds the tick already served;
 *   - a standby that does not stream (catching up from the archive, cut off) never does: its
 *     copy may be far behind, and it cannot tell whether another standby streams;
 *   - the primary takes them at once when no standby streams from it, and otherwise only as a
 *     fallback, PRIMARY_FALLBACK_MS after the tick, when no standby served it (their backups
 *     failed, or they cannot reach the storage).
 * Before it starts, a member checks that no backup of this database started since the tick
 * (`servedSince`) and takes the lease; so each tick gets one backup, from the first in line that
 * can take it.
 */
import type { BackupFrom } from '../../../contract';
import type { BackupManifest } from './manifest';

/** What a member knows about its own server. */
export interface MemberState {
  /** From POD_NAME, `<statefulset>-<ordinal>`. */
  readonly ordinal: number;
  /** pg_is_in_recovery(): a standby (or a server replaying the archive). */
  readonly inRecovery: boolean;
  /** In recovery: its WAL receiver streams from the primary (pg_stat_wal_receiver.status). */
  readonly streaming: boolean;
  /** Not in recovery: standbys streaming from it now (pg_stat_replication.state). */
  readonly streamingStandbys: number;
}

export interface DutyTiming {
  /** @default STANDBY_STEP_MS */
  readonly standbyStepMs?: number;
  /** @default PRIMARY_FALLBACK_MS */
  readonly primaryFallbackMs?: number;
}

export type BackupDuty =
  | {
      readonly takes: true;
      readonly role: 'primary' | 'standby';
      /** How long after the tick (or readiness) it starts, giving the members before it in line their turn. */
      readonly delayMs: number;
      readonly why: string;
    }
  | { readonly takes: false; readonly why: string };

/** ARCHIVER_BACKUP_FROM=standby: each ordinal after the first waits this much longer. */
export const STANDBY_STEP_MS = 60_000;
/** ARCHIVER_BACKUP_FROM=standby: how long the primary waits for the standbys when one streams. */
export const PRIMARY_FALLBACK_MS = 15 * 60_000;
/** Clocks of the members and the server may differ by this much: a backup started so much before a tick serves it. */
export const CLOCK_SKEW_MS = 5_000;

/** Whether this member takes backups, and after what delay. */
export function backupDuty(from: BackupFrom, member: MemberState, timing: DutyTiming = {}): BackupDuty {
  const step = timing.standbyStepMs ?? STANDBY_STEP_MS;
  const fallback = timing.primaryFallbackMs ?? PRIMARY_FALLBACK_MS;
  if (from === 'primary') {
    return member.inRecovery
      ? { takes: false, why: 'a standby, and ARCHIVER_BACKUP_FROM=primary' }
      : { takes: true, role: 'primary', delayMs: 0, why: 'the primary' };
  }
  if (member.inRecovery) {
    if (!member.streaming) return { takes: false, why: 'a standby that does not stream from the primary' };
    const rank = Math.max(0, member.ordinal - 1);
    return { takes: true, role: 'standby', delayMs: rank * step, why: rank === 0 ? 'the first streaming standby' : `a streaming standby, after ${rank} before it in line` };
  }
  if (member.streamingStandbys === 0) return { takes: true, role: 'primary', delayMs: 0, why: 'the primary, and no standby streams' };
  return { takes: true, role: 'primary', delayMs: fallback, why: `the primary, as a fallback: ${member.streamingStandbys} standby(s) stream and go first` };
}

/**
 * Why the server the sidecar reaches on its Unix socket is not yet the one to back up, or
 * undefined when it is. On an empty volume the official image's entrypoint runs initdb, then a
 * temporary server that listens on the socket only (listen_addresses = '') for its init scripts,
 * and stops it with a fast shutdown, which ends a backup of it half-way; then it starts the real
 * server, which listens on '*' (postgresql.conf, a setting ArchivedPostgres manages).
 */
export function notYetServing(server: { readonly listenAddresses: string }): string | undefined {
  if (server.listenAddresses.trim() !== '') return undefined;
  return "PostgreSQL listens on its Unix socket only (listen_addresses is empty): the temporary server the image's entrypoint runs while it initialises a new database, and stops again";
}

/** Whether the archive holds a complete backup of this database on this timeline (else one is due at readiness). */
export function hasBackupOf(backups: readonly BackupManifest[], server: { readonly systemIdentifier: string; readonly timeline: number }): boolean {
  return backups.some((backup) => backup.systemIdentifier === server.systemIdentifier && backup.timeline === server.timeline);
}

/** A complete backup of this database started at or after `since` (less `skewMs`): the tick is served. */
export function servedSince(backups: readonly BackupManifest[], since: Date, systemIdentifier: string, skewMs: number = CLOCK_SKEW_MS): BackupManifest | undefined {
  return backups.find((backup) => backup.systemIdentifier === systemIdentifier && Date.parse(backup.startTime) >= since.getTime() - skewMs);
}
