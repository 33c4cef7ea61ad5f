/**
 * A pod of a rendered database, minus Kubernetes, for the `.real-postgres` specifications: the
 * `postgres` container runs the RENDERED start.sh (as the postgres user, in a process group of its
 * own) with the container's rendered environment, and the `archiver` sidecar runs its rendered
 * command and environment; both see one "volume" directory as the data volume, as in the pod.
 *
 * What differs from the pod, and only that: what belongs to the container. Its paths (the data
 * volume, the ConfigMap's mount, the socket directory, /opt/archiver = archiver/dist), the port and
 * listen address (a free port on 127.0.0.1; a standby's primary is 127.0.0.1 at pod 0's port), the
 * S3 endpoint (the test's s3rver, which needs WHEN_REQUIRED checksums), the Secret volumes (their
 * files written into the pod's directory from `secrets`, as the kubelet projects them, and updated
 * in place by `updateSecret`, as the kubelet does when a Secret changes), the shared `tmp` volume
 * (the replication passfile), and, for the sidecar, PGPORT (the port is the container's 5432 in the
 * pod, libpq's default). Each replacement fails when the
 * rendered string is gone (`replaced`): a change of the rendering shows here.
 *
 * The kubelet's part that the stories need is played too: the ConfigMap's mount is laid out as the
 * kubelet lays it out, and updated in place as it updates it (`mountConfigMap`: a `..data` symlink
 * swapped to a new version); and (`Kubelet`) the postgres container's
 * rendered startup, readiness and liveness probes (probe.sh) run with their rendered periods and
 * thresholds, and a container whose liveness fails is stopped (SIGTERM, then SIGKILL after the
 * grace period) and started again. A container that exits is not restarted (story 3 looks at the
 * exit). Given a (mock) Kubernetes API, the pod exists in it as the StatefulSet controller creates
 * it, and the containers reach it as the kubelet lets them (`kubernetesApi`).
 *
 * The official image's entrypoint, which start.sh runs for pod 0, is not installed here: a small
 * stand-in (`ENTRYPOINT_SHIM`) on PATH does what the official one does for `postgres ...`, and
 * `postgres`, `initdb`, `pg_ctl`, `pg_isready`, `pg_basebackup` are PostgreSQL 15's.
 */
import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ARCHIVER_ENV, ARCHIVER_INSTALL_DIR, REPLICATION_PASSFILE, SERVICE_ACCOUNT_DIR } from '../../contract';
import { ARCHIVER_SPOOL_DIR, CONFIG_DIR, DATA_MOUNT, POSTGRES_PORT, SOCKET_DIR } from '../../constructs/pod-layout';
import { PROBE_STATE_DIR } from '../../constructs/probe-script';
import { ROOT, startSidecar, stopSidecar } from '../../testkit/archiver';
import type { MockKubernetesApi } from '../../testkit/mock-kubernetes-api';
import { freePort } from '../../testkit/ports';
import { PG_BIN, giveToPostgres, postgresUser } from '../../testkit/postgres';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { KubeObject, container, containerEnvironment, find, fromBuild, replaced, sidecarCommand } from './fixtures';

const BUILD = path.join(ROOT, 'archiver/dist');

/**
 * The official postgres image's docker-entrypoint.sh (docker-library/postgres, 15/bookworm), as far
 * as `docker-entrypoint.sh postgres <args>` run by the postgres user goes: on a data directory
 * without PG_VERSION, initdb with POSTGRES_USER and POSTGRES_PASSWORD or the content of
 * POSTGRES_PASSWORD_FILE (its `file_env`: `$(< file)`) (+ POSTGRES_INITDB_ARGS), the
 * `host all all all scram-sha-256` line appended to $PGDATA/pg_hba.conf, and a temporary server on
 * the Unix socket only, with the same arguments, that creates POSTGRES_DB (the default, postgres,
 * exists) and runs /docker-entrypoint-initdb.d (empty), stopped again; then `exec "$@"`. `@PORT@`
 * is the container's port (the official passes `-p "${PGPORT:-5432}"`).
 */
const ENTRYPOINT_SHIM = `#!/bin/bash
set -Eeo pipefail
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "\${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"
  fi
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" || :
  eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"
  printf '\\nhost all all all scram-sha-256\\n' >>"$PGDATA/pg_hba.conf"
  PGUSER="\${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "\${@:2}" -c listen_addresses='' -p "\${PGPORT:-@PORT@}")" -w start
  PGUSER="\${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
  echo
  echo 'PostgreSQL init process complete; ready for start up.'
  echo
fi
exec "$@"
`;

/** What `backup-list --json` says of a backup (the fields read here). */
export interface ListedBackup {
  readonly name: string;
  readonly timeline: number;
  readonly systemIdentifier: string;
  readonly startTime: string;
  readonly stopTime: string;
}

export interface RenderedPodOptions {
  /** The database's rendered objects (synthDatabase(...).objects). */
  readonly objects: KubeObject[];
  /** The database's name: its StatefulSet and ConfigMap are `<name>`, `<name>-config`. */
  readonly name: string;
  readonly ordinal: number;
  /** Secret values, as the kubelet resolves secretKeyRefs. */
  readonly secrets: Record<string, Record<string, string>>;
  readonly s3: S3Server;
  /** The pod's own directory (created): volume/, run/, config/, bin/ and the logs. */
  readonly dir: string;
  /** The container's port (5432 in the pod). */
  readonly port: number;
  /** Pod 0's port, which start.sh and primary_conninfo reach through the governing Service. @default port */
  readonly primaryPort?: number;
  /**
   * The Kubernetes API (a mock: none runs here). The pod is created in it as the StatefulSet
   * controller creates it (the template's labels and `statefulset.kubernetes.io/pod-name`); every
   * container gets the API's address (KUBERNETES_SERVICE_HOST and _PORT, which the kubelet sets),
   * and a container that mounts SERVICE_ACCOUNT_DIR (the rendered token volume) finds the
   * ServiceAccount's token, CA and namespace there; the others find none.
   * @default - no API: the containers get none of it
   */
  readonly kubernetesApi?: MockKubernetesApi;
}

/** A pod: its files written; the sidecar and the postgres container started and stopped on demand. */
export class RenderedPod {
  public readonly podName: string;
  /** The container's port. */
  public readonly port: number;
  /** The data volume (DATA_MOUNT). */
  public readonly volume: string;
  public readonly pgdata: string;
  /** The socket directory (SOCKET_DIR). */
  public readonly run: string;
  /** The postgres container's log (start.sh, the entrypoint, PostgreSQL's stderr). */
  public readonly containerLog: string;
  /** The archiver sidecar's log. */
  public readonly sidecarLog: string;
  /** The postgres container's environment, with the container's paths replaced. */
  public readonly postgresEnv: Record<string, string>;
  /** The archiver sidecar's environment, with the container's paths replaced. */
  public readonly sidecarEnv: Record<string, string>;
  /** The ConfigMap's mount (CONFIG_DIR), laid out as the kubelet lays it out (`mountConfigMap`). */
  public readonly configDir: string;
  private configMapVersions = 0;
  /** The `tmp` volume both containers share (where the sidecar writes the replication passfile). */
  public readonly tmp: string;
  /** The replication role's passfile, in `tmp`. */
  public readonly passfile: string;
  /** Each Secret volume of the pod: its directory here, and the Secret and keys it projects. */
  private readonly secretVolumes: { dir: string; secretName: string; items?: { key: string; path: string }[]; mode: number }[] = [];
  /** Where each Secret volume is mounted in the containers, and its directory here. */
  private readonly secretMounts = new Map<string, string>();
  private readonly binDir: string;
  private readonly sidecarArgs: string[];
  private sidecar: ChildProcess | undefined;
  private postgres: ChildProcess | undefined;
  private postgresExit: Promise<number | null> | undefined;
  private readonly probes: ContainerProbes;
  private readonly gracePeriodMs: number;
  private kubelet: Kubelet | undefined;
  /** Restarts of the postgres container after its liveness probe failed. */
  public livenessRestarts = 0;
  /** Whether the readiness probe's last verdict was a success (undefined: not probed yet). */
  public ready: boolean | undefined;

  constructor(private readonly options: RenderedPodOptions) {
    const { objects, name, dir, port, s3 } = options;
    this.podName = `${name}-${options.ordinal}`;
    this.port = port;
    this.volume = path.join(dir, 'volume');
    this.run = path.join(dir, 'run');
    this.configDir = path.join(dir, 'config');
    this.binDir = path.join(dir, 'bin');
    this.containerLog = path.join(dir, 'postgres.log');
    this.sidecarLog = path.join(dir, 'archiver.log');
    this.tmp = path.join(dir, 'tmp');
    this.passfile = path.join(this.tmp, path.posix.basename(REPLICATION_PASSFILE));
    for (const d of [dir, this.volume, this.run, this.configDir, this.binDir, this.tmp]) fs.mkdirSync(d, { recursive: true });
    fs.chmodSync(dir, 0o755);

    const statefulSet = find(objects, 'StatefulSet', name);
    // The Secret volumes, projected as the kubelet does: one file per item, mode defaultMode.
    const mounts = this.secretMounts;
    for (const volume of statefulSet.spec.template.spec.volumes ?? []) {
      if (!volume.secret) continue;
      const volumeDir = path.join(dir, 'secrets', volume.name);
      this.secretVolumes.push({ dir: volumeDir, secretName: volume.secret.secretName, items: volume.secret.items, mode: volume.secret.defaultMode ?? 0o644 });
      for (const c of [container(statefulSet, 'postgres'), container(statefulSet, 'archiver')]) {
        for (const mount of c.volumeMounts ?? []) if (mount.name === volume.name) mounts.set(mount.mountPath, volumeDir);
      }
    }
    // An environment value that names a file of a Secret volume or of the tmp volume: the file here.
    const localFile = (value: string): string => {
      if (value === REPLICATION_PASSFILE) return this.passfile;
      for (const [mountPath, local] of mounts) if (value === mountPath || value.startsWith(`${mountPath}/`)) return local + value.slice(mountPath.length);
      return value;
    };
    this.mountConfigMap(find(objects, 'ConfigMap', `${name}-config`).data!);
    this.probes = probesOf(container(statefulSet, 'postgres'), (arg) =>
      arg.split(CONFIG_DIR).join(this.configDir).split(`--host=${SOCKET_DIR}`).join(`--host=${this.run}`).split(`--port=${POSTGRES_PORT}`).join(`--port=${port}`),
    );
    this.gracePeriodMs = (statefulSet.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;

    const shim = path.join(this.binDir, 'docker-entrypoint.sh');
    fs.writeFileSync(shim, ENTRYPOINT_SHIM.replace('@PORT@', String(port)));
    fs.chmodSync(shim, 0o755);

    const local = { ARCHIVER_S3_ENDPOINT: s3.endpoint, ARCHIVER_S3_CHECKSUMS: 'when_required' };
    const pg = mapValues(containerEnvironment(container(statefulSet, 'postgres'), options.secrets, this.podName), localFile);
    this.postgresEnv = {
      ...pg,
      PGDATA: replaced(pg.PGDATA, DATA_MOUNT, this.volume),
      ARCHIVER_SPOOL: replaced(pg.ARCHIVER_SPOOL, DATA_MOUNT, this.volume),
      ...local,
      PATH: `${this.binDir}:${PG_BIN}:${process.env.PATH}`,
    };
    this.pgdata = this.postgresEnv.PGDATA;
    const sc = mapValues(containerEnvironment(container(statefulSet, 'archiver'), options.secrets, this.podName), localFile);
    this.sidecarEnv = {
      ...sc,
      ARCHIVER_SPOOL: replaced(sc.ARCHIVER_SPOOL, DATA_MOUNT, this.volume),
      PGDATA: replaced(sc.PGDATA, DATA_MOUNT, this.volume),
      PGHOST: replaced(sc.PGHOST, SOCKET_DIR, this.run),
      [ARCHIVER_ENV.configDir]: replaced(sc[ARCHIVER_ENV.configDir], CONFIG_DIR, this.configDir),
      PGPORT: String(port),
      ...local,
    };
    this.sidecarArgs = sidecarCommand(statefulSet);
    const api = options.kubernetesApi;
    if (api) {
      const { [ARCHIVER_ENV.serviceAccountDir]: serviceAccountDir, ...address } = api.env;
      api.putPod(statefulSet.metadata.namespace ?? 'default', this.podName, {
        labels: { ...statefulSet.spec.template.metadata.labels, 'statefulset.kubernetes.io/pod-name': this.podName },
      });
      for (const [name, env] of [['postgres', this.postgresEnv], ['archiver', this.sidecarEnv]] as const) {
        Object.assign(env, address);
        if ((container(statefulSet, name).volumeMounts ?? []).some((m: any) => m.mountPath === SERVICE_ACCOUNT_DIR)) env[ARCHIVER_ENV.serviceAccountDir] = serviceAccountDir;
      }
    }
    giveToPostgres(dir);
    // After the chown above: the kubelet's files are root's, of the pod's fsGroup.
    for (const secretName of new Set(this.secretVolumes.map((v) => v.secretName))) this.updateSecret(secretName, options.secrets[secretName] ?? {});
  }

  /** The directory of the Secret volume `volumeName` here (where its files are projected). */
  secretVolumeDir(volumeName: string): string {
    const volume = this.secretVolumes.find((v) => path.basename(v.dir) === volumeName);
    if (!volume) throw new Error(`${this.podName}: no Secret volume ${volumeName}`);
    return volume.dir;
  }

  /**
   * A Secret changed: the files of every volume that projects it are replaced, atomically, as the
   * kubelet updates a mounted Secret in place (the containers keep running).
   */
  updateSecret(secretName: string, data: Record<string, string>): void {
    for (const volume of this.secretVolumes.filter((v) => v.secretName === secretName)) {
      fs.mkdirSync(volume.dir, { recursive: true });
      for (const item of volume.items ?? Object.keys(data).map((key) => ({ key, path: key }))) {
        const value = data[item.key];
        if (value === undefined) throw new Error(`the pod mounts Secret ${secretName} key ${item.key}, which the test does not provide`);
        const file = path.join(volume.dir, item.path);
        fs.writeFileSync(`${file}.new`, value, { mode: volume.mode });
        fs.chmodSync(`${file}.new`, volume.mode);
        // Root's, of the fsGroup (the postgres group), as the kubelet projects a Secret with fsGroup.
        if (process.getuid?.() === 0) fs.chownSync(`${file}.new`, 0, postgresUser().gid);
        fs.renameSync(`${file}.new`, file);
      }
    }
  }

  /**
   * Writes a version of the ConfigMap's files, with the container's paths and ports replaced, into
   * the mount as the kubelet does (its AtomicWriter), first at the pod's start and again when the
   * ConfigMap changes: the files go into a new hidden directory `..<version>`, the symlink `..data`
   * is swapped to it with one rename, each file of the mount is a symlink `name -> ..data/name`,
   * and the previous version's directory is removed.
   */
  mountConfigMap(data: Record<string, string>): void {
    const { name, dir, port } = this.options;
    const primaryPort = this.options.primaryPort ?? port;
    const primaryHost = `${name}-0.${name}-pods`;
    const confPath = path.join(this.configDir, 'postgresql.conf');

    let conf = data['postgresql.conf'];
    conf = replaced(conf, ARCHIVER_INSTALL_DIR, BUILD);
    conf = replaced(conf, "listen_addresses = '*'", "listen_addresses = '127.0.0.1'");
    conf = replaced(conf, `port = ${POSTGRES_PORT}`, `port = ${port}`);
    conf = replaced(conf, `unix_socket_directories = '${SOCKET_DIR}'`, `unix_socket_directories = '${this.run}'`);
    conf = replaced(conf, `hba_file = '${CONFIG_DIR}/pg_hba.conf'`, `hba_file = '${path.join(this.configDir, 'pg_hba.conf')}'`);
    conf = replaced(conf, `host=${primaryHost} port=${POSTGRES_PORT}`, `host=127.0.0.1 port=${primaryPort}`);
    conf = replaced(conf, `passfile=${REPLICATION_PASSFILE}`, `passfile=${this.passfile}`);
    // A Secret volume's path in the rendered files (the TLS Secret's): the volume's directory here.
    const localMounts = (text: string): string => [...this.secretMounts].reduce((t, [mountPath, local]) => t.split(`${mountPath}/`).join(`${local}/`), text);

    let script = data['start.sh'];
    script = replaced(script, `conf_file=${CONFIG_DIR}/postgresql.conf`, `conf_file=${confPath}`);
    script = replaced(script, ARCHIVER_SPOOL_DIR, path.join(this.volume, path.relative(DATA_MOUNT, ARCHIVER_SPOOL_DIR)));
    script = replaced(script, ARCHIVER_INSTALL_DIR, BUILD);
    script = replaced(script, `primary_host=${primaryHost}`, 'primary_host=127.0.0.1');
    script = replaced(script, `primary_port=${POSTGRES_PORT}`, `primary_port=${primaryPort}`);
    script = replaced(script, `rm -f ${PROBE_STATE_DIR}/probe-`, `rm -f ${dir}/probe-`);
    script = replaced(script, `PGPASSFILE=${REPLICATION_PASSFILE}`, `PGPASSFILE=${this.passfile}`);

    let probe = data['probe.sh'];
    probe = replaced(probe, `--host=${primaryHost} --port=${POSTGRES_PORT}`, `--host=127.0.0.1 --port=${primaryPort}`);
    probe = replaced(probe, `--host=${SOCKET_DIR} --port=${POSTGRES_PORT}`, `--host=${this.run} --port=${port}`);
    probe = replaced(probe, `--host=127.0.0.1 --port=${POSTGRES_PORT}`, `--host=127.0.0.1 --port=${port}`);
    probe = replaced(probe, `state_dir=${PROBE_STATE_DIR}`, `state_dir=${dir}`);
    probe = replaced(probe, `PGPASSFILE=${REPLICATION_PASSFILE}`, `PGPASSFILE=${this.passfile}`);

    const files: Record<string, string> = { 'postgresql.conf': localMounts(conf), 'pg_hba.conf': data['pg_hba.conf'], 'start.sh': localMounts(script), 'probe.sh': localMounts(probe) };
    const dataLink = path.join(this.configDir, '..data');
    const previous = fs.existsSync(dataLink) ? fs.readlinkSync(dataLink) : undefined;
    const version = `..${new Date().toISOString().replace(/\D/g, '_')}${++this.configMapVersions}`;
    fs.mkdirSync(path.join(this.configDir, version));
    for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(this.configDir, version, file), text, { mode: 0o444 });
    fs.symlinkSync(version, path.join(this.configDir, '..data_tmp'));
    fs.renameSync(path.join(this.configDir, '..data_tmp'), dataLink);
    for (const file of Object.keys(files)) {
      if (!fs.existsSync(path.join(this.configDir, file))) fs.symlinkSync(path.join('..data', file), path.join(this.configDir, file));
    }
    if (previous !== undefined) fs.rmSync(path.join(this.configDir, previous), { recursive: true, force: true });
  }

  /** Starts the sidecar (as the pod does, with the postgres container); resolves once it listens. */
  async startSidecar(): Promise<void> {
    fs.mkdirSync(this.volume, { recursive: true });
    giveToPostgres(this.volume);
    // A pod has its own network namespace; here every sidecar's metrics port is one of the host's.
    this.sidecarEnv[ARCHIVER_ENV.metricsPort] = String(await freePort());
    this.sidecar = await startSidecar(this.sidecarArgs, this.sidecarEnv, { logFile: this.sidecarLog, cwd: this.options.dir, ...postgresUser() });
  }

  /** Runs the rendered start.sh in the postgres container's place (its own process group); returns at once. */
  startPostgres(): void {
    const out = fs.openSync(this.containerLog, 'a');
    const child = spawn('bash', [path.join(this.configDir, 'start.sh')], {
      env: this.postgresEnv,
      ...postgresUser(),
      cwd: this.options.dir,
      stdio: ['ignore', out, out],
      detached: true,
    });
    fs.closeSync(out);
    this.postgres = child;
    this.postgresExit = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  }

  /** The sidecar, then the postgres container, as the kubelet starts the pod; its probes run until it stops. */
  async start(): Promise<void> {
    await this.startSidecar();
    this.startPostgres();
    this.kubelet = new Kubelet(this, this.probes);
  }

  /** A probe's command run as the kubelet runs it: in the container, with its environment and timeout; whether it succeeded. */
  runProbe(probe: ExecProbe): Promise<{ ok: boolean; output: string }> {
    return new Promise((resolve) => {
      execFile(probe.command[0], probe.command.slice(1), { env: this.postgresEnv, ...postgresUser(), cwd: this.options.dir, encoding: 'utf8', timeout: probe.timeoutSeconds * 1000 }, (error, stdout, stderr) => {
        resolve({ ok: !error, output: `${stdout}${stderr}`.trim() });
      });
    });
  }

  /** The kubelet restarts the container after its liveness (or startup) probe failed as often as its threshold says. */
  async restartAfterProbeFailure(why: string): Promise<void> {
    fs.appendFileSync(this.containerLog, `kubelet: ${why}: restarting the postgres container\n`);
    this.livenessRestarts += 1;
    await this.stopPostgres('SIGTERM');
    this.startPostgres();
  }

  /** Whether the postgres container still runs. */
  get postgresRunning(): boolean {
    return this.postgres !== undefined && this.postgres.exitCode === null && this.postgres.signalCode === null;
  }

  /** The container's exit code, once it exits (within `timeoutMs`, else it fails). */
  async postgresExitCode(timeoutMs = 60_000): Promise<number | null> {
    if (!this.postgresExit) throw new Error(`${this.podName}: the postgres container was never started`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${this.podName}: the postgres container still runs after ${timeoutMs} ms:\n${this.log().slice(-3000)}`)), timeoutMs)));
    try {
      return await Promise.race([this.postgresExit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  log(): string {
    return fs.existsSync(this.containerLog) ? fs.readFileSync(this.containerLog, 'utf8') : '';
  }

  archiverLog(): string {
    return fs.existsSync(this.sidecarLog) ? fs.readFileSync(this.sidecarLog, 'utf8') : '';
  }

  /** psql over the socket as the postgres OS user (peer: the superuser); the result or undefined when it failed. */
  tryPsql(query: string): string | undefined {
    const result = spawnSync(`${PG_BIN}/psql`, ['-h', this.run, '-p', String(this.options.port), '-U', 'postgres', '-d', 'postgres', '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', query], {
      ...postgresUser(),
      encoding: 'utf8',
      timeout: 30_000,
    });
    return result.status === 0 ? result.stdout.trim() : undefined;
  }

  /** psql, failing with its error. */
  sql(query: string): string {
    const result = spawnSync(`${PG_BIN}/psql`, ['-h', this.run, '-p', String(this.options.port), '-U', 'postgres', '-d', 'postgres', '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', query], {
      ...postgresUser(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (result.status !== 0) throw new Error(`${this.podName}: ${query}: ${result.stderr}${result.error?.message ?? ''}`);
    return result.stdout.trim();
  }

  /**
   * Waits until the server accepts connections and, with `primary`, is out of recovery. The server
   * start.sh runs, not the entrypoint's temporary one: that one listens on the socket only.
   */
  async waitReady(options: { primary?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? 90_000);
    for (;;) {
      const [inRecovery, listen] = (this.tryPsql("select pg_is_in_recovery(), current_setting('listen_addresses')") ?? '').split('|');
      if (listen && (!options.primary || inRecovery === 'f')) return;
      if (!this.postgresRunning || Date.now() > deadline) {
        throw new Error(`${this.podName}: ${this.postgresRunning ? 'not ready in time' : 'the postgres container exited'}:\n${this.log().slice(-4000)}`);
      }
      await sleep(100);
    }
  }

  /**
   * Waits until pod 0's sidecar has set the roles' passwords from the Secrets (its first writes to
   * a new database: a spec that counts the WAL it archives waits for them first).
   */
  async waitForRoles(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!/the role replication is created|the roles' passwords are set/.test(this.archiverLog())) {
      if (Date.now() > deadline) throw new Error(`${this.podName}: the sidecar did not set the roles' passwords within ${timeoutMs} ms:\n${this.archiverLog().slice(-3000)}`);
      await sleep(100);
    }
  }

  /** Files of pg_wal waiting for archive_command. */
  readyFiles(): string[] {
    const dir = path.join(this.pgdata, 'pg_wal/archive_status');
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.ready')).map((f) => f.slice(0, -6)).sort() : [];
  }

  /** Switches to a new segment and waits until nothing is left to archive; returns the segment switched from. */
  async switchAndArchive(timeoutMs = 60_000): Promise<string> {
    const segment = this.sql('select pg_walfile_name(pg_switch_wal())');
    const wal = path.join(this.pgdata, 'pg_wal');
    const deadline = Date.now() + timeoutMs;
    // Archived: its .done, or already recycled (pg_switch_wal with nothing written names an older one).
    while (this.readyFiles().length > 0 || (!fs.existsSync(path.join(wal, 'archive_status', `${segment}.done`)) && fs.existsSync(path.join(wal, segment)))) {
      if (Date.now() > deadline) throw new Error(`${this.podName}: archiving did not finish (${this.readyFiles().join(', ')} ready):\n${this.log().slice(-3000)}`);
      await sleep(50);
    }
    return segment;
  }

  /** `archiver <args>` in the sidecar (`kubectl exec ... -c archiver -- archiver <args>`), as postgres. */
  archiver(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const result = spawnSync(fromBuild('/archiver/bin/archiver'), args, { env: { PATH: process.env.PATH!, ...this.sidecarEnv }, encoding: 'utf8', timeout: 120_000, ...postgresUser() });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  /** `archiver backup-list --json` in the sidecar. */
  backupList(): ListedBackup[] {
    const result = this.archiver(['backup-list', '--json']);
    if (result.status !== 0) throw new Error(`${this.podName}: backup-list failed (exit ${result.status}): ${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  /** Waits until backup-list shows a backup that `matches`; returns it. */
  async waitForBackup(matches: (backup: ListedBackup) => boolean, timeoutMs = 90_000): Promise<ListedBackup> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.backupList().find(matches);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`${this.podName}: no such backup within ${timeoutMs} ms; the sidecar's log:\n${this.archiverLog().slice(-4000)}`);
      await sleep(1000);
    }
  }

  /**
   * Stops the postgres container: by default a fast shutdown (SIGINT to the postmaster, start.sh's
   * pid after its exec); the kubelet sends SIGTERM (a smart shutdown) and SIGKILL after the pod's
   * grace period. Then the whole group.
   */
  async stopPostgres(signal: 'SIGINT' | 'SIGTERM' = 'SIGINT'): Promise<void> {
    const child = this.postgres;
    if (!child || child.pid === undefined) return;
    if (this.postgresRunning) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), signal === 'SIGTERM' ? this.gracePeriodMs : 30_000);
      await exited;
      clearTimeout(timer);
    }
    // Whatever the script left in its group (a bootstrap, a clone cut short).
    killGroup(child.pid, 'SIGKILL');
    this.postgres = undefined;
  }

  async stopSidecar(): Promise<void> {
    if (this.sidecar) await stopSidecar(this.sidecar);
    this.sidecar = undefined;
  }

  /** The pod deleted: its probes, the postgres container, then the sidecar. */
  async stop(): Promise<void> {
    await this.kubelet?.stop();
    this.kubelet = undefined;
    await this.stopPostgres();
    await this.stopSidecar();
  }

  /** The volume lost (the pod stopped first): a new, empty volume in its place. */
  deleteVolume(): void {
    if (this.postgresRunning || this.sidecar) throw new Error(`${this.podName}: stop the pod before deleting its volume`);
    fs.rmSync(this.volume, { recursive: true, force: true });
    fs.mkdirSync(this.volume);
    giveToPostgres(this.volume);
  }

  /** Everything stopped and removed. */
  async remove(): Promise<void> {
    await this.stop().catch(() => undefined);
    fs.rmSync(this.options.dir, { recursive: true, force: true });
  }
}

/** An exec probe of the rendered container, its command with the container's paths replaced. */
export interface ExecProbe {
  readonly command: string[];
  readonly periodSeconds: number;
  readonly timeoutSeconds: number;
  readonly failureThreshold: number;
}

interface ContainerProbes {
  readonly startup?: ExecProbe;
  readonly readiness?: ExecProbe;
  readonly liveness?: ExecProbe;
}

/** The exec probes of a rendered container, with Kubernetes' defaults for what is not rendered. */
function probesOf(rendered: any, localize: (arg: string) => string): ContainerProbes {
  const probe = (p: any): ExecProbe | undefined => {
    if (!p) return undefined;
    if (!p.exec) throw new Error(`the rendered probe ${JSON.stringify(p)} is not an exec probe: teach rendered-pod.ts to run it`);
    return {
      command: p.exec.command.map(localize),
      periodSeconds: p.periodSeconds ?? 10,
      timeoutSeconds: p.timeoutSeconds ?? 1,
      failureThreshold: p.failureThreshold ?? 3,
    };
  };
  return { startup: probe(rendered.startupProbe), readiness: probe(rendered.readinessProbe), liveness: probe(rendered.livenessProbe) };
}

/**
 * The kubelet's probing of one container, as far as the stories need it: the startup probe until
 * it succeeds (its failure threshold restarts the container), then readiness and liveness, each
 * on its own period as the kubelet's probe workers run them; `failureThreshold` consecutive
 * liveness failures restart the container, and the probing starts over with the startup probe.
 */
class Kubelet {
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly pod: RenderedPod, private readonly probes: ContainerProbes) {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async sleep(seconds: number, alsoUntil: () => boolean = () => false): Promise<void> {
    const until = Date.now() + seconds * 1000;
    while (!this.stopped && !alsoUntil() && Date.now() < until) await sleep(Math.min(200, until - Date.now()));
  }

  /** Runs `probe` every period until `done()`; resolves with the output of the failure that reached the threshold, if one did. */
  private async worker(probe: ExecProbe, done: () => boolean, onResult: (ok: boolean, failures: number) => void): Promise<string | undefined> {
    let failures = 0;
    while (!this.stopped && !done()) {
      await this.sleep(probe.periodSeconds, done);
      if (this.stopped || done() || !this.pod.postgresRunning) continue;
      const result = await this.pod.runProbe(probe);
      failures = result.ok ? 0 : failures + 1;
      onResult(result.ok, failures);
      if (failures >= probe.failureThreshold) return `${result.output} (${failures} failures)`;
    }
    return undefined;
  }

  private async run(): Promise<void> {
    const { startup, readiness, liveness } = this.probes;
    while (!this.stopped) {
      this.pod.ready = false;
      let restart: string | undefined;
      let started = startup === undefined;
      if (startup) {
        const failed = await this.worker(startup, () => started, (ok) => (started ||= ok));
        if (failed) restart = `startup: ${failed}`;
      }
      if (!restart && !this.stopped) {
        let over = false;
        const readinessDone = readiness
          ? this.worker(readiness, () => over, (ok, failures) => {
              if (ok) this.pod.ready = true;
              else if (failures >= readiness.failureThreshold) this.pod.ready = false;
            })
          : Promise.resolve(undefined);
        const failed = liveness ? await this.worker(liveness, () => false, () => undefined) : undefined;
        over = true;
        await readinessDone;
        if (failed) restart = `liveness: ${failed}`;
      }
      if (restart && !this.stopped) await this.pod.restartAfterProbeFailure(restart);
    }
  }
}

function mapValues(env: Record<string, string>, map: (value: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, map(v)]));
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The bucket of the stories' archives. */
export const BUCKET = 'kubedb';

/** The passwords the stories' Secrets hold. */
export const TEST_PASSWORDS = { superuser: 'test-password', replication: 'test-replication-password' } as const;

/** The Secrets a database of the stories references, as the kubelet resolves them: the storage's, `{database}-auth` and `{database}-replication`. */
export function secretsFor(server: S3Server, database: string): Record<string, Record<string, string>> {
  return {
    's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
    [`${database}-auth`]: { password: TEST_PASSWORDS.superuser },
    [`${database}-replication`]: { password: TEST_PASSWORDS.replication },
  };
}

/**
 * A describe's s3rver (with `bucket`) and pods (each in a directory of `scratch`): started before
 * its specs, the pods then the server removed after them whatever happened.
 */
export function s3ServerAndPods(scratch: string, bucket = BUCKET): { pods: RenderedPods; server: () => S3Server } {
  let server: S3Server | undefined;
  const current = (): S3Server => {
    if (!server) throw new Error('s3rver did not start: see beforeAll');
    return server;
  };
  const pods = new RenderedPods(current, scratch);
  beforeAll(async () => {
    server = await startS3Server({ buckets: [bucket] });
  });
  afterAll(async () => {
    await pods.removeAll();
    await server?.stop();
  });
  return { pods, server: current };
}

/** Pods made by a describe, removed after it whatever happened. */
export class RenderedPods {
  private readonly made: RenderedPod[] = [];
  constructor(
    private readonly server: () => S3Server,
    private readonly scratch: string,
  ) {}

  /** A pod of database `name`; `secrets` adds to (or replaces) the Secrets of secretsFor. */
  async make(objects: KubeObject[], name: string, ordinal: number, primary?: RenderedPod, secrets: Record<string, Record<string, string>> = {}): Promise<RenderedPod> {
    const port = await freePort();
    const pod = new RenderedPod({
      objects,
      name,
      ordinal,
      secrets: { ...secretsFor(this.server(), name), ...secrets },
      s3: this.server(),
      dir: path.join(this.scratch, `${name}-${ordinal}`),
      port,
      primaryPort: primary?.port ?? port,
    });
    this.made.push(pod);
    return pod;
  }

  async removeAll(): Promise<void> {
    // Standbys first: they would otherwise retry the primary while it stops.
    for (const pod of this.made.splice(0).reverse()) await pod.remove();
  }
}
