/**
 * `npm run rehearse`: the committed YAML of one database, run as containers under podman, through
 * what production does to it. It reads dist/ — never the TypeScript — and plays the StatefulSet
 * controller and the kubelet (pod-rendering.ts, kubelet.ts) on a podman network, with the archiver
 * image the project builds, a stand-in for the official postgres image, and s3rver in a pod of its
 * own. Eight steps, each timed; the first failure stops it with the containers' logs.
 */
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readOutput } from '../scripts/synthesize';
import { waitUntil } from '../testkit/doubles';
import { startMockKubernetesApi } from '../testkit/mock-kubernetes-api';
import { objectKeys, parseRepository, segmentRange } from './bucket';
import { secretsFor, Secrets } from './fixture';
import { Kubelet } from './kubelet';
import { Adaptation, KubeObject, PodEnvironment, renderJobPod, renderStatefulSetPod, RenderedPod } from './pod-rendering';
import { PodmanCluster, runCommand } from './podman-cluster';
import { renderS3Pod, S3_PORT } from './s3-pod';

export interface RehearsalOptions {
  /** The database's directory in dist/, e.g. dist/dev/demo/wal-postgres. */
  readonly database: string;
  /** The dist/ directory to look for a database bootstrapped from this one's archive. */
  readonly dist: string;
  /** Where the rehearsal's files go (removed afterwards). */
  readonly directory: string;
  readonly log: (line: string) => void;
}

/** One database of dist/: its objects and the pieces the rehearsal needs. */
interface Database {
  readonly name: string;
  readonly namespace: string;
  readonly objects: KubeObject[];
  readonly statefulSet: KubeObject;
  readonly repository: string;
  readonly bucket: string;
  readonly prefix: string;
}

/** The databases of dist/ (each directory with a StatefulSet), read once, by directory relative to dist/. */
function readDatabases(dist: string): Map<string, Database> {
  const byDirectory = new Map<string, KubeObject[]>();
  for (const [file, documents] of Object.entries(readOutput(dist))) {
    const dir = path.posix.dirname(file);
    byDirectory.set(dir, [...(byDirectory.get(dir) ?? []), ...(documents.filter((d) => d) as KubeObject[])]);
  }
  const databases = new Map<string, Database>();
  for (const [dir, objects] of byDirectory) {
    const statefulSets = objects.filter((o) => o.kind === 'StatefulSet');
    if (statefulSets.length === 0) continue;
    if (statefulSets.length > 1) throw new Error(`rehearse: ${dir} holds ${statefulSets.length} StatefulSets; the rehearsal plays one database per directory`);
    const statefulSet = statefulSets[0];
    const repository = containerEnv(statefulSet, 'archiver', 'ARCHIVER_REPOSITORY');
    if (!repository) throw new Error(`rehearse: StatefulSet/${statefulSet.metadata.name}: the archiver container has no ARCHIVER_REPOSITORY`);
    databases.set(dir, { name: statefulSet.metadata.name, namespace: statefulSet.metadata.namespace ?? 'default', objects, statefulSet, repository, ...parseRepository(repository) });
  }
  return databases;
}

function containers(workload: KubeObject): any[] {
  const spec = workload.spec.template.spec;
  return [...(spec.initContainers ?? []), ...spec.containers];
}

function containerEnv(workload: KubeObject, container: string, name: string): string | undefined {
  return containers(workload).find((c) => c.name === container)?.env?.find((e: any) => e.name === name)?.value;
}

/** A step's failure. */
class StepFailure extends Error {}

function expectThat(condition: boolean, what: string): void {
  if (!condition) throw new StepFailure(what);
}

export async function rehearse(options: RehearsalOptions): Promise<void> {
  const { log } = options;
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s`;
  const databases = readDatabases(options.dist);
  const main = databases.get(path.relative(options.dist, options.database).split(path.sep).join('/'));
  if (!main) throw new Error(`rehearse: ${options.database} is not a database directory of ${options.dist} (run npm run synth, or name one: ${[...databases.keys()].join(', ')})`);
  // The database of dist/ whose first start restores from this one's archive.
  const copy = [...databases.values()].find((d) => containerEnv(d.statefulSet, 'postgres', 'ARCHIVER_BOOTSTRAP_SOURCE') === main.repository);
  if (!copy) throw new Error(`rehearse: no database of ${options.dist} is bootstrapped from ${main.repository} (step 7 needs one: Bootstrap.fromArchive)`);
  log(`rehearse: ${options.database} (StatefulSet ${main.namespace}/${main.name}); step 7 with ${copy.namespace}/${copy.name}, bootstrapped from its archive`);

  const postgresImage = containers(main.statefulSet).find((c) => c.name === 'postgres').image as string;
  const archiverImage = containers(main.statefulSet).find((c) => c.name === 'archiver').image as string;
  const cluster = PodmanCluster.create(options.directory);
  const kubelet = new Kubelet(cluster, log);
  const cleanups: (() => Promise<void> | void)[] = [];
  // Ctrl-C or a CI timeout: what it made goes too (the pods, the network, the storage root).
  const interrupted = (signal: NodeJS.Signals) => {
    log(`rehearse: ${signal}: removing its pods, volumes, network, images and directory`);
    kubelet.forgetAll();
    cluster.remove();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let current = 'setting up';
  const step = async (title: string, body: () => Promise<void>) => {
    current = title;
    const at = Date.now();
    log(`rehearse: [${elapsed()}] ${title} ...`);
    await body();
    log(`rehearse: [${elapsed()}] ${title}: ok (${((Date.now() - at) / 1000).toFixed(1)} s)`);
  };
  try {
    await step('images: the archiver image (npm run archiver:image) and the postgres stand-in', async () => {
      const storage = cluster.storage;
      const buildah = storage.buildahCommand;
      const [archiver, postgres] = await Promise.all([
        runCommand('bash', ['archiver/scripts/build-image.sh'], { ...process.env, ARCHIVER_IMAGE: archiverImage, BUILDAH_STORAGE: path.join(storage.dir!, 'root'), BUILDAH_RUNROOT: path.join(storage.dir!, 'run') }),
        runCommand('bash', ['testkit/postgres-image-standin.sh', path.join(options.directory, 'postgres-image'), postgresImage], { ...process.env, BUILDAH: buildah }),
      ]);
      cluster.check(archiver, 'the archiver image (archiver/scripts/build-image.sh)');
      cluster.check(postgres, 'the postgres stand-in (testkit/postgres-image-standin.sh)');
      const images = cluster.podman(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Size}}']).stdout.trim().split('\n');
      log(`rehearse:   images: ${images.join('; ')} (${postgresImage} is a STAND-IN built from Debian's postgresql-15: no registry is reachable here)`);
    });

    // The S3 server first: its IP goes into every pod's environment.
    const s3Ip = cluster.allocateIp();
    const s3 = renderS3Pod(archiverImage, [...new Set([main.bucket, copy.bucket])], path.join(options.directory, 's3'));
    const endpoint = `http://${s3Ip}:${S3_PORT}`;
    await step(`the S3 server in a pod of its own (s3rver, ${endpoint})`, async () => {
      cluster.play(s3, s3Ip);
      await waitFor(async () => (await cluster.execAsync('s3', 's3rver', ['/archiver/bin/node', '-e', `require('http').get('http://127.0.0.1:${S3_PORT}/', (r) => process.exit(r.statusCode < 500 ? 0 : 1)).on('error', () => process.exit(1))`])).status === 0, 's3rver answering', 60_000);
    });

    const tlsHosts = [`${main.name}-0.${main.statefulSet.spec.serviceName}`, `${main.name}-0.${main.statefulSet.spec.serviceName}.${main.namespace}.svc`];
    const secrets: Secrets = secretsFor([...main.objects, ...copy.objects], path.join(options.directory, 'secrets'), tlsHosts);
    const ips = new Map<string, string>();
    const ipOf = (pod: string) => {
      if (!ips.has(pod)) ips.set(pod, cluster.allocateIp());
      return ips.get(pod)!;
    };
    const hostsOf = (db: Database, ordinals: number) => Object.fromEntries(Array.from({ length: ordinals }, (_, i) => [`${db.name}-${i}.${db.statefulSet.spec.serviceName}`, ipOf(`${db.name}-${i}`)]));
    const envOverrides: PodEnvironment['envOverrides'] = {
      ARCHIVER_S3_ENDPOINT: { value: endpoint, why: "the rehearsal's S3 server (s3rver in its pod): no cloud storage here" },
    };
    const archiverEnvAdditions: PodEnvironment['archiverEnvAdditions'] = {
      ARCHIVER_S3_CHECKSUMS: { value: 'when_required', why: 's3rver stores aws-chunked bodies verbatim (testkit/s3-server.ts); real S3 needs no such setting' },
    };
    const environment = (db: Database, pod: string, extra: Partial<PodEnvironment> = {}): PodEnvironment => ({
      secrets,
      hosts: hostsOf(db, 2),
      envOverrides: { ...envOverrides, ...(extra.envOverrides ?? {}) },
      archiverEnvAdditions,
      podDirectory: path.join(options.directory, 'pods', pod),
      ...(extra.api ? { api: extra.api } : {}),
    });
    const adaptationsSeen = new Set<string>();
    const printAdaptations = (list: readonly Adaptation[]) => {
      for (const a of list) {
        const key = `${a.field.replace(/^\S+ /, '')}: ${a.what}`;
        if (adaptationsSeen.has(key)) continue;
        adaptationsSeen.add(key);
        log(`rehearse:   adaptation: ${a.field}: ${a.what}`);
      }
    };
    const renderPod = (db: Database, ordinal: number, extra: Partial<PodEnvironment> = {}): RenderedPod => {
      const pod = `${db.name}-${ordinal}`;
      const rendered = renderStatefulSetPod(db.statefulSet, ordinal, db.objects, environment(db, pod, extra));
      printAdaptations(rendered.adaptations);
      return rendered;
    };
    const playPod = (rendered: RenderedPod) => {
      const name = rendered.pod.metadata.name;
      cluster.play(rendered, ipOf(name));
      kubelet.watchLiveness(name, rendered.probes, rendered.terminationGracePeriodSeconds);
    };
    const sql = (pod: string, statement: string): string => {
      const result = cluster.exec(pod, 'postgres', ['psql', '--host=/var/run/postgresql', '--username=postgres', '--dbname=postgres', '-qAtX', '-v', 'ON_ERROR_STOP=1', '-c', statement]);
      if (result.status !== 0) throw new StepFailure(`${pod}: ${statement}: ${result.stderr.trim()}`);
      return result.stdout.trim();
    };
    const mainArchive = () => objectKeys(s3.dataDirectory, main.bucket, main.prefix);
    const archived = (db: Database, segment: string) => objectKeys(s3.dataDirectory, db.bucket, db.prefix).includes(`${db.prefix}/wal/${segment}`);
    /** Switches to a new segment on pod 0 and waits until PostgreSQL archived the one it closed, and it is in the bucket. */
    const switchAndArchive = async (db: Database, pod: string, timeoutMs = 60_000): Promise<string> => {
      const segment = sql(pod, 'select pg_walfile_name(pg_switch_wal())');
      await waitFor(() => {
        const last = sql(pod, 'select coalesce(last_archived_wal, \'\') from pg_stat_archiver');
        return last >= segment && last.slice(0, 8) === segment.slice(0, 8);
      }, `${pod} archiving ${segment}`, timeoutMs);
      expectThat(archived(db, segment), `${segment} is archived by PostgreSQL's count but not in s3://${db.bucket}/${db.prefix}/wal/`);
      return segment;
    };
    const insertBatch = (pod: string, batch: number, rows = 100) => sql(pod, `insert into rehearsal (batch, payload) select ${batch}, md5(g::text) from generate_series(1, ${rows}) g`);
    const rowCount = (pod: string) => Number(sql(pod, 'select count(*) from rehearsal'));
    const backups = (pod: string): { name: string }[] => {
      const result = cluster.exec(pod, 'archiver', ['/archiver/bin/node', '/archiver/lib/archiver.cjs', 'backup-list', '--json']);
      if (result.status !== 0) return [];
      return JSON.parse(result.stdout);
    };

    const pod0 = `${main.name}-0`;
    const pod1 = `${main.name}-1`;
    const replicas = main.statefulSet.spec.replicas ?? 1;
    if (replicas < 2) {
      log(`rehearse:   adaptation: StatefulSet/${main.name} spec.replicas: ${replicas} → 2 for the rehearsal (as kubectl scale would): step 3 needs a standby`);
    }
    let firstSegment = '';
    let targetTime = '';
    let rowsAtTarget = 0;

    await step('1. pod 0 starts as primary; WAL arrives under {bucket}/{prefix}/kubedb/{namespace}/{name}/archive/', async () => {
      const rendered = renderPod(main, 0);
      playPod(rendered);
      await kubelet.waitReady(pod0, rendered.probes, 240_000);
      expectThat(sql(pod0, 'select pg_is_in_recovery()') === 'f', `${pod0} is in recovery: not a primary`);
      sql(pod0, 'create table rehearsal (id bigserial primary key, batch int not null, payload text, at timestamptz not null default clock_timestamp())');
      insertBatch(pod0, 1);
      const segment = await switchAndArchive(main, pod0);
      firstSegment = mainArchive().map((k) => k.split('/').pop()!).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort()[0];
      expectThat(main.prefix.endsWith(`kubedb/${main.namespace}/${main.name}/archive`), `the archive path ${main.prefix} is not KubeDB's {prefix}/kubedb/{namespace}/{name}/archive`);
      log(`rehearse:   ${pod0} is the primary; ${segment} archived to s3://${main.bucket}/${main.prefix}/wal/ (first segment ${firstSegment})`);
    });

    await step('2. the first base backup appears', async () => {
      await waitFor(() => backups(pod0).length > 0, 'the first base backup in backup-list', 180_000);
      const listed = backups(pod0);
      const manifests = mainArchive().filter((k) => k.endsWith('/manifest.json'));
      expectThat(manifests.length === listed.length, `backup-list shows ${listed.length} backups, the bucket holds ${manifests.length} manifests`);
      log(`rehearse:   ${listed.map((b) => b.name).join(', ')} (${manifests[0]})`);
    });

    await step('3. pod 1 starts as a standby, cloned from the primary, and streams; a row written on pod 0 is read on pod 1', async () => {
      const rendered = renderPod(main, 1);
      playPod(rendered);
      await kubelet.waitReady(pod1, rendered.probes, 240_000);
      expectThat(sql(pod1, 'select pg_is_in_recovery()') === 't', `${pod1} is not in recovery: not a standby`);
      await waitFor(() => sql(pod1, "select coalesce((select status from pg_stat_wal_receiver), 'none')") === 'streaming', `${pod1} streaming from ${pod0}`, 60_000);
      insertBatch(pod0, 2);
      const id = sql(pod0, "insert into rehearsal (batch, payload) values (2, 'written on pod 0') returning id");
      await waitFor(() => sql(pod1, `select count(*) from rehearsal where id = ${id}`) === '1', `row ${id} on ${pod1}`, 30_000);
      // The point in time step 7 restores to: after batches 1 and 2, before any later row.
      await sleep(1100);
      targetTime = sql(pod0, "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
      rowsAtTarget = rowCount(pod0);
      await sleep(1100);
      log(`rehearse:   ${pod1} streams; row ${id} read on it; point in time for step 7: ${targetTime} (${rowsAtTarget} rows before it)`);
    });

    await step('4. the sidecar container is killed: archiving resumes, nothing is lost', async () => {
      const before = cluster.containerState(pod0, 'archiver').restarts;
      cluster.kill(pod0, 'archiver');
      insertBatch(pod0, 4);
      await waitFor(() => {
        const state = cluster.containerState(pod0, 'archiver');
        return state.restarts > before && state.status === 'running';
      }, 'the archiver container restarted', 60_000);
      const segment = await switchAndArchive(main, pod0, 120_000);
      log(`rehearse:   the archiver container was restarted (restart count ${cluster.containerState(pod0, 'archiver').restarts}); ${segment} archived after it`);
    });

    await step('5. the S3 server is stopped under write load, then started: the backlog drains, every archived segment is in the bucket and fetches intact', async () => {
      const failedBefore = Number(sql(pod0, 'select failed_count from pg_stat_archiver'));
      let writing = true;
      const load = (async () => {
        let batch = 500;
        while (writing) {
          insertBatch(pod0, batch++, 2000);
          sql(pod0, 'select pg_switch_wal()');
          await sleep(2000);
        }
      })();
      cluster.stopPod('s3', 5);
      await sleep(12_000);
      // The archiver does not report a segment archived while it cannot store it: the segments
      // wait in pg_wal (.ready), whether archive_command fails and is called again or is still retrying.
      const failedWhileDown = Number(sql(pod0, 'select failed_count from pg_stat_archiver'));
      const backlog = Number(sql(pod0, "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'"));
      expectThat(backlog >= 3, `only ${backlog} segments wait for archiving after 12 s of writes with the S3 server down: were they reported archived without being stored?`);
      cluster.startPod('s3');
      writing = false;
      await load;
      const last = await switchAndArchive(main, pod0, 180_000);
      const names = segmentRange(firstSegment, last);
      const missing = names.filter((n) => !archived(main, n));
      expectThat(missing.length === 0, `segments PostgreSQL archived but not in the bucket: ${missing.join(', ')}`);
      // Each fetched as PostgreSQL's restore_command fetches it (through the sidecar), compared
      // byte for byte with pg_wal's copy where PostgreSQL still has one.
      const script = `set -u; cd "$PGDATA"; mkdir -p /tmp/rehearse-fetch; n=0; same=0
        for name in ${names.join(' ')}; do
          /opt/archiver/bin/archiver wal-fetch "$name" /tmp/rehearse-fetch/"$name" >/dev/null 2>/tmp/rehearse-fetch/err || { echo "FAILED $name: $(tail -1 /tmp/rehearse-fetch/err)"; exit 1; }
          if [ -f "pg_wal/$name" ]; then cmp -s "pg_wal/$name" /tmp/rehearse-fetch/"$name" || { echo "DIFFERS $name"; exit 1; }; same=$((same+1)); fi
          rm -f /tmp/rehearse-fetch/"$name"; n=$((n+1))
        done; rm -rf /tmp/rehearse-fetch; echo "$n $same"`;
      const fetched = cluster.exec(pod0, 'postgres', ['bash', '-c', script], { timeoutMs: 300_000 });
      expectThat(fetched.status === 0, `wal-fetch of the archived segments: ${fetched.stdout.trim()} ${fetched.stderr.trim()}`);
      const [count, compared] = fetched.stdout.trim().split(' ');
      log(`rehearse:   with the server down ${backlog} segments waited in pg_wal (archive_command failed ${failedWhileDown - failedBefore} times meanwhile); after it came back all ${names.length} segments ${firstSegment}..${last} are in the bucket; ${count} fetched intact (${compared} byte-identical to pg_wal's copy${Number(count) > Number(compared) ? `, ${Number(count) - Number(compared)} no longer in pg_wal verified by their checksums` : ''})`);
    });

    let rowsBeforeLoss = 0;
    await step('6. pod 0 and its volume are deleted: started again from the same YAML, it restores every archived row from the archive, and pod 1 follows it', async () => {
      insertBatch(pod0, 6);
      await switchAndArchive(main, pod0);
      rowsBeforeLoss = rowCount(pod0);
      kubelet.forget(pod0);
      cluster.deletePod(pod0, { withClaims: true });
      const rendered = renderPod(main, 0);
      playPod(rendered);
      // Ready (probe.sh) only once out of its archive recovery: the primary again, taking writes.
      await kubelet.waitReady(pod0, rendered.probes, 300_000);
      expectThat(sql(pod0, 'select pg_is_in_recovery()') === 'f', `${pod0} is Ready but still in recovery: the read-write Service would send writes to a read-only server`);
      const restored = rowCount(pod0);
      expectThat(restored === rowsBeforeLoss, `${pod0} restored ${restored} rows; ${rowsBeforeLoss} were archived`);
      const bootstrap = /start: bootstrap: [a-z-]+/.exec(cluster.logs(pod0, 'postgres', 400))?.[0];
      const id = sql(pod0, "insert into rehearsal (batch, payload) values (6, 'after the restore') returning id");
      await waitFor(() => {
        try {
          return sql(pod1, `select count(*) from rehearsal where id = ${id}`) === '1';
        } catch {
          return false; // restarted by its liveness probe, or rewinding
        }
      }, `${pod1} following the restored ${pod0} (row ${id})`, 300_000);
      const timeline = sql(pod0, "select timeline_id from pg_control_checkpoint()");
      log(`rehearse:   ${pod0}: ${bootstrap ?? 'bootstrap line not found'}; ${restored} of ${rowsBeforeLoss} rows, timeline ${timeline}; ${pod1} follows it (row ${id}; restarts of its postgres container by its liveness probe: ${kubelet.restarts(pod1, 'postgres')})`);
    });

    const copyPod = `${copy.name}-0`;
    await step(`7. ${copy.name}, bootstrapped from ${main.name}'s archive to a point in time, has exactly the rows before it`, async () => {
      const target = `time:${targetTime}`;
      const rendered = renderPod(copy, 0, {
        envOverrides: { ARCHIVER_BOOTSTRAP_TARGET: { value: target, why: `the rehearsal's point in time, between the rows of step 3 and the later ones (the committed ${containerEnv(copy.statefulSet, 'postgres', 'ARCHIVER_BOOTSTRAP_TARGET')} lies before the rehearsal's first row)` } },
      });
      playPod(rendered);
      await kubelet.waitReady(copyPod, rendered.probes, 300_000);
      expectThat(sql(copyPod, 'select pg_is_in_recovery()') === 'f', `${copyPod} is Ready but still in recovery`);
      const rows = rowCount(copyPod);
      expectThat(rows === rowsAtTarget, `${copyPod} has ${rows} rows; ${rowsAtTarget} were written before ${targetTime}`);
      const later = Number(sql(copyPod, `select count(*) from rehearsal where at >= '${targetTime}'`));
      expectThat(later === 0, `${copyPod} has ${later} rows written after ${targetTime}`);
      // Its own archive, for step 8: its first segment and its first backup.
      sql(copyPod, 'create table copy_marker as select 1 as x');
      await switchAndArchive(copy, copyPod, 120_000);
      log(`rehearse:   ${copyPod} has the ${rows} rows written before ${targetTime}, none after; it archives to s3://${copy.bucket}/${copy.prefix}/ (${objectKeys(s3.dataDirectory, copy.bucket, copy.prefix).length} objects)`);
    });

    await step(`8. the WipeOut hook Job's container, run as rendered, empties ${copy.name}'s archive and nothing else`, async () => {
      const job = copy.objects.find((o) => o.kind === 'Job');
      expectThat(job !== undefined, `${copy.name} renders no WipeOut Job`);
      kubelet.forget(copyPod);
      cluster.deletePod(copyPod, { withClaims: true });
      const mainBefore = mainArchive();
      const copyBefore = objectKeys(s3.dataDirectory, copy.bucket, copy.prefix);
      expectThat(copyBefore.length > 0, `${copy.name}'s archive is empty before the Job ran`);
      const serviceAccount = job!.spec.template.spec.serviceAccountName as string;
      const api = await startMockKubernetesApi(options.directory, {
        serviceAccount: { namespace: copy.namespace, name: serviceAccount },
        rbac: copy.objects.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding'),
      });
      cleanups.push(() => api.stop());
      // The StatefulSet is gone (argocd deleted the app): the mock API answers 404 for it.
      const rendered = renderJobPod(job!, copy.objects, {
        ...environment(copy, `${job!.metadata.name}-run`),
        hosts: {},
        api: { host: '127.0.0.1', port: api.port, serviceAccountDir: api.serviceAccountDir },
      });
      printAdaptations(rendered.adaptations);
      cluster.play(rendered, undefined);
      const jobPod = rendered.pod.metadata.name;
      const container = rendered.pod.spec.containers[0].name as string;
      await waitFor(() => cluster.containerState(jobPod, container).status === 'exited', 'the WipeOut container finished', 120_000);
      const state = cluster.containerState(jobPod, container);
      expectThat(state.exitCode === 0, `the WipeOut container exited ${state.exitCode}: ${cluster.logs(jobPod, container)}`);
      const copyAfter = objectKeys(s3.dataDirectory, copy.bucket, copy.prefix);
      const mainAfter = mainArchive();
      expectThat(copyAfter.length === 0, `${copy.name}'s archive still holds ${copyAfter.length} objects: ${copyAfter.slice(0, 5).join(', ')}`);
      expectThat(mainBefore.every((k) => mainAfter.includes(k)), `${main.name}'s archive lost objects: ${mainBefore.filter((k) => !mainAfter.includes(k)).slice(0, 5).join(', ')}`);
      const asked = api.requests.map((r) => `${r.method} ${r.path} ${r.status}`);
      log(`rehearse:   ${copyBefore.length} objects of ${copy.name} deleted; ${main.name}'s ${mainBefore.length} untouched; the Job asked the API: ${asked.join('; ')}`);
    });
    log(`rehearse: [${elapsed()}] all eight steps passed`);
  } catch (error) {
    log(`rehearse: [${elapsed()}] FAILED at ${current}: ${(error as Error).message}`);
    for (const line of diagnostics(cluster)) log(line);
    throw error;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    kubelet.forgetAll();
    for (const cleanup of cleanups.reverse()) await cleanup();
    const at = Date.now();
    cluster.remove();
    log(`rehearse: [${elapsed()}] removed its pods, volumes, network, images and directory (${((Date.now() - at) / 1000).toFixed(1)} s)`);
  }
}

/** The last lines of every container's log: what a failed step leaves to read. */
function diagnostics(cluster: PodmanCluster): string[] {
  const names = cluster.podman(['ps', '-a', '--format', '{{.Names}} {{.Status}}']).stdout.trim().split('\n').filter((l) => l && !l.includes('-infra '));
  const lines: string[] = [];
  for (const entry of names) {
    const [name] = entry.split(' ');
    lines.push(`rehearse: --- ${entry}`);
    const logs = cluster.podman(['logs', '--tail', '25', name]);
    lines.push(...`${logs.stdout}${logs.stderr}`.trim().split('\n').map((l) => `rehearse: | ${l}`));
  }
  return lines;
}

/**
 * testkit's waitUntil, looking once a second (each look starts a process: podman exec, psql). A
 * look that throws (psql against a server still starting) counts as not yet; a timeout is the
 * step's failure, with the last look's error.
 */
async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  let last: Error | undefined;
  const look = async () => {
    try {
      return await condition();
    } catch (error) {
      last = error as Error;
      return false;
    }
  };
  try {
    await waitUntil(look, what, timeoutMs, 1000);
  } catch (error) {
    throw new StepFailure(`${(error as Error).message}${last ? ` (last: ${last.message})` : ''}`);
  }
}
