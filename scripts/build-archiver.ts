/**
 * Builds the archiver into archiver/dist, the tree the container image ships (and `install`
 * copies into the PostgreSQL pod):
 *
 *   bin/archiver           the launcher (POSIX sh; answers fast paths without Node)
 *   bin/node               the Node runtime (here: a symlink to this machine's node; the image
 *                          build replaces it with the binary)
 *   lib/archiver.cjs       the CLI, client, background archiver, local storage: no cloud SDK
 *   lib/storage-s3.cjs     the S3 backend with @aws-sdk/client-s3, loaded only for s3://
 *   lib/storage-gcs.cjs    the GCS backend with @google-cloud/storage, loaded only for gs://
 *   lib/node_modules/      the native compression modules (zstd-napi, lz4-napi)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, Plugin } from 'esbuild';

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'archiver/dist');
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version as string;

/** The backends' modules stay out of the main bundle: open.ts requires their own bundles. */
const splitBackends: Plugin = {
  name: 'split-backends',
  setup(build) {
    build.onResolve({ filter: /^\.\/(s3|gcs)$/ }, (args) =>
      args.importer.endsWith(path.join('storage', 'open.ts')) ? { path: `./storage-${args.path.slice(2)}.cjs`, external: true } : undefined,
    );
  },
};

const NATIVE = ['zstd-napi', 'lz4-napi', '@antoniomuso/lz4-napi-linux-x64-gnu'];

export async function buildArchiver(): Promise<void> {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(out, 'lib'), { recursive: true });
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
  await build({ ...common, entryPoints: [path.join(root, 'archiver/src/cli.ts')], outfile: path.join(out, 'lib/archiver.cjs'), plugins: [splitBackends] });
  await build({ ...common, entryPoints: [path.join(root, 'archiver/src/storage/s3.ts')], outfile: path.join(out, 'lib/storage-s3.cjs') });
  await build({ ...common, entryPoints: [path.join(root, 'archiver/src/storage/gcs.ts')], outfile: path.join(out, 'lib/storage-gcs.cjs') });

  for (const name of NATIVE) {
    const from = path.join(root, 'node_modules', name);
    if (!fs.existsSync(from)) continue; // an optional platform package of another platform
    const to = path.join(out, 'lib/node_modules', name);
    fs.cpSync(from, to, {
      recursive: true,
      // Sources, build intermediates and docs are not needed at run time.
      filter: (src) => {
        const relative = path.relative(from, src);
        return relative === '' || (!/(^|\/)(deps|src|obj\.target|node_modules)(\/|$)/.test(relative) && !/\.(md|a|gyp|gypi|ts)$/.test(relative));
      },
    });
  }
  fs.copyFileSync(path.join(root, 'archiver/bin/archiver'), path.join(out, 'bin/archiver'));
  fs.chmodSync(path.join(out, 'bin/archiver'), 0o755);
  fs.symlinkSync(process.execPath, path.join(out, 'bin/node'));
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
