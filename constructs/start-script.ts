/**
 * The PostgreSQL container's command, rendered as a bash script that a reviewer reads in the
 * ConfigMap: the pod's role from its ordinal, a bounded wait for the archiver sidecar, pod 0's
 * bootstrap of an empty volume, and the standbys' copy of pod 0 — cloned into an empty volume,
 * and compared with pod 0 at every start so that a standby whose data cannot follow pod 0 any
 * more (pod 0 restored from the archive onto a new timeline, or initialised anew) is rewound or
 * cloned again instead of streaming nothing.
 */
import { ARCHIVER_COMMANDS, ARCHIVER_ENV, REPLICATION_PASSFILE, SPOOL_LAYOUT, STORAGE_CREDENTIAL_ENV, archiverLauncher } from '../contract';
import { ARCHIVER_SPOOL_DIR, CONFIG_DIR, POSTGRES_PORT, REPLICATION_USER } from './pod-layout';
import { PROBE_STATE_DIR } from './probe-script';
import { renderClientTls } from './postgres-tls';
import { CloneSource } from './standbys';

export interface StartScriptOptions {
  /** `namespace/name`, written into the script's header. */
  readonly id: string;
  /** Host name of pod 0 through the governing Service, which the standbys clone and stream from. */
  readonly primaryHost: string;
  /** PostgreSQL major version: pg_rewind reads the configuration file and fetches WAL from 15 on. */
  readonly version: number;
  /** Where a standby with an empty volume gets its copy. */
  readonly cloneFrom: CloneSource;
  /**
   * Whether pod 0 takes TLS connections only (`tls`): the standbys then connect with TLS.
   * @default false
   */
  readonly tls?: boolean;
  /**
   * The storage credential variables of the postgres container (contract's
   * STORAGE_CREDENTIAL_ENV_OF its backend), which start.sh unsets before it starts PostgreSQL.
   * @default STORAGE_CREDENTIAL_ENV - all of them
   */
  readonly storageCredentialVariables?: readonly string[];
}

/**
 * The SQL a standby sends pod 0 to learn whether its data can follow pod 0: `follows`, `diverged`
 * (the same system, but pod 0's history left the standby's timeline before the standby's
 * position: pg_rewind), `other-system` (another database: clone again) or `wait` (pod 0 is still
 * in recovery). `$system`, `$tli` and `$lsn` are the standby's, read from its control file and
 * checked to be numbers before they are put in.
 *
 * pod 0's timeline history file lists, for each ancestor timeline, the LSN where pod 0's history
 * left it; a standby on such a timeline beyond that point holds WAL pod 0 never had (and PostgreSQL
 * refuses to follow: "new timeline N forked off current database system timeline M before current
 * recovery point").
 *
 * It runs as the replication role, which may not read pg_wal's files with pg_read_file: it reads
 * the history file with pg_read_binary_file, which pg_rewind needs anyway (the role's grants are
 * the least both need: archiver/src/daemon/credentials.ts).
 */
const FOLLOWS_QUERY = `select case
  when pg_is_in_recovery() then 'wait'
  when (select system_identifier::text from pg_control_system()) <> '$system' then 'other-system'
  else (
    with current_timeline as (select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as name),
    fork as (
      select split_part(line, E'\\\\t', 2)::pg_lsn as at
      from current_timeline,
        regexp_split_to_table(coalesce(convert_from(pg_read_binary_file('pg_wal/' || name || '.history', 0, 1048576, true), 'UTF8'), ''), E'\\\\n') as line
      where split_part(line, E'\\\\t', 1) = '$tli')
    select case
      when $tli = ('x' || name)::bit(32)::int then 'follows'
      when $tli > ('x' || name)::bit(32)::int then 'diverged'
      when not exists (select from fork) then 'diverged'
      when '$lsn'::pg_lsn > (select max(at) from fork) then 'diverged'
      else 'follows'
    end
    from current_timeline)
end`;

/**
 * What a standby waits for before it copies pod 0: `up`, else why not yet. The replication role
 * may not read pg_file_settings: it reads postgresql.auto.conf itself (the lines ALTER SYSTEM and
 * backup-fetch write, `name = value`), with the function pg_rewind needs anyway.
 */
const PRIMARY_STATE_QUERY = `select case
  when pg_is_in_recovery() then 'in recovery'
  when exists (select from regexp_split_to_table(
      convert_from(pg_read_binary_file('postgresql.auto.conf', 0, 1048576, true), 'UTF8'), E'\\\\n') as line
    where line ~ '^[[:space:]]*(restore_command|recovery_target[a-z_]*)[[:space:]]*=')
    then 'its postgresql.auto.conf still holds the settings of its recovery'
  else 'up'
end`;

/**
 * The container's command. The role comes from the pod ordinal: pod 0 runs the primary; on an
 * empty volume it first asks `archiver bootstrap` what the volume becomes (the database restored
 * from its archive, a new one, or a refusal that stops the container with the reason in its log);
 * the others are standbys of pod 0.
 */
export function renderStartScript(options: StartScriptOptions): string {
  // pg_rewind's --config-file is new in 15; without it, it cannot read restore_command (the
  // configuration is not in PGDATA) and works with the WAL in pg_wal alone.
  const rewindOptions = options.version >= 15 ? ' --restore-target-wal --config-file="$conf_file"' : '';
  return `#!/bin/bash
# Start-up of ${options.id}, rendered by the ArchivedPostgres construct.
# Pod 0 is the primary; pods 1..N-1 are streaming standbys of pod 0.
set -euo pipefail

conf_file=${CONFIG_DIR}/postgresql.conf
config=(-c "config_file=$conf_file")
ordinal="\${POD_NAME##*-}"
primary_host=${options.primaryHost}
primary_port=${POSTGRES_PORT}

# A data directory of another major version cannot be started by this image's PostgreSQL (a
# version change is not an upgrade): say so in one line and stop, the data untouched. The line is
# the container's termination message too (kubectl describe pod).
server_major="$(postgres --version | sed -E 's/^[^0-9]*([0-9]+).*/\\1/')"
if [ -s "$PGDATA/PG_VERSION" ] && [ "$(cat "$PGDATA/PG_VERSION")" != "$server_major" ]; then
  echo "start: $PGDATA holds the data of PostgreSQL $(cat "$PGDATA/PG_VERSION") and this image runs PostgreSQL $server_major, which cannot start on it (a major upgrade needs pg_upgrade, which this database does not run): put the previous version back in Git; after that sync, delete this pod (kubectl delete pod $POD_NAME) so that the StatefulSet recreates it from the reverted template; the data is untouched" >&2
  exit 1
fi

# The storage credentials are in this container's environment for what the archiver restores
# below before PostgreSQL runs, only. PostgreSQL must not inherit them: every superuser session could read
# them (COPY ... FROM PROGRAM 'env') and delete the archive with them. Its archive_command and
# restore_command go through the sidecar, which holds them. Except after a restore from another
# database's archive (bootstrap source): that recovery reads the source with calls of their own
# (the sidecar serves this database's archive only), so the server keeps them until it restarts.
keep_storage_credentials=no
forget_storage_credentials() {
  [ "$keep_storage_credentials" = yes ] && return
  unset ${(options.storageCredentialVariables ?? STORAGE_CREDENTIAL_ENV).join(' ')}
}

# The archiver sidecar starts with this container. Give it a few seconds, so that the first
# restore_command and archive_command calls already reach it (without it they fail, and PostgreSQL
# calls again). Its port file may be a dead one's: only an answer on the port counts.
for _ in {1..20}; do
  if read -r port _ 2>/dev/null <"${ARCHIVER_SPOOL_DIR}/${SPOOL_LAYOUT.port}" &&
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    break
  fi
  sleep 0.5
done

if [ "$ordinal" = "0" ]; then
  echo "start: $POD_NAME is the primary"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # An empty volume. The archiver decides from this database's archive: restore its newest
    # backup (the server then replays every archived segment and promotes), a new database
    # (initdb, below), or a refusal (an archive with WAL but no backup): the container stops with
    # the reason in its log, the volume untouched. Never initdb over an archive with a database.
    outcome="$(${archiverLauncher()} ${ARCHIVER_COMMANDS.bootstrap} "$PGDATA")"
    echo "start: bootstrap: $outcome"
    if [ "$outcome" = restored ] && [ -n "\${${ARCHIVER_ENV.bootstrapSource}:-}" ]; then keep_storage_credentials=yes; fi
  fi
  # The official image's entrypoint runs initdb when the volume is still empty, then starts postgres.
  forget_storage_credentials
  exec docker-entrypoint.sh postgres "\${config[@]}"
fi

echo "start: $POD_NAME is a standby of $primary_host"
# What the probes saw before this start (probe-script.ts) says nothing about the data after it.
rm -f ${PROBE_STATE_DIR}/probe-*.state
# Every connection to pod 0 is the replication role's, never the superuser's: its password is in
# the passfile that the archiver sidecar writes from the mounted replication Secret (and rewrites
# when the Secret changes; libpq reads it at every connection). The sidecar starts with this
# container and writes it first: give it a little time, then go on (a connection without it
# fails, and the start waits for pod 0 as it would for a pod 0 that is down).
${options.tls ? renderClientTls() : ''}export PGPASSFILE=${REPLICATION_PASSFILE}
for _ in {1..30}; do
  [ -s "$PGPASSFILE" ] && break
  sleep 1
done
[ -s "$PGPASSFILE" ] || echo "start: no $PGPASSFILE yet (the archiver sidecar writes it from the replication Secret): connections to the primary fail until it is there"
on_primary() {
  PGCONNECT_TIMEOUT=10 psql --host="$primary_host" --port="$primary_port" --username=${REPLICATION_USER} --dbname=postgres \\
    --no-password --no-psqlrc --tuples-only --no-align --quiet -v ON_ERROR_STOP=1 --command="$1"
}
# Pod 0 accepts connections, is out of recovery, and its sidecar has removed the settings of that
# recovery from its postgresql.auto.conf (a copy would carry them: a recovery target makes a
# standby promote itself): a copy of it is a copy of the primary.
primary_state() {
  on_primary "${PRIMARY_STATE_QUERY}" 2>/dev/null || echo unreachable
}

wait_for_primary() {
  local state
  while state="$(primary_state)" && [ "$state" != up ]; do
    echo "start: waiting for the primary $primary_host: $state"
    sleep 5
  done
}

clone_primary() {
  # Clone into a scratch directory and rename it into place: a clone cut short by a restart is
  # never mistaken for a data directory.
  rm -rf "$PGDATA.clone"
  pg_basebackup --host="$primary_host" --port="$primary_port" --username=${REPLICATION_USER} \\
    --pgdata="$PGDATA.clone" --wal-method=stream --checkpoint=fast --no-password --progress
  mv "$PGDATA.clone" "$PGDATA"
}

${renderCopyPrimary(options.cloneFrom)}
# A field of the local control file (untranslated).
control() { LC_ALL=C pg_controldata "$PGDATA" | sed -n "s/^$1: *//p"; }
lsn_number() { echo $(( (16#\${1%/*} << 32) | 16#\${1#*/} )); }

# Whether the local data can follow pod 0 (FOLLOWS_QUERY in start-script.ts): the local position
# is the furthest point its files may hold changes of: the minimum recovery point a standby keeps
# ahead of every page it writes, or its last checkpoint.
follows_primary() {
  local system tli lsn min_tli min_lsn
  system="$(control 'Database system identifier')"
  tli="$(control 'Latest checkpoint.s TimeLineID')"
  lsn="$(control 'Latest checkpoint location')"
  min_tli="$(control 'Min recovery ending loc.s timeline')"
  min_lsn="$(control 'Minimum recovery ending location')"
  if ! [[ "$system" =~ ^[0-9]+$ && "$tli" =~ ^[0-9]+$ && "$lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ &&
    "$min_tli" =~ ^[0-9]+$ && "$min_lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then
    echo "start: the control file of $PGDATA cannot be read" >&2
    echo unreadable
    return
  fi
  if [ "$min_tli" != 0 ] && (( $(lsn_number "$min_lsn") > $(lsn_number "$lsn") )); then
    tli="$min_tli"
    lsn="$min_lsn"
  fi
  echo "start: local data: system $system, timeline $tli, up to $lsn" >&2
  on_primary "${FOLLOWS_QUERY}" 2>/dev/null || echo unknown
}

# A rewind cut short leaves data that pg_rewind's documentation says to replace.
if [ -e "$PGDATA.rewinding" ]; then
  echo "start: a pg_rewind of the local data was interrupted: discarding it and cloning the primary again"
  rm -rf "$PGDATA"
  rm -f "$PGDATA.rewinding"
fi
if [ -s "$PGDATA/PG_VERSION" ]; then
  verdict="$(follows_primary)"
  case "$verdict" in
    follows)
      echo "start: the local data follows the primary's history" ;;
    diverged)
      # The primary's history left the local timeline before the local position: pod 0 was
      # restored from the archive (onto a new timeline) while this standby had received WAL the
      # archive never got. That WAL is discarded: the primary never had it.
      echo "start: the local data has WAL that the primary's history does not: rewinding it to the primary with pg_rewind"
      # pg_rewind copies pod 0's configuration files: only once they are clean (wait_for_primary).
      wait_for_primary
      rm -f "$PGDATA/standby.signal"
      touch "$PGDATA.rewinding"
      if pg_rewind --target-pgdata="$PGDATA" --source-server="host=$primary_host port=$primary_port user=${REPLICATION_USER} dbname=postgres connect_timeout=10"${rewindOptions} --progress; then
        # pg_rewind sets the minimum recovery point to pod 0's WAL insert position, and pod 0
        # sends only WAL it has flushed: records inserted but not flushed (the hint bits
        # pg_rewind's own reads set are logged, wal_log_hints) would keep this standby short of a
        # consistent state, refusing connections, until pod 0 next commits. A commit flushes them.
        on_primary 'select txid_current()' >/dev/null 2>&1 || true
      else
        echo "start: pg_rewind failed (above): discarding the local data and cloning the primary again"
        rm -rf "$PGDATA"
        copy_primary
      fi
      rm -f "$PGDATA.rewinding" ;;
    other-system)
      echo "start: the local data belongs to another database system than the primary's (pod 0 was initialised anew): discarding it and cloning the primary again"
      rm -rf "$PGDATA"
      copy_primary ;;
    *)
      # The primary is down, still recovering, or the control file is unreadable: start on the
      # local data (reads stay available); the probes compare again once the primary is up, and
      # a standby that cannot follow it is restarted and comes back here.
      echo "start: cannot compare with the primary now ($verdict): starting on the local data" ;;
  esac
else
  copy_primary
fi
# Every start of pods 1..N-1 is a standby start.
touch "$PGDATA/standby.signal"
forget_storage_credentials
exec postgres "\${config[@]}"
`;
}

/**
 * `copy_primary`: a copy of pod 0 for an empty volume, once pod 0 is up: with pg_basebackup, or
 * first from the archive.
 */
function renderCopyPrimary(cloneFrom: CloneSource): string {
  if (cloneFrom !== CloneSource.ARCHIVE) {
    return `# A copy of pod 0 for an empty volume, once pod 0 is up: with pg_basebackup from pod 0
# (standbys.cloneFrom: primary).
copy_primary() {
  wait_for_primary
  clone_primary
}
`;
  }
  return `# A copy of pod 0 for an empty volume, once pod 0 is up, from the archive (standbys.cloneFrom:
# archive): its newest base backup, restored into a scratch directory; the standby then replays
# the archived WAL and streams the rest, and the primary reads no file for it. A copy that cannot
# follow pod 0 (another system, a timeline pod 0 left), or no copy at all (no backup yet, the
# archive unreadable): pod 0 is cloned instead.
copy_primary() {
  wait_for_primary
  rm -rf "$PGDATA.clone"
  echo "start: copying the newest base backup of the archive"
  if ${archiverLauncher()} ${ARCHIVER_COMMANDS.backupFetch} LATEST "$PGDATA.clone"; then
    mv "$PGDATA.clone" "$PGDATA"
    local verdict
    verdict="$(follows_primary)"
    case "$verdict" in
      diverged | other-system)
        echo "start: the archive's newest backup cannot follow the primary ($verdict): discarding it and cloning the primary instead"
        rm -rf "$PGDATA" ;;
      *)
        echo "start: copied from the archive; the standby replays the archived WAL, then streams"
        return ;;
    esac
  else
    echo "start: no copy from the archive (above): cloning the primary instead"
    rm -rf "$PGDATA.clone"
  fi
  clone_primary
}
`;
}
