/**
 * The WipeOut Job (constructs/wipe-out-job.ts) and the real archiver agree: its rendered command,
 * run from the build with its rendered environment (the storage Secret resolved to test values, as
 * the kubelet would) against s3rver, leaves nothing of this database's archive, touches no other
 * database's archive in the same bucket, and succeeds again on the emptied archive and on one never
 * written (the hook is idempotent).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chart } from 'cdk8s';
import { openStorage } from '../../archiver/src/storage/open';
import type { Storage } from '../../archiver/src/storage/storage';
import { ArchivedPostgres, TerminationPolicy } from '../../constructs';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { KubeObject, containerEnvironment, find, fromBuild, seedProps, synth, testApp } from './fixtures';

/** Objects of one database's archive (and of a backup that never finished). */
const ARCHIVE_KEYS = ['archive.json', 'wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/00000002.history', 'basebackups/base_20261130T020000Z/parts/0001.tar'];

describe('the WipeOut Job and the archiver', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'wipeout-'));
  let server: S3Server;
  let bucket: Storage;
  let objects: KubeObject[];
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['kubedb'] });
    bucket = await openStorage({ kind: 's3', bucket: 'kubedb', endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const chart = new Chart(testApp(), 'test', { namespace: 'demo', disableResourceNameHashes: true });
    new ArchivedPostgres(chart, 'wal-postgres', seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }));
    new ArchivedPostgres(chart, 'never-written', seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }));
    new ArchivedPostgres(chart, 'orders', seedProps());
    objects = synth(chart);
  });
  afterAll(async () => {
    await bucket?.close();
    await server?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  /** Runs the Job `name`'s container as the kubelet would, against the test's S3 server. */
  function runJob(name: string) {
    const container = find(objects, 'Job', name).spec.template.spec.containers[0];
    const env = containerEnvironment(container, { 's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey } }, `${name}-x7k2p`);
    // What differs from a cluster: the endpoint is the test's S3 server (which needs
    // WHEN_REQUIRED checksums); the spool's volume is a scratch directory.
    const local = { PATH: process.env.PATH!, ARCHIVER_S3_ENDPOINT: server.endpoint, ARCHIVER_S3_CHECKSUMS: 'when_required', ARCHIVER_SPOOL: path.join(scratch, name, 'spool') };
    const [node, bundle, ...args] = container.command;
    return spawnSync(fromBuild(node), [fromBuild(bundle), ...args], { env: { ...env, ...local }, encoding: 'utf8', timeout: 60_000 });
  }

  const keys = async () => (await bucket.list('')).map((o) => o.key).sort();

  it('deletes every object of this database\'s archive, and nothing of another database\'s in the same bucket', async () => {
    // GIVEN two archives, and objects whose keys start like this database's location
    const others = [
      ...ARCHIVE_KEYS.map((key) => `kubedb/demo/orders/archive/${key}`),
      ...ARCHIVE_KEYS.map((key) => `kubedb/demo/wal-postgres-copy/archive/${key}`),
      'kubedb/demo/wal-postgres/archive.old/wal/000000010000000000000001',
      'kubedb/demo/wal-postgres/notes.txt',
    ];
    for (const key of [...ARCHIVE_KEYS.map((k) => `kubedb/demo/wal-postgres/archive/${k}`), ...others]) await bucket.put(key, Buffer.from(key));
    // WHEN
    const result = runJob('wal-postgres-wipeout');
    // THEN
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('deleted');
    expect(await keys()).toStrictEqual(others.sort());
  });

  it('succeeds again on the emptied archive (Argo CD may run a hook twice)', async () => {
    const before = await keys();
    const result = runJob('wal-postgres-wipeout');
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(await keys()).toStrictEqual(before);
  });

  it('succeeds on an archive that was never written', async () => {
    const before = await keys();
    const result = runJob('never-written-wipeout');
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(0);
    expect(await keys()).toStrictEqual(before);
  });
});
