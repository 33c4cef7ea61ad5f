/**
 * The PostgreSQL container's command, rendered as a bash script that a reviewer reads in the
 * ConfigMap: the pod's role from its ordinal, a bounded wait for the archiver sidecar, and the
 * standby's one-time clone of pod 0.
 */
import { ARCHIVER_COMMANDS, SPOOL_LAYOUT, archiverLauncher } from '../contract';
import { ARCHIVER_SPOOL_DIR, CONFIG_DIR, POSTGRES_PORT, SUPERUSER } from './pod-layout';

export interface StartScriptOptions {
  /** `namespace/name`, written into the script's header. */
  readonly id: string;
  /** Host name of pod 0 through the governing Service, which the standbys clone and stream from. */
  readonly primaryHost: string;
}

/**
 * The container's command. The role comes from the pod ordinal: pod 0 runs the primary; on an
 * empty volume it first asks `archiver bootstrap` what the volume becomes (the database restored
 * from its archive, a new one, or a refusal that stops the container with the reason in its log);
 * the others clone pod 0 once with pg_basebackup and run as standbys.
 */
export function renderStartScript(options: StartScriptOptions): string {
  return `#!/bin/bash
# Start-up of ${options.id}, rendered by the ArchivedPostgres construct.
# Pod 0 is the primary; pods 1..N-1 are streaming standbys cloned from pod 0.
set -euo pipefail

config=(-c "config_file=${CONFIG_DIR}/postgresql.conf")
ordinal="\${POD_NAME##*-}"

# The archiver sidecar starts with this container. Give it a few seconds, so that the first
# restore_command and archive_command calls already reach it (without it they work alone: slower,
# still correct). Its port file may be a dead one's: only an answer on the port counts.
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
  fi
  # The official image's entrypoint runs initdb when the volume is still empty, then starts postgres.
  exec docker-entrypoint.sh postgres "\${config[@]}"
fi

echo "start: $POD_NAME is a standby of ${options.primaryHost}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "${options.primaryHost}" -p ${POSTGRES_PORT}; do
    echo "start: waiting for the primary ${options.primaryHost} to accept connections"
    sleep 5
  done
  # Clone into a scratch directory and rename it into place: a clone cut short by a restart is
  # never mistaken for a data directory.
  rm -rf "$PGDATA.clone"
  pg_basebackup --host="${options.primaryHost}" --port=${POSTGRES_PORT} --username=${SUPERUSER} \\
    --pgdata="$PGDATA.clone" --wal-method=stream --checkpoint=fast --no-password --progress
  mv "$PGDATA.clone" "$PGDATA"
fi
# A standby follows pod 0 and nothing else. The clone copied pod 0's postgresql.auto.conf, which
# holds the recovery settings of pod 0's own restore when it was bootstrapped from an archive: a
# recovery target (a standby would stop at the first commit after it and promote itself, a second
# primary) and the restore_command of another database's archive. They go; the rendered
# restore_command applies.
if [ -f "$PGDATA/postgresql.auto.conf" ]; then
  sed -i -E '/^[[:space:]]*(restore_command|recovery_target[a-z_]*)[[:space:]]*=/d' "$PGDATA/postgresql.auto.conf"
fi
# Every start of pods 1..N-1 is a standby start.
touch "$PGDATA/standby.signal"
exec postgres "\${config[@]}"
`;
}
