/**
 * The archiver containers (constructs/archiver-container-factory.ts) and the real archiver agree.
 * The contract between the YAML and the archiver: the environment, paths and commands the
 * constructs render are the ones the archiver reads. The pod's environment is taken from the
 * synthesized StatefulSet (Secret references resolved to test values, as the kubelet would), and
 * the archive_command from the rendered postgresql.conf is run as PostgreSQL runs it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8s } from 'cdk8s-plus-27';
import { ARCHIVER_IMAGE_HOME, ARCHIVER_INSTALL_DIR, archiverImageCommand } from '../../contract';
import { openStorage } from '../../archiver/src/storage/open';
import { ArchiveStorage } from '../../constructs';
import { LAUNCHER, fakeDataDirectory, makeSegment, startSidecar, stopSidecar, waitForFile } from '../../testkit/archiver';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { container, containerEnvironment, databaseChart, find, fromBuild, inInstallDir, podEnvironment, seedProps, sidecarCommand, synth, synthDatabase } from './fixtures';

describe('the YAML and the archiver agree', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'yaml-contract-'));
  let server: S3Server;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['kubedb'] });
  });
  afterAll(async () => {
    await server?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('the init container runs the archiver image\'s install command on files the build ships', () => {
    const init = find(synthDatabase(seedProps()).objects, 'StatefulSet', 'wal-postgres').spec.template.spec.initContainers[0];
    const [node, bundle, command, target] = init.command;
    expect(command).toBe('install');
    expect(target).toBe(ARCHIVER_INSTALL_DIR);
    for (const file of [node, bundle]) {
      expect(file.startsWith(`${ARCHIVER_IMAGE_HOME}/`)).toBe(true);
      expect(fs.existsSync(fromBuild(file))).toBe(true);
    }
    const installed = path.join(scratch, 'installed');
    const result = spawnSync(fromBuild(node), [fromBuild(bundle), 'install', installed], { encoding: 'utf8' });
    expect(result.stderr).toContain('installed');
    expect(result.status).toBe(0);
    const version = spawnSync(path.join(installed, 'bin/archiver'), ['--version'], { encoding: 'utf8' });
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('PostgreSQL\'s archive_command, run with the pod\'s S3 environment, archives to {bucket}/{prefix}/kubedb/{namespace}/{name}/archive through the archiver sidecar', async () => {
    const { objects } = synthDatabase(seedProps({
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: 'kubedb', prefix: 'team-a' }) },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const secrets = {
      's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
      'wal-postgres-auth': { password: 'test-password' },
    };
    const env = podEnvironment(statefulSet, secrets);
    const sidecarEnv = podEnvironment(statefulSet, secrets, 'archiver');
    // What differs from a cluster: the endpoint is the test's S3 server, which needs
    // WHEN_REQUIRED checksums; the spool lives in the scratch directory.
    expect(env.ARCHIVER_S3_ENDPOINT).toBe('https://s3.example.com');
    const local = { PATH: process.env.PATH!, ARCHIVER_S3_ENDPOINT: server.endpoint, ARCHIVER_S3_CHECKSUMS: 'when_required', ARCHIVER_SPOOL: path.join(scratch, 's3/spool') };
    const run = { ...env, ...local };
    const pg = fakeDataDirectory(path.join(scratch, 's3'));

    // The sidecar, with its rendered command and environment.
    const sidecar = await startSidecar(sidecarCommand(statefulSet), { ...sidecarEnv, ...local }, { logFile: path.join(scratch, 's3/sidecar.log') });
    const conf = find(objects, 'ConfigMap', 'wal-postgres-config').data!['postgresql.conf'];
    const archiveCommand = /^archive_command = '(.*)'$/m.exec(conf)![1];
    pg.addReady('000000010000000000000001', makeSegment(42n, 1, 1 << 20));
    pg.addReady('000000010000000000000002', makeSegment(42n, 2, 1 << 20));
    try {
      const result = spawnSync('sh', ['-c', inInstallDir(archiveCommand).replace('%p', 'pg_wal/000000010000000000000001')], { cwd: pg.dataDir, env: run, encoding: 'utf8' });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      // The sidecar pushes the next ready segment ahead; the call for it is answered from the spool.
      const marker = path.join(local.ARCHIVER_SPOOL, 'pushed/000000010000000000000002');
      expect(await waitForFile(marker)).toBe(true);
      const second = spawnSync('sh', ['-c', inInstallDir(archiveCommand).replace('%p', 'pg_wal/000000010000000000000002')], { cwd: pg.dataDir, env: run, encoding: 'utf8' });
      expect(second.status).toBe(0);
      expect(fs.readFileSync(path.join(scratch, 's3/sidecar.log'), 'utf8')).toMatch(/msg=pushed wal=000000010000000000000002 .*ahead=true/);
    } finally {
      await stopSidecar(sidecar);
    }
    const bucket = await openStorage({ kind: 's3', bucket: 'kubedb', endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' });
    try {
      expect((await bucket.list('')).map((o) => o.key).sort()).toStrictEqual([
        'team-a/kubedb/demo/wal-postgres/archive/archive.json',
        'team-a/kubedb/demo/wal-postgres/archive/wal/000000010000000000000001',
        'team-a/kubedb/demo/wal-postgres/archive/wal/000000010000000000000002',
      ]);
    } finally {
      await bucket.close();
    }
  });

  it('the sidecar and the PostgreSQL container give the archiver the same archive settings and data path', () => {
    const statefulSet = find(synthDatabase(seedProps()).objects, 'StatefulSet', 'wal-postgres');
    const secrets = { 's3-secret': { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' }, 'wal-postgres-auth': { password: 'p' } };
    const check = (containerName: string) => {
      const result = spawnSync(LAUNCHER, ['check'], { env: { PATH: process.env.PATH!, ...podEnvironment(statefulSet, secrets, containerName) }, encoding: 'utf8' });
      expect(result.status).toBe(0);
      return JSON.parse(result.stdout).config;
    };
    const [postgres, sidecar] = [check('postgres'), check('archiver')];
    expect(postgres.daemon).toBe('external');
    expect(sidecar.daemonIdleSeconds).toBe(0);
    // The sidecar serves only calls for its archive location (the spool's owner), from one spool.
    expect(sidecar.spoolOwner).toBe(postgres.spoolOwner);
    expect(sidecar.spoolOwner).toMatch(/^s3:\/\/kubedb\/kubedb\/demo\/wal-postgres\/archive\|/);
    expect(sidecar.spool).toBe(postgres.spool);
    expect(sidecar.storage).toStrictEqual(postgres.storage);
    const dataMount = (name: string) => container(statefulSet, name).volumeMounts.find((m: any) => m.name === 'data').mountPath;
    expect(dataMount('archiver')).toBe(dataMount('postgres'));
  });

  it('a Job\'s archiver container from archiverContainers gives the archiver the sidecar\'s configuration', () => {
    const { db, chart } = databaseChart(seedProps());
    const job = new k8s.KubeJob(chart, 'Check', {
      metadata: { name: 'wal-postgres-check' },
      spec: { template: { spec: { restartPolicy: 'Never', containers: [db.archiverContainers.container({ name: 'check', command: archiverImageCommand('check') })] } } },
    });
    const objects = synth(chart);
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    const jobContainer = find(objects, 'Job', job.name).spec.template.spec.containers[0];
    expect(jobContainer.command.slice(2)).toStrictEqual(['check']);
    const secrets = { 's3-secret': { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' } };
    const check = (env: Record<string, string>) => {
      const result = spawnSync(LAUNCHER, ['check'], { env: { PATH: process.env.PATH!, ...env }, encoding: 'utf8' });
      expect(result.status).toBe(0);
      return JSON.parse(result.stdout).config;
    };
    const sidecar = check(podEnvironment(statefulSet, secrets, 'archiver'));
    const fromJob = check(containerEnvironment(jobContainer, secrets, 'wal-postgres-check-x'));
    expect(fromJob.spoolOwner).toBe(sidecar.spoolOwner);
    expect(fromJob.storage).toStrictEqual(sidecar.storage);
    expect(fromJob.spool).toBe(sidecar.spool);
  });

  it('the archiver reads the pod\'s GCS environment: bucket, prefix, project, and the key as the sidecar\'s mounted file or as the postgres container\'s variable (never shown)', () => {
    const statefulSet = find(synthDatabase(seedProps({
      archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 'gcs-secret', bucket: 'kubedb' }) },
    })).objects, 'StatefulSet', 'wal-postgres');
    const privateKey = '-----BEGIN PRIVATE KEY-----\nMIIE-made-up\n-----END PRIVATE KEY-----\n';
    const secrets = {
      'gcs-secret': { GOOGLE_PROJECT_ID: 'my-project', GOOGLE_SERVICE_ACCOUNT_JSON_KEY: JSON.stringify({ client_email: 'archiver@my-project.iam.gserviceaccount.com', private_key: privateKey }) },
      'wal-postgres-auth': { password: 'x' },
    };
    const check = (env: Record<string, string>) => {
      const result = spawnSync(LAUNCHER, ['check'], { env: { PATH: process.env.PATH!, ...env }, encoding: 'utf8' });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).not.toContain('PRIVATE KEY');
      return JSON.parse(result.stdout).config;
    };
    const where = { kind: 'gcs', bucket: 'kubedb', prefix: 'kubedb/demo/wal-postgres/archive', projectId: 'my-project' };
    const sidecarEnv = podEnvironment(statefulSet, secrets, 'archiver');
    const mount = container(statefulSet, 'archiver').volumeMounts.find((m: any) => m.name === 'gcs-key');
    expect(sidecarEnv.GOOGLE_APPLICATION_CREDENTIALS.startsWith(`${mount.mountPath}/`)).toBe(true);
    expect(check(sidecarEnv)).toMatchObject({ storage: { ...where, keyFilename: sidecarEnv.GOOGLE_APPLICATION_CREDENTIALS }, spool: '/var/lib/postgresql/data/archiver-spool' });
    const postgresEnv = podEnvironment(statefulSet, secrets);
    expect(postgresEnv.GOOGLE_APPLICATION_CREDENTIALS).toBeUndefined();
    expect(check(postgresEnv)).toMatchObject({
      storage: { ...where, credentials: '(the key of archiver@my-project.iam.gserviceaccount.com, from GOOGLE_SERVICE_ACCOUNT_JSON_KEY)' },
      spool: '/var/lib/postgresql/data/archiver-spool',
    });
  });

  it('the restore_command names the same launcher', () => {
    const conf = find(synthDatabase(seedProps()).objects, 'ConfigMap', 'wal-postgres-config').data!['postgresql.conf'];
    const restoreCommand = /^restore_command = '(.*)'$/m.exec(conf)![1];
    const help = spawnSync('sh', ['-c', `${inInstallDir(restoreCommand).replace(' %f %p', '')} --help`], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: archiver wal-fetch <name> <destination>');
  });
});
