/**
 * Builds the archiver into archiver/dist, the tree the container image ships (and `install`
 * copies into the PostgreSQL pod):
 *
 *   bin/archiver           the launcher (POSIX sh; answers fast paths without Node)
 *   bin/archiver-call      its bash helper: one request to the background archiver over loopback TCP
 *   bin/node               the Node runtime (here: a symlink to this machine's node; the image
 *                          build replaces it with the binary)
 *   lib/archiver.cjs       the CLI, client, background archiver, local storage: no cloud SDK
 *   lib/storage-core.cjs   the storage interface and its error classes, shared by all bundles so
 *                          that `instanceof ObjectNotFoundError` holds for every backend
 *   lib/codec-worker.cjs   the worker thread that hashes and (de)compresses for the background archiver
 *   lib/storage-s3.cjs     the S3 backend with @aws-sdk/client-s3, loaded only for s3://
 *   lib/storage-gcs.cjs    the GCS backend with @google-cloud/storage, loaded only for gs://
 *   lib/node_modules/      the native compression modules (zstd-napi, lz4-napi)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, Plugin } from 'esbuild';

/** The archiver package (archiver/). */
const root = path.resolve(__dirname, '..');
const out = path.join(root, 'dist');
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version as string;

const STORAGE_INTERFACE = path.join(root, 'src/storage/storage.ts');

/**
 * The backends' modules stay out of the main bundle (open.ts requires their own bundles), and
 * every bundle requires the one storage-core.cjs instead of carrying its own copy of the
 * interface module: error classes must be the same classes everywhere.
 */
function splitBundles(self: string): Plugin {
  return {
    name: 'split-bundles',
    setup(build) {
      build.onResolve({ filter: /^\.\/(s3|gcs)$/ }, (args) =>
        args.importer.endsWith(path.join('storage', 'open.ts')) ? { path: `./storage-${args.path.slice(2)}.cjs`, external: true } : undefined,
      );
      build.onResolve({ filter: /(^|\/)storage$/ }, (args) => {
        const resolved = path.resolve(args.resolveDir, `${args.path}.ts`);
        return resolved === STORAGE_INTERFACE && self !== STORAGE_INTERFACE ? { path: './storage-core.cjs', external: true } : undefined;
      });
    },
  };
}

const NATIVE = ['zstd-napi', 'lz4-napi', '@antoniomuso/lz4-napi-linux-x64-gnu'];

/** Builds into a staging directory and swaps it in: concurrent builds (two test runs) never see half a tree. */
export async function buildArchiver(): Promise<void> {
  const staging = `${out}.staging-${process.pid}-${Date.now()}`;
  fs.mkdirSync(path.join(staging, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(staging, 'lib'), { recursive: true });
  try {
    await buildInto(staging);
    const old = `${out}.old-${process.pid}-${Date.now()}`;
    try {
      fs.renameSync(out, old);
    } catch {
      // no earlier build
    }
    fs.renameSync(staging, out);
    fs.rmSync(old, { recursive: true, force: true });
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

async function buildInto(staging: string): Promise<void> {
  const common = {
    bundle: true,
    platform: 'node' as const,
    target: 'node20',
    format: 'cjs' as const,
    external: NATIVE,
    define: { ARCHIVER_VERSION: JSON.stringify(version) },
    logLevel: 'warning' as const,
    legalComments: 'none' as const,
  };
  const bundles: [string, string][] = [
    ['src/cli.ts', 'lib/archiver.cjs'],
    ['src/storage/storage.ts', 'lib/storage-core.cjs'],
    ['src/codec-worker.ts', 'lib/codec-worker.cjs'],
    ['src/storage/s3.ts', 'lib/storage-s3.cjs'],
    ['src/storage/gcs.ts', 'lib/storage-gcs.cjs'],
  ];
  for (const [entry, outfile] of bundles) {
    const entryPoint = path.join(root, entry);
    await build({ ...common, entryPoints: [entryPoint], outfile: path.join(staging, outfile), plugins: [splitBundles(entryPoint)] });
  }

  for (const name of NATIVE) {
    const from = path.join(root, 'node_modules', name);
    if (!fs.existsSync(from)) continue; // an optional platform package of another platform
    const to = path.join(staging, 'lib/node_modules', name);
    fs.cpSync(from, to, {
      recursive: true,
      // Sources, build intermediates and docs are not needed at run time.
      filter: (src) => {
        const relative = path.relative(from, src);
        return relative === '' || (!/(^|\/)(deps|src|obj\.target|node_modules)(\/|$)/.test(relative) && !/\.(md|a|gyp|gypi|ts)$/.test(relative));
      },
    });
  }
  for (const script of ['archiver', 'archiver-call']) {
    fs.copyFileSync(path.join(root, 'bin', script), path.join(staging, 'bin', script));
    fs.chmodSync(path.join(staging, 'bin', script), 0o755);
  }
  fs.symlinkSync(process.execPath, path.join(staging, 'bin/node'));
}

if (require.main === module) {
  buildArchiver().then(
    () => process.stdout.write(`archiver built into ${path.relative(process.cwd(), out) || '.'}\n`),
    (error) => {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
