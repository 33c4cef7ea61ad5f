/**
 * The archiver image, built with buildah from archiver/Containerfile, pushed to a registry, and
 * run with podman (no Docker engine here): its init-container job copies a working archiver into a volume, as the
 * StatefulSet's init container does before PostgreSQL starts; its sidecar job serves the calls
 * PostgreSQL makes in the other container of the pod.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVER_INSTALL_DIR, archiverDaemonCommand, archiverInstallCommand } from '../../contract';
import { ROOT, fakeDataDirectory, makeSegment, waitForFile } from '../../testkit/archiver';
import { CONTAINERS_ENV as env, ContainerStorage } from '../../testkit/containers';
import { freePort } from '../../testkit/ports';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'image-'));
let image: string;

beforeAll(() => {
  image = execFileSync(path.join(ROOT, 'archiver/scripts/build-image.sh'), { env: { ...env, ARCHIVER_IMAGE: 'localhost/pg-wal-archiver:test' }, encoding: 'utf8' }).trim().split('\n').pop()!;
}, 180_000);
afterAll(() => {
  spawnSync('podman', ['rmi', '-f', image], { env });
  fs.rmSync(scratch, { recursive: true, force: true });
});

function podman(args: string[]) {
  return ContainerStorage.SHARED.run(args);
}

describe('the archiver image', () => {
  it('runs the archiver as its entrypoint, as uid 999', () => {
    expect(image).toBe('localhost/pg-wal-archiver:test');
    const version = podman([image, '--version']);
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    const user = spawnSync('podman', ['image', 'inspect', '--format', '{{.Config.User}}', image], { env, encoding: 'utf8' });
    expect(user.stdout.trim()).toBe('999:999');
  });

  it('is pushed with --push to the registry its reference names, and the pinned reference printed is what the registry serves', async () => {
    const port = await freePort();
    const dir = path.join(scratch, 'registry');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
    // Debian's docker-registry (the distribution registry), served over plain HTTP on 127.0.0.1.
    const registry = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: 'ignore' });
    const reference = `127.0.0.1:${port}/team-a/pg-wal-archiver:pushed`;
    try {
      const deadline = Date.now() + 10_000;
      while (!(await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false))) {
        if (Date.now() > deadline) throw new Error('the registry did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      const pushed = spawnSync(path.join(ROOT, 'archiver/scripts/build-image.sh'), ['--push'], {
        env: { ...env, ARCHIVER_IMAGE: reference, ARCHIVER_PUSH_TLS_VERIFY: 'false' },
        encoding: 'utf8',
        timeout: 170_000,
      });
      expect(pushed.status, pushed.stderr).toBe(0);
      const pinned = pushed.stdout.trim().split('\n').pop()!;
      expect(pinned).toMatch(new RegExp(`^${reference.replace(/[.]/g, '\\.')}@sha256:[0-9a-f]{64}$`));
      expect(pushed.stderr).toContain(`build-image: pushed ${reference}; pin it in app.ts:`);
      // The build says how large the image is.
      expect(pushed.stderr).toMatch(new RegExp(`build-image: ${reference.replace(/[.]/g, '\\.')} is \\d+(\\.\\d+)? MB`));
      const manifest = await fetch(`http://127.0.0.1:${port}/v2/team-a/pg-wal-archiver/manifests/pushed`, {
        method: 'HEAD',
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
      });
      expect(manifest.status).toBe(200);
      expect(manifest.headers.get('docker-content-digest')).toBe(pinned.split('@')[1]);
    } finally {
      registry.kill();
      spawnSync('buildah', ['--storage-driver', 'overlay', 'rmi', reference], { env });
    }
  }, 180_000);

  it.each(['localhost/pg-wal-archiver:0.1.0', 'pg-wal-archiver:0.1.0'])('refuses --push for %j, which names no registry', (reference) => {
    const refused = spawnSync(path.join(ROOT, 'archiver/scripts/build-image.sh'), ['--push'], { env: { ...env, ARCHIVER_IMAGE: reference }, encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toBe(`build-image: --push needs ARCHIVER_IMAGE to name the registry the nodes pull from, e.g. ghcr.io/your-org/pg-wal-archiver:0.1.0 (got ${reference})\n`);
  });

  it('installs, with the init container\'s exact command, an archiver that works in another container\'s filesystem', () => {
    const volume = path.join(scratch, 'volume');
    fs.mkdirSync(volume, { mode: 0o777 });
    fs.chmodSync(volume, 0o777);
    const [entry, ...args] = archiverInstallCommand();
    const installed = podman(['-v', `${volume}:${ARCHIVER_INSTALL_DIR}`, '--entrypoint', entry, image, ...args]);
    expect(installed.stderr).toContain(`installed /archiver into ${ARCHIVER_INSTALL_DIR}`);
    expect(installed.status).toBe(0);

    // The installed tree runs outside the image (here: on this Debian 12 host, like the Debian-based postgres image).
    const launcher = path.join(volume, 'bin/archiver');
    const base = path.join(scratch, 'pg');
    const pg = fakeDataDirectory(base);
    const segment = makeSegment(99n, 3, 1 << 20);
    pg.addReady('000000010000000000000001', segment);
    const archiverEnv = { PATH: process.env.PATH!, ARCHIVER_REPOSITORY: `file://${base}/repo`, ARCHIVER_SPOOL: `${base}/spool`, ARCHIVER_DAEMON: 'off', ARCHIVER_COMPRESSION: 'zstd' };
    const push = spawnSync(launcher, ['wal-push', 'pg_wal/000000010000000000000001'], { cwd: pg.dataDir, env: archiverEnv, encoding: 'utf8' });
    expect(push.status).toBe(0);
    const fetch = spawnSync(launcher, ['wal-fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG'], { cwd: pg.dataDir, env: archiverEnv, encoding: 'utf8' });
    expect(fetch.status).toBe(0);
    expect(fs.readFileSync(path.join(pg.walDir, 'RECOVERYXLOG')).equals(segment)).toBe(true);
  });

  it('runs the background archiver with the sidecar\'s exact command; the other container\'s calls reach it over the shared loopback', async () => {
    const volume = path.join(scratch, 'sidecar-archiver');
    fs.mkdirSync(volume, { mode: 0o777 });
    fs.chmodSync(volume, 0o777);
    const [installEntry, ...installArgs] = archiverInstallCommand();
    expect(podman(['-v', `${volume}:${ARCHIVER_INSTALL_DIR}`, '--entrypoint', installEntry, image, ...installArgs]).status).toBe(0);

    // The data volume, mounted at the same path in both containers (as the pod does).
    const base = path.join(scratch, 'sidecar-data');
    const pg = fakeDataDirectory(base);
    fs.mkdirSync(path.join(base, 'repo'));
    for (const dir of [base, pg.dataDir, pg.walDir, path.join(pg.walDir, 'archive_status'), path.join(base, 'repo')]) fs.chmodSync(dir, 0o777);
    const shared = { ARCHIVER_REPOSITORY: `file://${base}/repo`, ARCHIVER_SPOOL: `${base}/spool` };
    const [entry, ...args] = archiverDaemonCommand();
    const sidecarName = `archiver-sidecar-test-${process.pid}`;
    // A pod's containers share one network namespace: the host's stands in for it here.
    const started = spawnSync(
      'podman',
      ['run', '-d', '--rm', '--network', 'host', '--pull=never', '--name', sidecarName, '-v', `${base}:${base}`,
        ...Object.entries({ ...shared, ARCHIVER_DAEMON_IDLE_SECONDS: '0' }).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
        '--entrypoint', entry, image, ...args],
      { env, encoding: 'utf8' },
    );
    expect(started.stderr).toBe('');
    expect(started.status).toBe(0);
    try {
      const port = path.join(base, 'spool/daemon.port');
      expect(await waitForFile(port)).toBe(true);

      const first = pg.addReady('000000010000000000000001', makeSegment(99n, 1, 1 << 20));
      pg.addReady('000000010000000000000002', makeSegment(99n, 2, 1 << 20));
      const callEnv = { PATH: process.env.PATH!, ...shared, ARCHIVER_DAEMON: 'external' };
      const push = spawnSync(path.join(volume, 'bin/archiver'), ['wal-push', path.relative(pg.dataDir, first)], { cwd: pg.dataDir, env: callEnv, encoding: 'utf8' });
      expect(push.stderr).toBe('');
      expect(push.status).toBe(0);
      // The sidecar pushed the next ready segment ahead: the launcher will answer for it alone.
      const marker = path.join(base, 'spool/pushed/000000010000000000000002');
      expect(await waitForFile(marker)).toBe(true);
      const logs = spawnSync('podman', ['logs', sidecarName], { env, encoding: 'utf8' });
      expect(logs.stderr + logs.stdout).toMatch(/msg=pushed wal=000000010000000000000002 .*ahead=true/);
    } finally {
      spawnSync('podman', ['stop', '-t', '10', sidecarName], { env });
    }
  }, 120_000);
});
