/**
 * The roles of a rendered database, at the level of the rendered pod (rendered-pod.ts): real
 * PostgreSQL 15 started by the RENDERED start.sh beside the `archiver` sidecar with its rendered
 * command, environment and Secret volumes, the archive in s3rver. The specs follow one database and
 * run in order, each starting where the previous one left it:
 *   1. a database initialised without the replication role (its sidecar not yet there, as before
 *      the role existed) gets it as soon as the sidecar runs;
 *   2. over the network, the replication role reaches replication and the database postgres only,
 *      the superuser nothing; no password in any log;
 *   3. a standby clones and streams as the replication role, from its passfile;
 *   4. the Secrets rotated (their mounted files changed in place): the primary's roles get the new
 *      passwords, the old one is refused, the standby's passfile is rewritten and its walreceiver,
 *      its walsender terminated, reconnects with the new password, the standby never restarted.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scramVerifier } from '../../archiver/src/daemon/credentials';
import { ArchiveStorage } from '../../constructs';
import { PG_BIN, postgresUser } from '../../testkit/postgres';
import { seedProps, synthDatabase } from './fixtures';
import { RenderedPod, sleep } from './rendered-pod';
import { BUCKET, TEST_PASSWORDS, s3ServerAndPods } from './rendered-pod';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'replication-role-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const NAME = 'wal-postgres';
const ROTATED = { replication: 'rotated:replication\\password', superuser: 'rotated-superuser-password' };

/** A login over TCP (what a client of the Service does) with a password; psql's error when refused. */
function tcpLogin(pod: RenderedPod, user: string, password: string, options: { database?: string; replication?: boolean; query?: string } = {}): { ok: boolean; output: string } {
  const conninfo = `host=127.0.0.1 port=${pod.port} user=${user} dbname=${options.database ?? 'postgres'} connect_timeout=5${options.replication ? ' replication=true' : ''}`;
  const result = spawnSync(`${PG_BIN}/psql`, [conninfo, '-qAtX', '-c', options.query ?? (options.replication ? 'IDENTIFY_SYSTEM' : 'select current_user')], {
    env: { PATH: process.env.PATH!, PGPASSWORD: password, PGPASSFILE: '/dev/null' },
    encoding: 'utf8',
    timeout: 30_000,
    ...postgresUser(),
  });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}`.trim() };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 60_000, why: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${why()}`);
    await sleep(250);
  }
}

/** Whether the role's stored SCRAM verifier is that of `password`. */
function hasPassword(pod: RenderedPod, role: string, password: string): boolean {
  const stored = pod.sql(`select rolpassword from pg_authid where rolname = '${role}'`);
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(stored);
  return match !== null && scramVerifier(password, Buffer.from(match[2], 'base64'), Number(match[1])) === stored;
}

describe('the standbys log in as the replication role, the superuser only inside the pod, and rotated Secrets reach both without a restart (rendered start.sh and sidecar, PostgreSQL 15, s3rver)', () => {
  const { objects } = synthDatabase(seedProps({ archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: BUCKET }) } }));
  const { pods } = s3ServerAndPods(scratch);
  let pod0: RenderedPod | undefined;
  let pod1: RenderedPod | undefined;
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is missing: an earlier spec of this describe failed`);
    return value;
  };

  it('1. a database initialised without the replication role gets it, with the password of its Secret, once pod 0\'s sidecar runs', async () => {
    const pod = (pod0 = await pods.make(objects, NAME, 0));
    // The postgres container alone: initdb as before the role existed.
    pod.startPostgres();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    expect(pod.sql("select count(*) from pg_roles where rolname = 'replication'")).toBe('0');
    // The superuser's password came from the mounted Secret (POSTGRES_PASSWORD_FILE), not the environment.
    expect(pod.postgresEnv.POSTGRES_PASSWORD).toBeUndefined();
    expect(pod.postgresEnv.PGPASSWORD).toBeUndefined();
    expect(hasPassword(pod, 'postgres', TEST_PASSWORDS.superuser)).toBe(true);

    await pod.startSidecar();
    await waitFor('the replication role', () => pod.sql("select count(*) from pg_roles where rolname = 'replication'") === '1', 30_000, () => pod.archiverLog());
    expect(pod.sql("select rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls from pg_roles where rolname = 'replication'")).toBe('t|t|f|f|f|f');
    expect(hasPassword(pod, 'replication', TEST_PASSWORDS.replication)).toBe(true);
    expect(pod.archiverLog()).toContain('the role replication is created');
  }, 180_000);

  it('2. over the network the replication role reaches replication and the database postgres only, the superuser nothing; no password is in any log', () => {
    const pod = need(pod0, 'pod 0');
    pod.sql('create database app');

    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.replication)).toStrictEqual({ ok: true, output: 'replication' });
    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.replication, { replication: true }).ok).toBe(true);
    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.replication, { database: 'app' }).output).toContain('pg_hba.conf rejects connection for host "127.0.0.1", user "replication", database "app"');
    // What start.sh and pg_rewind need, and no more: no catalog of passwords, no file outside PGDATA.
    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.replication, { query: 'select 1 from pg_authid' }).output).toContain('permission denied for table pg_authid');
    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.replication, { query: "select pg_read_binary_file('/etc/passwd')" }).output).toContain('absolute path not allowed');
    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.replication, { query: "select pg_read_file('postgresql.auto.conf')" }).output).toContain('permission denied for function pg_read_file');

    expect(tcpLogin(pod, 'postgres', TEST_PASSWORDS.superuser).output).toContain('pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres"');
    expect(tcpLogin(pod, 'postgres', TEST_PASSWORDS.superuser, { replication: true }).output).toContain('pg_hba.conf rejects replication connection for host "127.0.0.1", user "postgres"');
    expect(tcpLogin(pod, 'postgres', TEST_PASSWORDS.replication).ok).toBe(false);
    expect(tcpLogin(pod, 'replication', TEST_PASSWORDS.superuser).output).toContain('password authentication failed for user "replication"');

    for (const log of [pod.log(), pod.archiverLog()]) {
      expect(log).not.toContain(TEST_PASSWORDS.replication);
      expect(log).not.toContain(TEST_PASSWORDS.superuser);
    }
  }, 60_000);

  it('3. a standby clones pod 0 and streams from it as the replication role, its password from the passfile the sidecar wrote', async () => {
    const primary = need(pod0, 'pod 0');
    const pod = (pod1 = await pods.make(objects, NAME, 1, primary));
    await pod.start();
    await pod.waitReady({ timeoutMs: 120_000 });
    await waitFor('streaming', () => pod.tryPsql('select status from pg_stat_wal_receiver') === 'streaming', 60_000, () => pod.log());
    expect(primary.sql("select usename, state from pg_stat_replication")).toBe('replication|streaming');
    expect(pod.sql('select conninfo from pg_stat_wal_receiver')).toMatch(/user=replication .*passfile=/);
    expect((fs.statSync(pod.passfile).mode & 0o777).toString(8)).toBe('600');
    expect(fs.readFileSync(pod.passfile, 'utf8')).toBe(`*:*:*:replication:${TEST_PASSWORDS.replication}\n`);

    primary.sql("create table notes (note text); insert into notes values ('streamed as replication')");
    await waitFor('the row on the standby', () => pod.tryPsql('select note from notes') === 'streamed as replication', 30_000);
  }, 240_000);

  it('4. the Secrets rotated in place: the old passwords are refused, the new ones work, and the walreceiver reconnects with the new one without a restart', async () => {
    const primary = need(pod0, 'pod 0');
    const standby = need(pod1, 'pod 1');
    const standbyStarted = standby.sql('select pg_postmaster_start_time()');
    const walsender = primary.sql("select pid from pg_stat_replication where usename = 'replication'");

    for (const pod of [primary, standby]) {
      pod.updateSecret(`${NAME}-replication`, { password: ROTATED.replication });
      pod.updateSecret(`${NAME}-auth`, { password: ROTATED.superuser });
    }
    await waitFor('the new replication password', () => tcpLogin(primary, 'replication', ROTATED.replication).ok, 30_000, () => primary.archiverLog());
    expect(tcpLogin(primary, 'replication', TEST_PASSWORDS.replication).output).toContain('password authentication failed for user "replication"');
    expect(hasPassword(primary, 'postgres', ROTATED.superuser)).toBe(true);
    // ':' and '\' escaped, as libpq reads them.
    await waitFor('the standby\'s passfile', () => fs.readFileSync(standby.passfile, 'utf8') === '*:*:*:replication:rotated\\:replication\\\\password\n', 30_000, () => standby.archiverLog());

    // The walreceiver's connection outlives the rotation; a new one must use the new password.
    primary.sql(`select pg_terminate_backend(${walsender})`);
    await waitFor('a new walsender, streaming', () => {
      const row = primary.tryPsql("select pid, state from pg_stat_replication where usename = 'replication'") ?? '';
      return row !== '' && row !== `${walsender}|streaming` && row.endsWith('|streaming');
    }, 60_000, () => standby.log().slice(-3000));
    expect(standby.sql('select pg_postmaster_start_time()')).toBe(standbyStarted);
    expect(standby.log()).not.toContain('password authentication failed');

    primary.sql("insert into notes values ('after the rotation')");
    await waitFor('the row on the standby', () => standby.tryPsql('select count(*) from notes') === '2', 30_000);
    for (const log of [primary.log(), primary.archiverLog(), standby.log(), standby.archiverLog()]) {
      expect(log).not.toContain(ROTATED.replication);
      expect(log).not.toContain(ROTATED.superuser);
    }
  }, 180_000);
});
