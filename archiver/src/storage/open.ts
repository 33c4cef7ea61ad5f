import { RetryPolicy, resilient } from './resilient';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_REQUEST_TIMEOUT_MS, type Storage, type StorageOptions } from './storage';

/**
 * Opens the storage that `options` describe, wrapped with its deadlines and retries
 * (resilient.ts), loading only that backend's module and SDK.
 *
 * The archiver starts once per WAL segment, and requiring @aws-sdk/client-s3 or
 * @google-cloud/storage costs ~100-200 ms each: a backend's module is required here, lazily,
 * in its own branch, and nowhere else at the top level. With require(), not import(): a dynamic
 * import() of a CommonJS bundle goes through the ES module loader, which first scans the whole
 * bundle for its exports (cjs-module-lexer: ~150-250 ms of CPU for the S3 SDK's, per process and
 * per worker thread, measured on a backup-fetch). From the sources (the tests), import(), which
 * resolves the TypeScript modules.
 *
 * Throws (plain Error) on options that cannot work, e.g. an empty bucket name.
 */
/** Running as a built bundle (lib/*.cjs), where require() finds the split bundles. */
export const BUNDLED = __filename.endsWith('.cjs');

export async function openStorage(options: StorageOptions): Promise<Storage> {
  switch (options.kind) {
    case 'local': {
      const { LocalStorage } = BUNDLED ? (require('./local') as typeof import('./local')) : await import('./local');
      // Local failures are not transient and local calls are not cancellable: one attempt, no deadline.
      return resilient(new LocalStorage(options), new RetryPolicy({ attempts: 1, attemptTimeoutMs: 0 }));
    }
    case 's3': {
      // Before the SDK loads: see s3.ts.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const { S3Storage } = BUNDLED ? (require('./s3') as typeof import('./s3')) : await import('./s3');
      const policy = networkPolicy(options);
      return resilient(new S3Storage(options, policy), policy);
    }
    case 'gcs': {
      const { GcsStorage } = BUNDLED ? (require('./gcs') as typeof import('./gcs')) : await import('./gcs');
      return resilient(new GcsStorage(options), networkPolicy(options));
    }
    default: {
      const unknown: { kind?: unknown } = options;
      throw new Error(`unknown storage kind ${JSON.stringify(unknown.kind)}: expected 'local', 's3' or 'gcs'`);
    }
  }
}

/** A network backend's policy: `maxAttempts` attempts of `timeouts.requestMs` each. */
function networkPolicy(options: { readonly timeouts?: { readonly requestMs?: number }; readonly maxAttempts?: number }): RetryPolicy {
  return new RetryPolicy({
    attempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    attemptTimeoutMs: options.timeouts?.requestMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  });
}
