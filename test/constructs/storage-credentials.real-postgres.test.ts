/**
 * Who holds the storage credentials (README: Who holds the storage credentials): the archiver
 * sidecar only, while PostgreSQL runs. The postgres container has them for start.sh's bootstrap
 * and backup-fetch, and start.sh unsets them before it starts PostgreSQL, so that no superuser
 * session can read them (COPY ... FROM PROGRAM 'env') and delete the archive with them; its
 * archive_command and restore_command go through the sidecar, and fail (PostgreSQL retries,
 * keeping the WAL) while the sidecar is down.
 *
 * The rendered objects first; then pod 0 as rendered (rendered-pod.ts: real PostgreSQL 15, the
 * rendered start.sh and sidecar, s3rver), in order: each spec starts where the previous left it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { STORAGE_CREDENTIAL_ENV, STORAGE_CREDENTIAL_ENV_OF } from '../../contract';
import { ArchiveStorage } from '../../constructs';
import { logLines } from '../../testkit/archiver';
import { container, find, seedProps, synthDatabase } from './fixtures';
import { RenderedPod, s3ServerAndPods, sleep } from './rendered-pod';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-credentials-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const storage = () => ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: 'kubedb' });
const { objects } = synthDatabase(seedProps({ archiver: { storage: storage() } }));
const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
const startScript = find(objects, 'ConfigMap', 'wal-postgres-config').data!['start.sh'];

/** The names of a container's variables that come from the storage Secret. */
function storageSecretEnv(name: string): string[] {
  return (container(statefulSet, name).env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef?.name === 's3-secret').map((e: any) => e.name).sort();
}

describe('the rendered pod gives the storage credentials to the archiver sidecar, and to start.sh only until it starts PostgreSQL', () => {
  it('the sidecar has the storage Secret\'s keys; the postgres container exactly the ones start.sh unsets', () => {
    expect(storageSecretEnv('archiver')).toEqual([...STORAGE_CREDENTIAL_ENV_OF.s3].sort());
    expect(storageSecretEnv('postgres')).toEqual([...STORAGE_CREDENTIAL_ENV_OF.s3].sort());
    expect(startScript).toMatch(new RegExp(`forget_storage_credentials\\(\\) \\{\\n.*\\n  unset ${STORAGE_CREDENTIAL_ENV_OF.s3.join(' ')}\\n\\}`));
    expect(STORAGE_CREDENTIAL_ENV).toEqual([...STORAGE_CREDENTIAL_ENV_OF.s3, ...STORAGE_CREDENTIAL_ENV_OF.gcs]);
    // Kept only by a server restored from another database's archive (its recovery reads that archive with calls of its own).
    expect(startScript.match(/keep_storage_credentials=yes/g)).toHaveLength(1);
    expect(startScript).toContain('if [ "$outcome" = restored ] && [ -n "${ARCHIVER_BOOTSTRAP_SOURCE:-}" ]; then keep_storage_credentials=yes; fi');
  });

  it('the references are optional: a Secret without a key does not keep the kubelet from starting the containers (the sidecar then reports it: test/archiver/daemon/archive-opener.test.ts)', () => {
    for (const name of ['archiver', 'postgres']) {
      const refs = (container(statefulSet, name).env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef?.name === 's3-secret');
      expect(refs.map((e: any) => e.valueFrom.secretKeyRef.optional)).toStrictEqual([true, true]);
    }
  });

  it('start.sh unsets them right before each start of PostgreSQL, and archive_command never works alone (ARCHIVER_DAEMON=external)', () => {
    const lines = startScript.split('\n').map((l: string) => l.trim());
    const starts = lines.flatMap((l: string, i: number) => (/^exec (docker-entrypoint\.sh )?postgres /.test(l) ? [i] : []));
    expect(starts.length).toBe(2);
    for (const i of starts) expect(lines[i - 1]).toBe('forget_storage_credentials');
    expect(container(statefulSet, 'postgres').env).toContainEqual({ name: 'ARCHIVER_DAEMON', value: 'external' });
  });
});

describe('pod 0 with the credentials in the sidecar only (rendered start.sh and sidecar, PostgreSQL 15, s3rver)', () => {
  const { pods, server: s3 } = s3ServerAndPods(scratch);
  let pod0: RenderedPod | undefined;
  const need = (): RenderedPod => {
    if (!pod0) throw new Error('pod 0 is missing: the first spec of this describe failed');
    return pod0;
  };

  it('1. bootstraps an empty volume with them, archives through the sidecar, and no superuser session can read them', async () => {
    const pod = await pods.make(objects, 'wal-postgres', 0);
    await pod.start();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    pod0 = pod;
    expect(pod.log()).toContain('start: bootstrap: initdb');
    pod.sql('create table t(id int, pad text); insert into t select g, md5(g::text) from generate_series(1, 1000) g');
    await pod.switchAndArchive();

    // What a superuser can see of the server's environment.
    const env = pod.sql("create temp table environment(line text); copy environment from program 'env'; select string_agg(line, E'\\n') from environment");
    expect(env).toContain('ARCHIVER_REPOSITORY=');
    for (const name of STORAGE_CREDENTIAL_ENV) expect(env).not.toContain(`${name}=`);
    expect(env).not.toContain(s3().secretAccessKey);
  }, 180_000);

  it('2. with the sidecar down, archive_command fails non-zero and the segment waits in pg_wal; once the sidecar is back it is archived, PostgreSQL untouched', async () => {
    const pod = need();
    // The at-ready base backup first: its start switches WAL segments, and a segment it made
    // ready just as the sidecar stops would be the one PostgreSQL retries (in order) instead of
    // the segment this spec switches to (a CI run met exactly that race).
    await pod.waitForBackup(() => true);
    const postmaster = pod.sql('select pg_postmaster_start_time()');
    const failedBefore = Number(pod.sql('select failed_count from pg_stat_archiver'));
    await pod.stopSidecar();

    pod.sql('insert into t select g, md5(g::text) from generate_series(1001, 2000) g');
    const segment = pod.sql('select pg_walfile_name(pg_switch_wal())');
    const deadline = Date.now() + 30_000;
    // Down until PostgreSQL has given up its three attempts in a row: the longest wait after.
    while (Number(pod.sql('select failed_count from pg_stat_archiver')) < failedBefore + 3 && Date.now() < deadline) await sleep(100);
    expect(Number(pod.sql('select failed_count from pg_stat_archiver'))).toBeGreaterThanOrEqual(failedBefore + 3);
    expect(pod.sql('select last_failed_wal from pg_stat_archiver')).toBe(segment);
    expect(pod.readyFiles()).toContain(segment);
    expect(pod.log()).toMatch(/error=SidecarUnavailableError/);
    expect(pod.log()).toMatch(new RegExp(`archive command failed with exit code 1[\\s\\S]*${segment}`));

    // The kubelet restarts the sidecar; PostgreSQL's own retry archives the segment. After three
    // failed attempts its archiver sleeps until the next segment is ready or 60 s have passed;
    // the sidecar, once back, pushes what pg_wal/archive_status marks ready ahead of that retry.
    const back = Date.now();
    await pod.startSidecar();
    const archivedBy = Date.now() + 90_000;
    while (!fs.existsSync(path.join(pod.pgdata, 'pg_wal/archive_status', `${segment}.done`)) && Date.now() < archivedBy) await sleep(100);
    const seconds = (Date.now() - back) / 1000;
    expect(fs.existsSync(path.join(pod.pgdata, 'pg_wal/archive_status', `${segment}.done`)), `${segment} archived after the sidecar came back`).toBe(true);
    console.log(`storage-credentials: ${segment} archived ${seconds.toFixed(1)} s after the sidecar came back`);
    expect(pod.sql('select pg_postmaster_start_time()')).toBe(postmaster);
  }, 180_000);

  it('3. restore_command goes through the sidecar: the volume lost, pod 0 restores the newest backup with the credentials start.sh has, and replays the archived WAL through the sidecar', async () => {
    const pod = need();
    await pod.waitForBackup(() => true);
    pod.sql("insert into t select g, 'after the backup' from generate_series(2001, 3000) g");
    const lastArchived = await pod.switchAndArchive();
    const expected = pod.sql('select count(*) from t');
    await pod.stop();
    pod.deleteVolume();
    const from = pod.log().length;
    const sidecarFrom = pod.archiverLog().length;
    await pod.start();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    const log = pod.log().slice(from);
    expect(log).toContain('start: bootstrap: restored');
    expect(log).toContain(`restored log file "${lastArchived}" from archive`);
    expect(pod.sql('select count(*) from t')).toBe(expected);
    // No restore_command call worked alone: none could (no credentials).
    expect(log).not.toContain('working in this process');
    expect(logLines(pod.archiverLog().slice(sidecarFrom)).filter((l) => l.level === 'error')).toEqual([]);
  }, 240_000);
});
