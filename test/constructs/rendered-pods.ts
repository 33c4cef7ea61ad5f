/**
 * The pods of a `.real-postgres` story file: an s3rver for their archive and the pods a describe
 * makes (rendered-pod.ts), each with the Secrets a database references, removed after the
 * describe whatever happened.
 */
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from '../../testkit/ports';
import { S3Server, startS3Server } from '../../testkit/s3-server';
import { KubeObject } from './fixtures';
import { RenderedPod } from './rendered-pod';

/** The bucket of the stories' archives. */
export const BUCKET = 'kubedb';

/** The passwords the stories' Secrets hold. */
export const TEST_PASSWORDS = { superuser: 'test-password', replication: 'test-replication-password' } as const;

/** The Secrets a database of the stories references: the storage's, `{database}-auth` and `{database}-replication`. */
export function secretsFor(server: S3Server, database: string): Record<string, Record<string, string>> {
  return {
    's3-secret': { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey },
    [`${database}-auth`]: { password: TEST_PASSWORDS.superuser },
    [`${database}-replication`]: { password: TEST_PASSWORDS.replication },
  };
}

/** A describe's s3rver and pods (in `scratch`): started before its specs, the pods then the server removed after them whatever happened. */
export function s3ServerAndPods(scratch: string): { pods: Pods; server: () => S3Server } {
  let server: S3Server | undefined;
  const current = (): S3Server => {
    if (!server) throw new Error('s3rver did not start: see beforeAll');
    return server;
  };
  const pods = new Pods(current, scratch);
  beforeAll(async () => {
    server = await startS3Server({ buckets: [BUCKET] });
  });
  afterAll(async () => {
    await pods.removeAll();
    await server?.stop();
  });
  return { pods, server: current };
}

/** Pods made by a describe, removed after it whatever happened. */
export class Pods {
  private readonly made: RenderedPod[] = [];
  constructor(private readonly server: () => S3Server, private readonly scratch: string) {}

  /** A pod of database `name`; `secrets` adds to (or replaces) the Secrets of secretsFor. */
  async make(objects: KubeObject[], name: string, ordinal: number, primary?: RenderedPod, secrets: Record<string, Record<string, string>> = {}): Promise<RenderedPod> {
    const port = await freePort();
    const pod = new RenderedPod({
      objects,
      name,
      ordinal,
      secrets: { ...secretsFor(this.server(), name), ...secrets },
      s3: this.server(),
      dir: path.join(this.scratch, `${name}-${ordinal}`),
      port,
      primaryPort: primary?.port ?? port,
    });
    this.made.push(pod);
    return pod;
  }

  async removeAll(): Promise<void> {
    // Standbys first: they would otherwise retry the primary while it stops.
    for (const pod of this.made.splice(0).reverse()) await pod.remove();
  }
}
