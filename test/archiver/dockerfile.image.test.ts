/**
 * The archiver image as users build it: archiver/Dockerfile, multi-stage, from the repository's
 * root. Built here with `buildah bud`.
 *
 * STAND-IN BASE IMAGE: no container registry is reachable from this machine, so the Dockerfile's
 * `FROM docker.io/library/node:20-bookworm` cannot be pulled. This test first builds a local image
 * of that very name from this machine's files (testkit/node-image-standin.sh: its Node 20 and npm,
 * g++, make, python3 and the libraries they need, all Debian 12 like the official image), in a
 * storage root of its own that it removes afterwards, also when it fails. What it proves: the
 * Dockerfile's steps (npm ci with the native zstd module compiled, the project's build, the run
 * stage assembled from `ldd`, the smoke test) work on a Debian 12 Node 20 base, and the image runs
 * as the pod runs it. What it cannot: that the official image, pulled, behaves the same (Node lives
 * under /usr/local there too, but its exact files differ). npm ci reaches the npm registry.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVER_IMAGE_HOME, ARCHIVER_INSTALL_DIR, ARCHIVER_TREE, archiverDaemonCommand, archiverInstallCommand } from '../../contract';
import { ROOT, waitForFile } from '../../testkit/archiver';
import { ContainerStorage } from '../../testkit/containers';

const IMAGE = 'localhost/pg-wal-archiver:dockerfile-test';
const VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'archiver/package.json'), 'utf8')).version as string;
const LABELS = { source: 'https://github.com/your-org/pg-wal-gitops', revision: '0123456789abcdef0123456789abcdef01234567' };
/** What the image may weigh: the image build-image.sh assembles from this machine weighs 109 MB. */
const SIZE_BUDGET_BYTES = 100_000_000;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'dockerfile-image-'));
const storage = ContainerStorage.own();
const timings: Record<string, number> = {};

function timed<T>(name: string, work: () => T): T {
  const start = Date.now();
  try {
    return work();
  } finally {
    timings[name] = (Date.now() - start) / 1000;
  }
}

function ok(result: ReturnType<ContainerStorage['run']>, what: string): string {
  if (result.status !== 0) throw new Error(`${what} failed (${result.status ?? result.signal}): ${result.stderr}${result.error ?? ''}`);
  return result.stdout;
}

beforeAll(() => {
  timed('stand-in node:20-bookworm', () => {
    execFileSync(path.join(ROOT, 'testkit/node-image-standin.sh'), ['docker.io/library/node:20-bookworm'], {
      env: { ...process.env, BUILDAH: storage.buildahCommand },
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 100_000,
    });
  });
  const registry = execFileSync('npm', ['config', 'get', 'registry'], { encoding: 'utf8' }).trim();
  // The build stage's npm ci needs the registry (host network) and, here, the machine's CA bundle,
  // which the stand-in has at the same path.
  const caBundle = process.env.NODE_EXTRA_CA_CERTS ? ['--build-arg', `NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS}`] : [];
  timed('buildah bud -f archiver/Dockerfile', () =>
    ok(
      storage.buildah(
        ['bud', '--pull=never', '--network', 'host', '--layers=false', '--quiet', '-f', 'archiver/Dockerfile', '-t', IMAGE,
          '--build-arg', `NPM_CONFIG_REGISTRY=${registry}`, ...caBundle,
          '--build-arg', `SOURCE=${LABELS.source}`, '--build-arg', `REVISION=${LABELS.revision}`, ROOT],
        150_000,
      ),
      'buildah bud',
    ),
  );
}, 260_000);

afterAll(() => {
  storage.remove();
  fs.rmSync(scratch, { recursive: true, force: true });
  console.log(`dockerfile image: ${Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);
}, 60_000);

function inspect(format: string): string {
  return ok(storage.podman(['image', 'inspect', '--format', format, IMAGE]), 'podman image inspect').trim();
}

describe('archiver/Dockerfile', () => {
  it("defaults the version label to the package's version, in both stages (the build refuses any other)", () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'archiver/Dockerfile'), 'utf8');
    expect(dockerfile.match(/^ARG VERSION=.*$/gm)).toEqual([`ARG VERSION=${VERSION}`, `ARG VERSION=${VERSION}`]);
  });

  it('builds an image smaller than the budget, and reports its size', () => {
    const size = Number(inspect('{{.Size}}'));
    console.log(`dockerfile image: ${IMAGE} is ${(size / 1e6).toFixed(1)} MB`);
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThan(SIZE_BUDGET_BYTES);
  });

  it('runs the archiver as its entrypoint: --version prints the package version', () => {
    expect(ok(storage.run([IMAGE, '--version']), 'podman run --version')).toBe(`${VERSION}\n`);
  });

  it('runs as uid 999 and carries the OCI labels of its source, version and revision', () => {
    expect(inspect('{{.Config.User}}')).toBe('999:999');
    const labels = JSON.parse(inspect('{{json .Labels}}')) as Record<string, string>;
    expect(labels).toMatchObject({
      'org.opencontainers.image.source': LABELS.source,
      'org.opencontainers.image.version': VERSION,
      'org.opencontainers.image.revision': LABELS.revision,
    });
    expect(ok(storage.run(['--entrypoint', '/archiver/bin/node', IMAGE, '-p', 'process.getuid() + ":" + process.getgid()']), 'podman run node -p')).toBe('999:999\n');
  });

  it('holds the archiver tree and the libraries Node loads, and nothing else: no shell', () => {
    const created = ok(storage.podman(['create', '--pull=never', IMAGE]), 'podman create').trim();
    const tar = path.join(scratch, 'rootfs.tar');
    ok(storage.podman(['export', '-o', tar, created]), 'podman export');
    storage.podman(['rm', created]);
    const entries = execFileSync('tar', ['-tf', tar], { encoding: 'utf8', maxBuffer: 64 << 20 }).split('\n').filter(Boolean).map((e) => e.replace(/^\.?\//, '').replace(/\/$/, ''));
    const files = entries.filter((e) => e.includes('/') && !e.startsWith('archiver/') && !/^(etc|run|dev|proc|sys)\//.test(e));
    // Only shared libraries (and the dynamic loader) besides /archiver.
    expect(files.filter((f) => !/^(lib|lib64|usr\/lib)\/.*\.so[.0-9]*$/.test(f) && !/^(lib|lib64|usr\/lib)(\/x86_64-linux-gnu)?$/.test(f) && !/^usr(\/lib)?$/.test(f))).toEqual([]);
    expect(entries).not.toContain('bin/sh');
    expect(entries).not.toContain('usr/bin/sh');
    expect(storage.run(['--entrypoint', '/bin/sh', IMAGE, '-c', 'true']).status).not.toBe(0);
    for (const file of Object.values(ARCHIVER_TREE)) expect(entries).toContain(`${ARCHIVER_IMAGE_HOME.slice(1)}/${file}`);
  });

  it('loads the native compression modules with the libraries it carries', () => {
    const script = `require('${ARCHIVER_IMAGE_HOME}/lib/node_modules/zstd-napi'); require('${ARCHIVER_IMAGE_HOME}/lib/node_modules/lz4-napi'); console.log('loaded')`;
    expect(ok(storage.run(['--entrypoint', `${ARCHIVER_IMAGE_HOME}/${ARCHIVER_TREE.node}`, IMAGE, '-e', script]), 'node -e require')).toBe('loaded\n');
  });

  it("installs with the init container's exact command a tree that runs outside the image, and measures what every pod start copies", () => {
    const volume = path.join(scratch, 'install');
    fs.mkdirSync(volume, { mode: 0o777 });
    fs.chmodSync(volume, 0o777);
    const [entry, ...args] = archiverInstallCommand();
    const installed = timed('install into the emptyDir', () => storage.run(['-v', `${volume}:${ARCHIVER_INSTALL_DIR}`, '--entrypoint', entry, IMAGE, ...args]));
    expect(installed.stderr).toContain(`installed ${ARCHIVER_IMAGE_HOME} into ${ARCHIVER_INSTALL_DIR}`);
    expect(installed.status).toBe(0);
    // The PostgreSQL container runs the copy on its own C library: here, this Debian 12 host's.
    const version = spawnSync(path.join(volume, ARCHIVER_TREE.launcher), ['--version'], { encoding: 'utf8', env: { PATH: process.env.PATH! } });
    expect(version.stdout).toBe(`${VERSION}\n`);
    const bytes = Number(execFileSync('du', ['-sb', volume], { encoding: 'utf8' }).split('\t')[0]);
    const node = fs.statSync(path.join(volume, ARCHIVER_TREE.node)).size;
    console.log(`dockerfile image: the init container copies ${(bytes / 1e6).toFixed(1)} MB into the emptyDir (Node ${(node / 1e6).toFixed(1)} MB) in ${timings['install into the emptyDir'].toFixed(1)} s`);
    expect(bytes).toBeLessThan(SIZE_BUDGET_BYTES);
  });

  it("starts the background archiver with the sidecar's exact command", async () => {
    const base = path.join(scratch, 'sidecar');
    fs.mkdirSync(path.join(base, 'repo'), { recursive: true });
    for (const dir of [base, path.join(base, 'repo')]) fs.chmodSync(dir, 0o777);
    const [entry, ...args] = archiverDaemonCommand();
    const name = `dockerfile-sidecar-test-${process.pid}`;
    const started = storage.podman([
      'run', '-d', '--rm', '--network', 'none', '--pull=never', '--name', name, '-v', `${base}:${base}`,
      '-e', `ARCHIVER_REPOSITORY=file://${base}/repo`, '-e', `ARCHIVER_SPOOL=${base}/spool`, '-e', 'ARCHIVER_DAEMON_IDLE_SECONDS=0',
      '--entrypoint', entry, IMAGE, ...args,
    ]);
    expect(started.status, started.stderr).toBe(0);
    try {
      expect(await waitForFile(path.join(base, 'spool/daemon.port'))).toBe(true);
    } finally {
      storage.podman(['stop', '-t', '10', name]);
    }
  }, 60_000);
});
