/** Configuration of the reference tools (pgBackRest, barman-cloud) against the benchmarks' s3rver. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { S3Server } from '../../testkit/s3-server';
import { giveToPostgres } from '../../testkit/postgres';
import { processAlive } from '../../testkit/processes';
import { progress } from './tools';

/**
 * pgBackRest options for an s3rver over TLS (pgBackRest speaks only TLS to S3; the certificate is
 * self-signed). Without `repoPath`, repo1-path is left to the caller: pgbackrest.sh always writes
 * its own (its scratch directory) and pgBackRest refuses a second one.
 */
export function pgbackrestS3Options(s3: S3Server, bucket: string, repoPath?: string): string[] {
  return [
    'repo1-type=s3',
    `repo1-s3-bucket=${bucket}`,
    'repo1-s3-endpoint=127.0.0.1',
    `repo1-storage-port=${s3.port}`,
    'repo1-s3-region=us-east-1',
    `repo1-s3-key=${s3.accessKeyId}`,
    `repo1-s3-key-secret=${s3.secretAccessKey}`,
    'repo1-s3-uri-style=path',
    'repo1-storage-verify-tls=n',
    ...(repoPath ? [`repo1-path=${repoPath}`] : []),
  ];
}

export interface PgbackrestClusterRef {
  readonly dataDir: string;
  readonly port: number;
  /** The directory of the cluster's Unix socket. */
  readonly socketDir: string;
}

/**
 * Writes `dir`/pgbackrest.conf for stanza `demo` (log, lock and spool under `dir`) and returns its
 * path. `options` are [global] lines, e.g. `repo1-path=...`, `archive-async=y`.
 */
export function writePgbackrestConfig(dir: string, options: readonly string[], cluster: PgbackrestClusterRef): string {
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'pgbackrest.conf');
  const lines = [
    '[global]',
    `log-path=${dir}/log`,
    `lock-path=${dir}/lock`,
    `spool-path=${dir}/spool`,
    ...options,
    '',
    '[demo]',
    `pg1-path=${cluster.dataDir}`,
    `pg1-port=${cluster.port}`,
    `pg1-socket-path=${cluster.socketDir}`,
  ];
  fs.writeFileSync(config, `${lines.join('\n')}\n`);
  giveToPostgres(dir);
  return config;
}

/** barman-cloud's environment for the s3rver (AWS_CA_BUNDLE: its self-signed certificate). */
export function barmanEnv(s3: S3Server, caFile: string | undefined): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_DEFAULT_REGION: 'us-east-1',
    ...(caFile ? { AWS_CA_BUNDLE: caFile } : {}),
  };
}

/**
 * Watches the benchmarks' s3rver: under pgBackRest's and barman-cloud's load it has died
 * mid-run here (no OOM; its stderr stays inside testkit/s3-server.ts). A dead server is
 * restarted on the same port with the same data, and the run that saw it die is repeated.
 */
export class S3Watch {
  /** How many times the server was found dead and restarted. */
  public restarts = 0;

  constructor(private readonly server: S3Server) {}

  /** A message when the server is not running, undefined while it is. */
  dead(): string | undefined {
    try {
      return processAlive(this.server.pid) ? undefined : 's3rver died during the run';
    } catch {
      return 's3rver is not running';
    }
  }

  /**
   * Runs `attempt` on a live server; when the server died during it, restarts it and runs it once
   * more (`round` 1), returning that result with `repeated` set.
   */
  async guarded<T>(attempt: (round: number) => Promise<T>): Promise<{ result: T; repeated: boolean }> {
    await this.revive();
    const first = await attempt(0);
    if (!(await this.revive())) return { result: first, repeated: false };
    progress('  s3rver died during the run: running it again');
    return { result: await attempt(1), repeated: true };
  }

  /** Restarts the server when it died; true when it had to. */
  async revive(): Promise<boolean> {
    if (!this.dead()) return false;
    this.restarts++;
    progress('s3rver died: restarting it (same port, same data)');
    await this.server.restart();
    return true;
  }
}
