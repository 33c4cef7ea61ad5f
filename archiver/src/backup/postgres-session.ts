/**
 * The backup's session with PostgreSQL, over the Unix socket the archiver sidecar shares with the
 * database container (peer authentication maps the sidecar's uid 999 to `postgres`). It runs the
 * non-exclusive backup API, which keeps the backup in progress for as long as this session lives:
 * a backup process that dies ends it, and nothing is left half-started in the server.
 *
 * The server may end the session first: a fast shutdown or restart (the official image's
 * entrypoint stops its temporary server so), pg_terminate_backend. pg's Client then emits 'error',
 * which without a listener is thrown into the process — the sidecar's, WAL work and all. Here it is
 * kept, and the session's next query fails with a PostgresError that says so (the backup in
 * progress ended with the session: pg_backup_stop cannot succeed, and nothing is listed).
 *
 * PostgreSQL 15+: pg_backup_start / pg_backup_stop. 13-14: pg_start_backup(label, fast, false) /
 * pg_stop_backup(false) — the same API under older names; only PostgreSQL 15 is installed where
 * this project's tests run, so the 13-14 branch is untested here.
 */
import { Client, type QueryResult } from 'pg';
import { PostgresError } from '../errors';

export interface ConnectionSettings {
  /** A socket directory (or a host name). @default PGHOST, else /var/run/postgresql (the official image's) */
  readonly host?: string;
  /** @default PGPORT, else 5432 */
  readonly port?: number;
  /** @default PGUSER, else postgres */
  readonly user?: string;
  /** @default PGDATABASE, else postgres */
  readonly database?: string;
  /** What pg_stat_activity shows. @default 'archiver backup' */
  readonly applicationName?: string;
}

export interface ServerFacts {
  readonly versionNum: number;
  readonly systemIdentifier: string;
  readonly inRecovery: boolean;
  readonly dataDirectory: string;
  readonly walSegmentSize: number;
  /** The timeline being written (primary) or replayed (standby). */
  readonly timeline: number;
  /** BLCKSZ: the size of a relation's pages. */
  readonly pageSize: number;
  /**
   * listen_addresses: '' when the server takes connections on its Unix socket only, as the
   * temporary server the official image's entrypoint runs while it initialises a new database.
   */
  readonly listenAddresses: string;
}

export interface BackupStart {
  readonly startLsn: string;
  readonly startTime: Date;
}

export interface BackupStop {
  readonly stopLsn: string;
  readonly stopTime: Date;
  readonly backupLabel: string;
  readonly tablespaceMap: string;
}

export function connectionSettingsFromEnvironment(env: NodeJS.ProcessEnv = process.env): Required<ConnectionSettings> {
  return {
    host: env.PGHOST || '/var/run/postgresql',
    port: env.PGPORT ? Number(env.PGPORT) : 5432,
    user: env.PGUSER || 'postgres',
    database: env.PGDATABASE || 'postgres',
    applicationName: 'archiver backup',
  };
}

/** Why the server ended a session, once it has (the first error pg's Client emitted). */
interface SessionEnd {
  error?: Error;
}

export class PostgresSession {
  private constructor(
    private readonly client: Client,
    public readonly facts: ServerFacts,
    private readonly end: SessionEnd,
  ) {}

  static async open(settings: ConnectionSettings = {}): Promise<PostgresSession> {
    const { applicationName, ...resolved } = { ...connectionSettingsFromEnvironment(), ...definedOnly(settings) };
    const client = new Client({ ...resolved, application_name: applicationName, connectionTimeoutMillis: 10_000 });
    // Before anything else: an 'error' without a listener would be thrown into the process.
    const end: SessionEnd = {};
    client.on('error', (error: Error) => (end.error ??= error));
    try {
      await client.connect();
    } catch (error) {
      throw new PostgresError(
        `cannot connect to PostgreSQL at ${resolved.host}:${resolved.port} as ${resolved.user} (${(error as Error).message}): ` +
          'set PGHOST to the directory of its Unix socket (and PGPORT, PGUSER) as the archiver sidecar sees them',
      );
    }
    try {
      // Survive a long backup: no statement or idle timeouts that the server's defaults may set.
      await client.query("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0");
      const row = (
        await client.query(
          `SELECT current_setting('server_version_num')::int AS version,
                  (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
                  pg_is_in_recovery() AS in_recovery,
                  current_setting('data_directory') AS data_directory,
                  current_setting('wal_segment_size') AS wal_segment_size,
                  current_setting('block_size')::int AS block_size,
                  current_setting('listen_addresses') AS listen_addresses,
                  CASE WHEN pg_is_in_recovery()
                       THEN (SELECT COALESCE(min_recovery_end_timeline, timeline_id) FROM pg_control_recovery(), pg_control_checkpoint())
                       -- The timeline WAL is written on now: right after a promotion the last
                       -- checkpoint may still name the old one.
                       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int END AS timeline`,
        )
      ).rows[0];
      const facts: ServerFacts = {
        versionNum: row.version,
        systemIdentifier: row.system_identifier,
        inRecovery: row.in_recovery,
        dataDirectory: row.data_directory,
        walSegmentSize: parseSize(row.wal_segment_size),
        timeline: Number(row.timeline),
        pageSize: Number(row.block_size),
        listenAddresses: row.listen_addresses,
      };
      if (facts.versionNum < 130000) throw new PostgresError(`PostgreSQL ${facts.versionNum} is not supported by backup-push: it needs 13 or later`);
      return new PostgresSession(client, facts, end);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  /** Starts a non-exclusive backup; `fast` asks for an immediate checkpoint. */
  async startBackup(label: string, fast: boolean): Promise<BackupStart> {
    const sql = this.facts.versionNum >= 150000 ? 'SELECT pg_backup_start($1, $2)::text AS lsn, now() AS time' : 'SELECT pg_start_backup($1, $2, false)::text AS lsn, now() AS time';
    const row = (await this.query(sql, [label, fast])).rows[0];
    return { startLsn: row.lsn, startTime: row.time };
  }

  /** Ends the backup without waiting for the archive (the caller checks the archive itself). */
  async stopBackup(): Promise<BackupStop> {
    const sql =
      this.facts.versionNum >= 150000
        ? 'SELECT lsn::text AS lsn, labelfile, spcmapfile, now() AS time FROM pg_backup_stop(false)'
        : 'SELECT lsn::text AS lsn, labelfile, spcmapfile, now() AS time FROM pg_stop_backup(false)';
    const row = (await this.query(sql)).rows[0];
    return { stopLsn: row.lsn, stopTime: row.time, backupLabel: row.labelfile ?? '', tablespaceMap: row.spcmapfile ?? '' };
  }

  /**
   * What a member of a replicated database needs to know to decide who takes the backups
   * (backup-duty.ts): in recovery, whether its WAL receiver streams; otherwise how many standbys
   * stream from it.
   */
  async replication(): Promise<{ streaming: boolean; streamingStandbys: number }> {
    const row = (
      await this.query(
        `SELECT COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver LIMIT 1), false) AS streaming,
                (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')::int AS standbys`,
      )
    ).rows[0];
    return { streaming: row.streaming === true, streamingStandbys: Number(row.standbys) };
  }

  /** The running transactions now (see StopSnapshot in manifest.ts). */
  async snapshot(): Promise<{ xmin: string; xmax: string; xip: string[] }> {
    const row = (
      await this.query(
        `SELECT pg_snapshot_xmin(s)::text AS xmin, pg_snapshot_xmax(s)::text AS xmax,
                ARRAY(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip
           FROM pg_current_snapshot() AS s`,
      )
    ).rows[0];
    return { xmin: row.xmin, xmax: row.xmax, xip: row.xip };
  }

  /** One statement; its rows. */
  async rows<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    return (await this.query(sql)).rows as T[];
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  /** A query; one that fails because the server ended the session says so (see the module's comment). */
  private async query(text: string, values?: unknown[]): Promise<QueryResult> {
    try {
      return await this.client.query(text, values);
    } catch (error) {
      const ended = this.end.error ?? (endsSession(error) ? (error as Error) : undefined);
      if (ended === undefined) throw error;
      throw new PostgresError(`PostgreSQL ended the session (${ended.message}): the server stopped or restarted, or the session was terminated; a backup in progress ended with it`);
    }
  }
}

/** SQLSTATE class 57, operator intervention: admin_shutdown (57P01), crash_shutdown (57P02), ... */
function endsSession(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('57P');
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** `16MB` (SHOW's form) in bytes. */
function parseSize(text: string): number {
  const match = /^(\d+)\s*(B|kB|MB|GB)?$/.exec(text.trim());
  if (!match) throw new PostgresError(`unexpected wal_segment_size ${JSON.stringify(text)}`);
  const unit = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[match[2] ?? 'B']!;
  return Number(match[1]) * unit;
}
