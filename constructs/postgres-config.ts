/**
 * The files PostgreSQL is started with, rendered as text so that a reviewer reads exactly what will
 * run: `postgresql.conf`, `pg_hba.conf` and the start-up script (start-script.ts), in one
 * ConfigMap. The files are rendered when the app is synthesized, so that settings added after
 * construction (`addSetting`) reach them and the pods' checksum, which covers only what needs a
 * restart (`restartInput`); the sidecar reloads the server for the rest.
 */
import { createHash } from 'node:crypto';
import { Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { renderArchiveCommand, renderRestoreCommand } from '../contract';
import { REPLICATION_PASSFILE } from '../contract';
import { CONFIG_DIR, POSTGRES_PORT, REPLICATION_USER, SOCKET_DIR, SUPERUSER } from './pod-layout';
import { renderProbeScript } from './probe-script';
import { needsRestart } from './restart-settings';
import { renderTlsSettings } from './postgres-tls';
import type { CloneSource } from './standbys';
import { renderStartScript } from './start-script';
import { MEMORY_SETTINGS, MemorySettings } from './memory-settings';
import { show } from './validation';
import { WalSizes } from './wal-size';

/** The most members (pod 0 and its standbys) a database may have. */
export const MAX_REPLICAS = 32;

/**
 * max_wal_senders, sized for the most members (MAX_REPLICAS), not for `replicas`: every standby
 * streams from pod 0 and may hold two senders at once (pg_basebackup --wal-method=stream uses two
 * while it clones; a restarted standby's previous sender lingers until wal_sender_timeout), plus
 * two for a pg_basebackup run by hand. It does not follow `replicas` because a standby refuses to
 * start with a lower max_wal_senders than its primary's ("recovery aborted because of insufficient
 * parameter settings") and a rolling update restarts the standbys first: scaling down would stop
 * the rollout at its first pod; scaling up would restart the primary. Each sender slot costs a
 * few kB of shared memory (64 instead of 10: 3 MB more on PostgreSQL 15).
 */
export const MAX_WAL_SENDERS = 2 * (MAX_REPLICAS - 1) + 2;

/** A postgresql.conf value: strings are quoted, numbers written as they are, booleans as on/off. */
export type PostgresqlSettingValue = string | number | boolean;

export interface PostgresqlConfOptions {
  /** `namespace/name`, written into the file header. */
  readonly id: string;
  /** Host name of pod 0 through the governing Service, e.g. `wal-postgres-0.wal-postgres-pods`. */
  readonly primaryHost: string;
  /** archive_timeout in seconds. */
  readonly archiveTimeoutSeconds: number;
  /** Where the archiver is installed in the container. */
  readonly archiverInstallDir: string;
  /** max_wal_size, min_wal_size and wal_keep_size, sized from the data volume (`walSizesFor`). */
  readonly walSizes: WalSizes;
  /** shared_buffers, effective_cache_size and maintenance_work_mem, sized from the container's memory. */
  readonly memory: MemorySettings;
  /**
   * Whether the server takes TLS connections with the mounted Secret's certificate (`tls`).
   * @default false
   */
  readonly tls?: boolean;
  /**
   * Further settings, written after the managed ones in this order.
   * @default - none
   */
  readonly settings?: ReadonlyMap<string, PostgresqlSettingValue>;
}

export interface PostgresConfigProps {
  /** The ConfigMap's name. */
  readonly configMapName: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  /** `namespace/name` of the database, written into each file's header. */
  readonly id: string;
  /** Host name of pod 0 through the governing Service. */
  readonly primaryHost: string;
  /** archive_timeout in seconds. */
  readonly archiveTimeoutSeconds: number;
  /** Where the archiver is installed in the PostgreSQL container. */
  readonly archiverInstallDir: string;
  /** PostgreSQL major version. */
  readonly version: number;
  /** Where a standby with an empty volume gets its copy. */
  readonly cloneFrom: CloneSource;
  /** max_wal_size, min_wal_size and wal_keep_size, sized from the data volume (`walSizesFor`). */
  readonly walSizes: WalSizes;
  /** shared_buffers, effective_cache_size and maintenance_work_mem, sized from the container's memory (`memorySettingsFor`). */
  readonly memory: MemorySettings;
  /**
   * Whether the superuser may log in over the network (with its password); otherwise only inside
   * the pod (peer authentication over the Unix socket).
   * @default false
   */
  readonly superuserNetworkLogin?: boolean;
  /**
   * Whether every network connection is TLS (`tls`): ssl = on, `hostssl` lines, and the
   * standbys connect with TLS.
   * @default false
   */
  readonly tls?: boolean;
  /**
   * The storage credential variables start.sh unsets before it starts PostgreSQL: those of the
   * archive's backend (contract's STORAGE_CREDENTIAL_ENV_OF).
   * @default STORAGE_CREDENTIAL_ENV - all of them
   */
  readonly storageCredentialVariables?: readonly string[];
}

/** Quotes a value for postgresql.conf. */
export function confString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function renderSettingValue(value: PostgresqlSettingValue): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (typeof value === 'number') return String(value);
  return confString(value);
}

/** The settings sized from the data volume. */
const WAL_SIZE_SETTINGS = ['max_wal_size', 'min_wal_size', 'wal_keep_size'];

const PARAMETER_NAME = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

/**
 * The configuration of one database: its files, and the ConfigMap (construct id `Config`) they
 * are mounted from.
 */
export class PostgresConfig {
  /** The parameters the construct writes itself; `addSetting` may not replace them. */
  public readonly managedSettings: readonly string[];
  public readonly configMap: k8s.KubeConfigMap;
  private readonly props: PostgresConfigProps;
  private readonly settings = new Map<string, PostgresqlSettingValue>();

  constructor(scope: Construct, props: PostgresConfigProps) {
    this.props = props;
    // The memory settings are starting points the user may replace; the others are not.
    this.managedSettings = [...this.renderPostgresqlConf().matchAll(/^([a-z_]+) = /gm)].map((m) => m[1]).filter((name) => !MEMORY_SETTINGS.includes(name));
    this.configMap = new k8s.KubeConfigMap(scope, 'Config', {
      metadata: { name: props.configMapName, namespace: props.namespace, labels: props.labels },
      data: Lazy.any({ produce: () => this.files }),
    });
  }

  /** The ConfigMap's name. */
  public get configMapName(): string {
    return this.props.configMapName;
  }

  /**
   * Adds a parameter to postgresql.conf, e.g. a recovery target: `addSetting('recovery_target_time',
   * '2026-01-01 00:00:00+00')`. A later call for the same name replaces the value in its place. Parameters the
   * construct manages (`managedSettings`) and malformed names or values are reported when the app
   * is validated.
   */
  public addSetting(name: string, value: PostgresqlSettingValue): void {
    this.settings.set(name, value);
  }

  /** The files of the ConfigMap, in this order: postgresql.conf, pg_hba.conf, start.sh, probe.sh. */
  public get files(): Record<string, string> {
    const { id, primaryHost, version, cloneFrom } = this.props;
    return {
      'postgresql.conf': this.renderPostgresqlConf(this.settings),
      'pg_hba.conf': renderPgHbaConf(id, { superuserNetworkLogin: this.props.superuserNetworkLogin, tls: this.props.tls }),
      'start.sh': renderStartScript({ id, primaryHost, version, cloneFrom, tls: this.props.tls, storageCredentialVariables: this.props.storageCredentialVariables }),
      'probe.sh': renderProbeScript({ id, primaryHost, tls: this.props.tls }),
    };
  }

  /**
   * What rolls the pods when it changes: the postgresql.conf parameters that take effect only at a
   * restart (restart-settings.ts: context `postmaster`, and any parameter the table does not
   * know), as `name: value` in their rendered text, the last line of each name, ordered by name;
   * and start.sh, which runs only when the container starts. Nothing else: comments, reloadable
   * parameters, pg_hba.conf and probe.sh (read at every probe) are applied in place by the
   * sidecar's reload (archiver/src/daemon/config-reload.ts).
   */
  public get restartInput(): { readonly settings: Record<string, string>; readonly startScript: string } {
    const files = this.files;
    const restart = [...postgresqlConfSettings(files['postgresql.conf'])].filter(([name]) => needsRestart(name, this.props.version));
    return {
      settings: Object.fromEntries(restart.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      startScript: files['start.sh'],
    };
  }

  /** The SHA-256 of `restartInput`: the pods roll when, and only when, it changes. */
  public get checksum(): string {
    return createHash('sha256').update(JSON.stringify(this.restartInput)).digest('hex');
  }

  /** Every problem of the added settings, as `field: message`. */
  public validate(): string[] {
    const errors: string[] = [];
    for (const [name, value] of this.settings) {
      const field = `config.addSetting(${show(name)})`;
      if (!PARAMETER_NAME.test(name)) {
        errors.push(`${field}: ${show(name)} is not a parameter name: use lowercase letters, digits and '_' (a custom parameter has one '.'), e.g. "recovery_target_time"`);
      } else if (this.managedSettings.includes(name)) {
        const hint = name === 'archive_timeout' ? 'set archiver.archiveTimeout instead'
          : WAL_SIZE_SETTINGS.includes(name) ? 'it is sized from storage.size so that the WAL fits on the volume: give a larger volume'
            : 'it is part of the replication and archiving set-up';
        errors.push(`${field}: ${show(name)} is written by ArchivedPostgres itself (${hint}) and cannot be replaced`);
      }
      if (typeof value === 'number' && !Number.isFinite(value)) {
        errors.push(`${field}: ${show(value)} is not a finite number`);
      } else if (typeof value === 'string' && /[\u0000-\u001f]/.test(value)) {
        errors.push(`${field}: the value contains a line break or control character, which postgresql.conf cannot hold`);
      }
    }
    return errors;
  }

  private renderPostgresqlConf(settings?: ReadonlyMap<string, PostgresqlSettingValue>): string {
    const { id, primaryHost, archiveTimeoutSeconds, archiverInstallDir, walSizes, memory } = this.props;
    return renderPostgresqlConf({ id, primaryHost, archiveTimeoutSeconds, archiverInstallDir, walSizes, memory, settings, tls: this.props.tls });
  }
}

/**
 * The parameters a rendered postgresql.conf sets, `name = value` lines, each with its last value
 * (as PostgreSQL reads the file): the value as written, quotes included.
 */
export function postgresqlConfSettings(conf: string): Map<string, string> {
  const settings = new Map<string, string>();
  for (const match of conf.matchAll(/^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?) = (.*)$/gm)) settings.set(match[1], match[2]);
  return settings;
}

/** postgresql.conf: the settings the construct manages, then those added with `PostgresConfig.addSetting()`. */
export function renderPostgresqlConf(options: PostgresqlConfOptions): string {
  const added = [...(options.settings ?? new Map<string, PostgresqlSettingValue>())];
  const extra = added.length === 0 ? '' : `
# Added with PostgresConfig.addSetting(); each is the last word on its parameter.
${added.map(([name, value]) => `${name} = ${renderSettingValue(value)}`).join('\n')}
`;
  return `# postgresql.conf of ${options.id}, rendered by the ArchivedPostgres construct.
# A change to a parameter that needs a restart (context postmaster: listen_addresses, port,
# wal_level, max_wal_senders, hot_standby, wal_log_hints, archive_mode, shared_buffers, any unknown
# one...) changes the pod template's config checksum and rolls the pods. Any other change is
# applied in place: the archiver sidecar sees the updated ConfigMap and reloads the server.

listen_addresses = '*'
port = ${POSTGRES_PORT}
unix_socket_directories = ${confString(SOCKET_DIR)}
hba_file = ${confString(`${CONFIG_DIR}/pg_hba.conf`)}
password_encryption = 'scram-sha-256'

# Memory, sized from the container's memory limit (memory-settings.ts); config.addSetting() may
# replace each of them.
shared_buffers = '${options.memory.sharedBuffersMb}MB'
effective_cache_size = '${options.memory.effectiveCacheSizeMb}MB'
maintenance_work_mem = '${options.memory.maintenanceWorkMemMb}MB'

${options.tls ? renderTlsSettings() : ''}
# Replication: pod 0 is the primary, pods 1..N-1 stream from it as hot standbys.
wal_level = replica
# Enough for every standby of the most members supported (${MAX_REPLICAS}), two senders each (a clone
# with --wal-method=stream, a reconnect), and a pg_basebackup by hand; never lowered (a standby
# refuses to start with fewer than its primary). Each clone also holds a temporary replication
# slot (max_replication_slots, 10 by default: clones run one at a time).
max_wal_senders = ${MAX_WAL_SENDERS}
hot_standby = on
# Used by standbys only (a standby.signal file is present), as the replication role, never the
# superuser. The password is read from the passfile, which the archiver sidecar keeps equal to the
# replication Secret, at every connection: after a rotation the next reconnect uses the new one.
primary_conninfo = ${confString(`host=${options.primaryHost} port=${POSTGRES_PORT} user=${REPLICATION_USER} passfile=${REPLICATION_PASSFILE}`)}
# WAL sized from the data volume (README: "The data volume and its WAL"): at most 3/8 of it.
# A standby that falls further behind than wal_keep_size catches up from the archive (restore_command).
wal_keep_size = '${options.walSizes.walKeepSizeMb}MB'
max_wal_size = '${options.walSizes.maxWalSizeMb}MB'
min_wal_size = '${options.walSizes.minWalSizeMb}MB'
# pg_rewind needs it: a standby left behind on an old timeline (pod 0 restored from the archive)
# is rewound to pod 0's history instead of cloned again (start.sh).
wal_log_hints = on

# Continuous archiving. archive_mode = on archives on the primary only; standbys do not push.
archive_mode = on
archive_command = ${confString(renderArchiveCommand(options.archiverInstallDir))}
# Switch to a new segment after this many seconds even when it is not full, so that at most this
# much committed work is missing from the archive.
archive_timeout = ${options.archiveTimeoutSeconds}
# Standbys, and recovery from the archive, fetch segments that streaming cannot provide.
restore_command = ${confString(renderRestoreCommand(options.archiverInstallDir))}
${extra}`;
}

export interface PgHbaOptions {
  /**
   * Whether the superuser may log in over the network with its password.
   * @default false - inside the pod only (peer authentication over the Unix socket)
   */
  readonly superuserNetworkLogin?: boolean;
  /**
   * Whether network connections must use TLS: `hostssl` instead of `host`, so that a connection
   * without it matches no line and is refused.
   * @default false
   */
  readonly tls?: boolean;
}

/**
 * pg_hba.conf: peer authentication inside the container; over the network SCRAM, for the
 * replication role only to what the standbys need (replication connections, and the database
 * `postgres` for start.sh's queries and pg_rewind), and never for the superuser by default. The
 * first line that matches decides, so the refusals come before `host all all`.
 */
export function renderPgHbaConf(id: string, options: PgHbaOptions = {}): string {
  // The accepting network lines; the refusals hold with or without TLS.
  const net = options.tls ? 'hostssl' : 'host   ';
  const superuser = options.superuserNetworkLogin
    ? `# The superuser may log in over the network with its password (superuserNetworkLogin: true).
${net} all          ${SUPERUSER}     all      scram-sha-256
host    replication  ${SUPERUSER}     all      reject`
    : `# The superuser logs in inside the pod only (kubectl exec psql, the sidecar): never over the network.
host    all          ${SUPERUSER}     all      reject
host    replication  ${SUPERUSER}     all      reject`;
  const tls = options.tls ? `# TLS (tls): every network connection accepted below is TLS (hostssl); one without TLS matches no line and is refused.
` : '';
  return `# pg_hba.conf of ${id}, rendered by the ArchivedPostgres construct.
# TYPE  DATABASE     USER         ADDRESS  METHOD
# Inside the container the OS user postgres is the database superuser (probes, kubectl exec psql).
local   all          all                   peer
# ...replication too: pg_basebackup run in the pod (kubectl exec) takes a base backup locally.
local   replication  all                   peer
${tls}${superuser}
# The standbys stream and clone as ${REPLICATION_USER}, and query and rewind from the database postgres;
# it reaches no other database.
${net} replication  ${REPLICATION_USER}  all      scram-sha-256
${net} postgres     ${REPLICATION_USER}  all      scram-sha-256
host    all          ${REPLICATION_USER}  all      reject
# The applications' roles over the network, with SCRAM.
${net} all          all          all      scram-sha-256
`;
}
