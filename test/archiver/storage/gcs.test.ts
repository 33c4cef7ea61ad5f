/**
 * The GCS backend (archiver/src/storage/gcs.ts) with a service-account key given as itself rather
 * than as a file, as the postgres container has it (GOOGLE_SERVICE_ACCOUNT_JSON_KEY: a variable
 * its start.sh unsets before it starts PostgreSQL). Against the GCS emulator, which takes any
 * request without authentication; what the emulator cannot show — Google accepting the key — is
 * shown as far as this machine can: the client holds the key's identity, and without the emulator
 * it asks Google's token endpoint for a token signed with it (no internet here: the request's
 * failure names that endpoint).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../../archiver/src/config';
import { GcsStorage } from '../../../archiver/src/storage/gcs';
import { GcsEmulator, startGcsEmulator } from '../../../testkit/gcs-emulator';
import { testScratch } from '../../../testkit/scratch';

const scratch = testScratch('gcs-key-');

describe('GCS with the service-account key in a variable', () => {
  let emulator: GcsEmulator;
  let key: string;

  beforeAll(async () => {
    const file = path.join(scratch.dir, 'sa.key');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file], { stdio: 'pipe' });
    key = JSON.stringify({ type: 'service_account', project_id: 'demo-archiver', client_email: 'archiver@demo-archiver.iam.gserviceaccount.com', private_key: fs.readFileSync(file, 'utf8') });
    emulator = await startGcsEmulator();
  }, 60_000);
  afterAll(async () => emulator?.stop());

  it('stores and reads through a client that holds the key (as readConfig builds it from the variable)', async () => {
    const { storage: options } = readConfig({ ARCHIVER_REPOSITORY: 'gs://kubedb/key-in-variable', GOOGLE_SERVICE_ACCOUNT_JSON_KEY: key });
    if (options.kind !== 'gcs') throw new Error(`expected gcs options, got ${options.kind}`);
    const storage = new GcsStorage({ ...options, apiEndpoint: emulator.apiEndpoint });
    await storage.put('hello', Buffer.from('world'));
    expect((await storage.get('hello')).toString()).toBe('world');
    // The client's own authentication: the key's identity, not Application Default Credentials.
    const client = (storage as unknown as { bucket: { storage: { authClient: { getCredentials(): Promise<{ client_email?: string }> } } } }).bucket.storage;
    expect((await client.authClient.getCredentials()).client_email).toBe('archiver@demo-archiver.iam.gserviceaccount.com');
  });

  it('without the emulator, asks Google for a token signed with the key (unreachable here: the failure names the token endpoint; with internet, Google refuses the made-up account)', async () => {
    const { storage: options } = readConfig({ ARCHIVER_REPOSITORY: 'gs://kubedb/key-in-variable', GOOGLE_SERVICE_ACCOUNT_JSON_KEY: key });
    if (options.kind !== 'gcs') throw new Error(`expected gcs options, got ${options.kind}`);
    const storage = new GcsStorage({ ...options, timeouts: { connectMs: 2000, requestMs: 5000 } });
    await expect(storage.get('hello')).rejects.toThrow(/oauth2.*token|invalid_grant/);
  }, 30_000);
});
