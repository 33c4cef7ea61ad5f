/**
 * The start-up script of the ConfigMap, run by real bash: the role from the pod ordinal, and the
 * bounded wait for the archiver sidecar. PostgreSQL itself is replaced by stubs on PATH that print
 * how they were called (the official image's `docker-entrypoint.sh` and `postgres` cannot run
 * here); the spool path is moved into a scratch directory.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARCHIVER_INSTALL_DIR } from '../../contract';
import { ARCHIVER_SPOOL_DIR } from '../../constructs/pod-layout';
import { find, seedProps, synthDatabase } from './fixtures';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'start-script-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const script = find(synthDatabase(seedProps()).objects, 'ConfigMap', 'wal-postgres-config').data!['start.sh'];

/**
 * Runs start.sh as pod `podName` with the spool at `spool`; resolves with its output and duration.
 * The archiver's launcher is a stub too: it prints its arguments to stderr and `bootstrap` on
 * stdout (`initdb` unless told otherwise), or fails.
 */
function runStartScript(
  podName: string,
  spool: string,
  options: { bootstrap?: { stdout: string; status: number }; pgdata?: string } = {},
): Promise<{ status: number | null; stdout: string; stderr: string; seconds: number }> {
  const bin = path.join(scratch, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  for (const stub of ['docker-entrypoint.sh', 'postgres']) {
    fs.writeFileSync(path.join(bin, stub), `#!/bin/sh\necho "${stub} $*"\n`, { mode: 0o755 });
  }
  const install = fs.mkdtempSync(path.join(scratch, 'archiver-'));
  fs.mkdirSync(path.join(install, 'bin'));
  const bootstrap = options.bootstrap ?? { stdout: 'initdb', status: 0 };
  fs.writeFileSync(path.join(install, 'bin', 'archiver'), `#!/bin/sh\necho "archiver $*" >&2\necho "${bootstrap.stdout}"\nexit ${bootstrap.status}\n`, { mode: 0o755 });
  const file = path.join(scratch, `start-${podName}.sh`);
  fs.writeFileSync(file, script.split(ARCHIVER_SPOOL_DIR).join(spool).split(ARCHIVER_INSTALL_DIR).join(install));
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('bash', [file], { env: { PATH: `${bin}:${process.env.PATH}`, POD_NAME: podName, PGDATA: options.pgdata ?? path.join(scratch, 'pgdata') } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

/** A spool whose daemon.port answers, as a live sidecar's does. */
async function liveSpool(): Promise<{ spool: string; close: () => void }> {
  const spool = fs.mkdtempSync(path.join(scratch, 'spool-'));
  const sidecar = net.createServer((socket) => socket.end());
  await new Promise<void>((resolve) => sidecar.listen({ host: '127.0.0.1', port: 0 }, resolve));
  fs.writeFileSync(path.join(spool, 'daemon.port'), `${(sidecar.address() as net.AddressInfo).port} ${'0'.repeat(32)}\n`);
  return { spool, close: () => sidecar.close() };
}

describe('the start-up script', () => {
  it('is valid bash', async () => {
    const file = path.join(scratch, 'syntax.sh');
    fs.writeFileSync(file, script);
    const status = await new Promise<number | null>((resolve) => spawn('bash', ['-n', file]).on('close', resolve));
    expect(status).toBe(0);
  });

  it('starts pod 0 as the primary through the image\'s entrypoint at once when the archiver sidecar answers', async () => {
    const spool = path.join(scratch, 'spool-live');
    fs.mkdirSync(spool);
    const sidecar = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => sidecar.listen({ host: '127.0.0.1', port: 0 }, resolve));
    fs.writeFileSync(path.join(spool, 'daemon.port'), `${(sidecar.address() as net.AddressInfo).port} ${'0'.repeat(32)}\n`);
    try {
      const result = await runStartScript('wal-postgres-0', spool);
      expect(result.stderr).toBe(`archiver bootstrap ${path.join(scratch, 'pgdata')}\n`);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe('start: wal-postgres-0 is the primary\nstart: bootstrap: initdb\ndocker-entrypoint.sh postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
      expect(result.seconds).toBeLessThan(3);
    } finally {
      sidecar.close();
    }
  });

  it('waits for the sidecar at most about ten seconds, then starts PostgreSQL anyway (a dead port file counts for nothing)', async () => {
    const spool = path.join(scratch, 'spool-dead');
    fs.mkdirSync(spool);
    // A port nothing listens on: taken, then released.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    fs.writeFileSync(path.join(spool, 'daemon.port'), `${deadPort} ${'0'.repeat(32)}\n`);
    const result = await runStartScript('wal-postgres-0', spool);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('docker-entrypoint.sh postgres');
    expect(result.seconds).toBeGreaterThanOrEqual(9);
    expect(result.seconds).toBeLessThan(20);
  }, 30_000);

  it('starts a standby without the recovery settings its clone copied from pod 0 (a bootstrap\'s target would make it promote itself), keeping every other setting', async () => {
    const { spool, close } = await liveSpool();
    const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
    fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
    // pod 0's postgresql.auto.conf after `archiver bootstrap` from another database's archive, then ALTER SYSTEM.
    fs.writeFileSync(
      path.join(pgdata, 'postgresql.auto.conf'),
      [
        '# Do not edit this file manually!',
        '# It will be overwritten by the ALTER SYSTEM command.',
        '',
        '# Recovery settings written by archiver backup-fetch (backup base_000000020000000000000005, 2026-11-30T10:00:00.000Z).',
        "restore_command = 'ARCHIVER_REPOSITORY='s3://kubedb/kubedb/demo/source/archive' ARCHIVER_DAEMON=off /opt/archiver/bin/archiver wal-fetch %f %p'",
        "recovery_target = ''",
        "recovery_target_lsn = ''",
        "recovery_target_time = '2026-11-30T10:00:00Z'",
        'recovery_target_inclusive = on',
        "recovery_target_timeline = 'latest'",
        "recovery_target_action = 'promote'",
        "work_mem = '8MB'",
        '  restore_command = \'x\'',
        "log_min_duration_statement = '1s'",
        '',
      ].join('\n'),
    );
    const result = await runStartScript('wal-postgres-1', spool, { pgdata }).finally(close);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('start: wal-postgres-1 is a standby of wal-postgres-0.wal-postgres-pods\npostgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
    expect(fs.readFileSync(path.join(pgdata, 'postgresql.auto.conf'), 'utf8')).toBe(
      [
        '# Do not edit this file manually!',
        '# It will be overwritten by the ALTER SYSTEM command.',
        '',
        '# Recovery settings written by archiver backup-fetch (backup base_000000020000000000000005, 2026-11-30T10:00:00.000Z).',
        "work_mem = '8MB'",
        "log_min_duration_statement = '1s'",
        '',
      ].join('\n'),
    );
    expect(fs.existsSync(path.join(pgdata, 'standby.signal'))).toBe(true);
  });

  describe('pod 0 on an empty volume asks the archiver first', () => {
    it('restored: the server starts on the restored directory through the entrypoint', async () => {
      const { spool, close } = await liveSpool();
      try {
        const result = await runStartScript('wal-postgres-0', spool, { bootstrap: { stdout: 'restored', status: 0 } });
        expect(result.status).toBe(0);
        expect(result.stdout).toBe('start: wal-postgres-0 is the primary\nstart: bootstrap: restored\ndocker-entrypoint.sh postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
      } finally {
        close();
      }
    });

    it('refused: the container stops (non-zero) and never runs initdb', async () => {
      const { spool, close } = await liveSpool();
      try {
        const result = await runStartScript('wal-postgres-0', spool, { bootstrap: { stdout: '', status: 1 } });
        expect(result.status).toBe(1);
        expect(result.stdout).not.toContain('docker-entrypoint.sh');
        expect(result.stdout).not.toContain('postgres -c');
      } finally {
        close();
      }
    });

    it('a volume that holds a database: no bootstrap', async () => {
      const { spool, close } = await liveSpool();
      const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
      fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
      try {
        const result = await runStartScript('wal-postgres-0', spool, { bootstrap: { stdout: 'should not run', status: 1 }, pgdata });
        expect(result.status).toBe(0);
        expect(result.stderr).toBe('');
        expect(result.stdout).toBe('start: wal-postgres-0 is the primary\ndocker-entrypoint.sh postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
      } finally {
        close();
      }
    });
  });
});
