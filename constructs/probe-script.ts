/**
 * The PostgreSQL container's readiness and liveness probes, rendered as a bash script in the
 * ConfigMap (`probe.sh ready`, `probe.sh live`). A standby that cannot follow pod 0 streams
 * nothing while pg_isready still says it accepts connections: it would serve stale reads (or rows
 * pod 0 no longer has) for ever. So on a standby the probes also ask whether it follows pod 0:
 * not ready at once, and not live, so that the kubelet restarts the container and start.sh
 * compares the data with pod 0's and rewinds it or clones it again.
 */
import { REPLICATION_PASSFILE } from '../contract';
import { POSTGRES_PORT, REPLICATION_USER, SOCKET_DIR, SUPERUSER } from './pod-layout';
import { renderClientTls } from './postgres-tls';

/** Where the probes keep what they last saw (an emptyDir: it outlives a container restart, which start.sh clears). */
export const PROBE_STATE_DIR = '/tmp';

/**
 * Seconds a standby may go without streaming and without replaying a byte while pod 0 is up before
 * its probes fail. A standby catching up from the archive replays (restore_command); one whose
 * walreceiver reconnects after a restart of pod 0 streams again within wal_retrieve_retry_interval
 * (5 s).
 */
export const STANDBY_STALL_SECONDS = 30;

/**
 * Seconds a copy into an empty volume (a standby's clone or copy from the archive, pod 0's restore
 * from the archive) may go without growing before the container counts as dead. The copy runs
 * before any server, for as long as the database's size needs: it is alive while it grows.
 */
export const COPY_STALL_SECONDS = 600;

export interface ProbeScriptOptions {
  /** `namespace/name`, written into the script's header. */
  readonly id: string;
  /** Host name of pod 0 through the governing Service. */
  readonly primaryHost: string;
  /**
   * Whether pod 0 takes TLS connections only (`tls`).
   * @default false
   */
  readonly tls?: boolean;
}

export function renderProbeScript(options: ProbeScriptOptions): string {
  return `#!/bin/bash
# Probes of ${options.id}, rendered by the ArchivedPostgres construct.
#   probe.sh startup the server answers at all, or a copy into the empty volume grows;
#   probe.sh ready   the server accepts connections; pod 0 is out of recovery (it takes the
#                    writes), a standby follows pod 0;
#   probe.sh live    the server answers at all (pg_isready's "rejecting connections" counts: a long
#                    recovery is alive), or a copy into the empty volume grows; and, on a
#                    standby, it follows pod 0.
# A copy (a standby's clone of pod 0 or copy from the archive, pod 0's restore from the archive)
# runs before any server starts, for as long as the database's size needs: it is alive while its
# directory grew within ${COPY_STALL_SECONDS} s, so that neither the startup probe's hour nor the
# liveness probe cuts short the copy of a large database.
# A standby does not follow pod 0 when pod 0 is up (accepts connections, out of recovery) and the
# standby is another database system, or it has neither streamed nor replayed a byte for
# ${STANDBY_STALL_SECONDS} s (e.g. pod 0 was restored from the archive onto a timeline that left the
# standby's behind). Its liveness failing, the kubelet restarts the container: start.sh rewinds it
# or clones it again.
set -uo pipefail
mode="$1"
state_dir=${PROBE_STATE_DIR}
state="$state_dir/probe-$mode.state"

# Seconds VALUE has stood unchanged in STATE_FILE (0 when it is new or changed: then noted with
# the time). What the probes saw last is all they remember between runs.
unchanged_for() {
  local state_file="$1" value="$2" seen since now
  now="$(date +%s)"
  if read -r seen since <"$state_file" 2>/dev/null && [ "$seen" = "$value" ]; then
    echo $((now - since))
  else
    echo "$value $now" >"$state_file.tmp" && mv "$state_file.tmp" "$state_file"
    echo 0
  fi
}

# Whether a copy into the empty volume grew within COPY_STALL seconds.
copy_growing() {
  local dir bytes stalled
  for dir in "$PGDATA.clone" "$PGDATA.restore"; do
    [ -d "$dir" ] || continue
    bytes="$(du -sb "$dir" 2>/dev/null | cut -f1)"
    stalled="$(unchanged_for "$state_dir/copy-$mode.state" "$bytes")"
    if (( stalled >= ${COPY_STALL_SECONDS} )); then
      echo "the copy into $dir has not grown for $stalled s ($bytes bytes)"
      return 1
    fi
    return 0
  done
  return 1
}

# Readiness asks over TCP, as clients connect: during initdb the official entrypoint runs a
# temporary server on the Unix socket only, which must not make the pod Ready for a moment.
if [ "$mode" = ready ]; then
  pg_isready --quiet --host=127.0.0.1 --port=${POSTGRES_PORT}
else
  pg_isready --quiet --host=${SOCKET_DIR} --port=${POSTGRES_PORT}
fi
case $? in
  0) ;;
  1) [ "$mode" = ready ] && exit 1 || exit 0 ;;
  *) [ "$mode" != ready ] && copy_growing && exit 0 || exit 1 ;;
esac
[ "$mode" = startup ] && exit 0

IFS='|' read -r recovering receiver replayed system < <(
  psql --host=${SOCKET_DIR} --port=${POSTGRES_PORT} --username=${SUPERUSER} --dbname=postgres \\
    --no-psqlrc --tuples-only --no-align --quiet --command="select pg_is_in_recovery(),
      coalesce((select status from pg_stat_wal_receiver), 'none'),
      coalesce(pg_last_wal_replay_lsn()::text, 'none'),
      (select system_identifier from pg_control_system())"
) || exit 0
if [ "\${POD_NAME##*-}" = 0 ]; then
  # Pod 0 takes the writes (the read-write Service): while it replays a restore from the archive it
  # answers as a hot standby, and every write would fail. Ready once it is promoted; alive meanwhile.
  if [ "$mode" = ready ] && [ "$recovering" = t ]; then
    echo "pod 0 is still in recovery (replayed up to $replayed): not ready for writes until it is promoted"
    exit 1
  fi
  exit 0
fi
if [ "$recovering" != t ] || [ "$receiver" = streaming ]; then
  rm -f "$state"
  exit 0
fi

# Not streaming. Only pod 0, up, can tell whether this standby should be. As the replication
# role, its password from the passfile the archiver sidecar writes. A pod 0 that accepts the connection but does not answer (frozen, overloaded)
# counts as down, within the probe's own timeout: this standby is not restarted for it.
${options.tls ? renderClientTls() : ''}primary_system="$(PGPASSFILE=${REPLICATION_PASSFILE} PGCONNECT_TIMEOUT=3 timeout 3 psql --host=${options.primaryHost} --port=${POSTGRES_PORT} --username=${REPLICATION_USER} --dbname=postgres \\
  --no-password --no-psqlrc --tuples-only --no-align --quiet \\
  --command='select system_identifier from pg_control_system() where not pg_is_in_recovery()' 2>/dev/null)"
if [ -z "$primary_system" ]; then
  rm -f "$state"
  exit 0
fi
if [ "$primary_system" != "$system" ]; then
  echo "standby of another database system ($system) than pod 0's ($primary_system)"
  exit 1
fi
stalled="$(unchanged_for "$state" "$replayed")"
if (( stalled >= ${STANDBY_STALL_SECONDS} )); then
  echo "standby neither streamed nor replayed WAL for $stalled s (replayed up to $replayed; walreceiver: $receiver) while pod 0 is up"
  exit 1
fi
exit 0
`;
}
