import type { Storage, StorageOptions } from './storage';

/**
 * Opens the storage that `options` describe, loading only that backend's module and SDK.
 *
 * The archiver starts once per WAL segment, and requiring @aws-sdk/client-s3 or
 * @google-cloud/storage costs ~100-200 ms each: a backend's module is required here, lazily,
 * in its own branch, and nowhere else at the top level.
 *
 * Throws (plain Error) on options that cannot work, e.g. an empty bucket name.
 */
export async function openStorage(options: StorageOptions): Promise<Storage> {
  switch (options.kind) {
    case 'local': {
      const { LocalStorage } = await import('./local');
      return new LocalStorage(options);
    }
    case 's3': {
      // Before the SDK loads: see s3.ts.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const { S3Storage } = await import('./s3');
      return new S3Storage(options);
    }
    case 'gcs': {
      const { GcsStorage } = await import('./gcs');
      return new GcsStorage(options);
    }
    default: {
      const unknown: { kind?: unknown } = options;
      throw new Error(`unknown storage kind ${JSON.stringify(unknown.kind)}: expected 'local', 's3' or 'gcs'`);
    }
  }
}
