/**
 * The archive's three backends as tests use them: a local directory, s3rver (an S3-compatible
 * server on 127.0.0.1) and firebase-tools' GCS emulator, each with the archiver's environment and
 * the same location as StorageOptions for a test's own look into the archive.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StorageOptions } from '../archiver/src/storage/storage';
import { startGcsEmulator } from './gcs-emulator';
import { giveToPostgres } from './postgres';
import { S3Server, startS3Server } from './s3-server';

export interface TestBackend {
  /** The archiver's environment for this location (no spool). */
  readonly env: Record<string, string>;
  readonly storage: StorageOptions;
  /** s3rver's process (crash, restart, pause), for the s3rver backend only. */
  readonly s3?: S3Server;
  /**
   * The file that holds the stored bytes of `key` (local directory and s3rver; undefined for the
   * GCS emulator), for damaging an object behind the storage's back.
   */
  objectFile(key: string): string | undefined;
  stop(): Promise<void>;
}

export const BACKEND_NAMES = ['a local directory', 's3rver (S3-compatible)', 'the GCS emulator'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

const PREFIX = 'kubedb/demo/wal-postgres/archive';

/** Starts the backend `name`; `scratch` holds a local repository. */
export async function startBackend(name: BackendName, scratch: string): Promise<TestBackend> {
  switch (name) {
    case 'a local directory': {
      const root = fs.mkdtempSync(path.join(scratch, 'local-repo-'));
      giveToPostgres(root);
      return { env: { ARCHIVER_REPOSITORY: `file://${root}` }, storage: { kind: 'local', root }, objectFile: (key) => path.join(root, key), stop: async () => undefined };
    }
    case 's3rver (S3-compatible)': {
      const server = await startS3Server({ buckets: ['kubedb'] });
      return {
        env: {
          ARCHIVER_REPOSITORY: `s3://kubedb/${PREFIX}`,
          ARCHIVER_S3_ENDPOINT: server.endpoint,
          AWS_ACCESS_KEY_ID: server.accessKeyId,
          AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
          // s3rver corrupts aws-chunked uploads; real S3 keeps the SDK's default.
          ARCHIVER_S3_CHECKSUMS: 'when_required',
        },
        storage: { kind: 's3', bucket: 'kubedb', prefix: PREFIX, endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, requestChecksumCalculation: 'WHEN_REQUIRED' },
        s3: server,
        // s3rver's filesystem store: DIRECTORY/BUCKET/KEY._S3rver_object.
        objectFile: (key) => path.join(server.directory, 'kubedb', PREFIX, `${key}._S3rver_object`),
        stop: () => server.stop(),
      };
    }
    case 'the GCS emulator': {
      const emulator = await startGcsEmulator();
      return {
        env: { ARCHIVER_REPOSITORY: `gs://kubedb/${PREFIX}`, STORAGE_EMULATOR_HOST: emulator.apiEndpoint, GOOGLE_PROJECT_ID: emulator.projectId },
        storage: { kind: 'gcs', bucket: 'kubedb', prefix: PREFIX, apiEndpoint: emulator.apiEndpoint, projectId: emulator.projectId },
        objectFile: () => undefined,
        stop: () => emulator.stop(),
      };
    }
  }
}
