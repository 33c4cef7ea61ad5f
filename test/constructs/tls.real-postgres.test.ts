/**
 * TLS from a kubernetes.io/tls Secret (constructs/postgres-tls.ts), at the level of the rendered
 * pod (rendered-pod.ts: the Secret's files root's, of the postgres group, mode 0440, as the kubelet
 * projects them with fsGroup): real PostgreSQL 15 started by the RENDERED start.sh, with a CA and a
 * server certificate made here with openssl. In order:
 *   1. pod 0 takes TLS connections with the Secret's key, and refuses any network connection
 *      without TLS;
 *   2. a standby whose Secret has ca.crt clones and streams over TLS with sslmode=verify-ca;
 *   3. one whose Secret has no ca.crt, with sslmode=require;
 *   4. one whose ca.crt is another CA's refuses pod 0's certificate: it never connects;
 *   5. a certificate renewed in place (the Secret updated, as cert-manager renews it) is served
 *      without a restart: the sidecar sees the mount change and reloads the server;
 *   6. a renewal the server cannot use (a key of another certificate) is not reported as
 *      reloaded: the server keeps its previous certificate, and the sidecar says so and why.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARCHIVER_ENV, ARCHIVER_METRICS, METRICS_PATH } from '../../contract';
import { ArchiveStorage } from '../../constructs';
import { PG_BIN, postgresUser } from '../../testkit/postgres';
import { seedProps, synthDatabase } from './fixtures';
import { RenderedPod, sleep } from './rendered-pod';
import { BUCKET, TEST_PASSWORDS, s3ServerAndPods } from './rendered-pod';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tls-'));
fs.chmodSync(scratch, 0o755);
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const NAME = 'wal-postgres';
const TLS_SECRET = 'wal-postgres-tls';

/** A CA and a server certificate it signed, as a kubernetes.io/tls Secret's data (cert-manager's keys). */
function certificates(): { 'tls.crt': string; 'tls.key': string; 'ca.crt': string } {
  const dir = fs.mkdtempSync(path.join(scratch, 'certs-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=test CA ${path.basename(dir)}`, '-keyout', file('ca.key'), '-out', file('ca.crt'));
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${NAME}-0.${NAME}-pods`, '-keyout', file('tls.key'), '-out', file('tls.csr'));
  openssl('x509', '-req', '-in', file('tls.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-out', file('tls.crt'));
  return { 'tls.crt': fs.readFileSync(file('tls.crt'), 'utf8'), 'tls.key': fs.readFileSync(file('tls.key'), 'utf8'), 'ca.crt': fs.readFileSync(file('ca.crt'), 'utf8') };
}

/** A login over TCP as the replication role with `sslmode`; psql's error when refused. */
function tcpLogin(pod: RenderedPod, sslmode: string): { ok: boolean; output: string } {
  const result = spawnSync(`${PG_BIN}/psql`, [`host=127.0.0.1 port=${pod.port} user=replication dbname=postgres sslmode=${sslmode} connect_timeout=5`, '-qAtX', '-c', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()'], {
    env: { PATH: process.env.PATH!, PGPASSWORD: TEST_PASSWORDS.replication, PGPASSFILE: '/dev/null' },
    encoding: 'utf8',
    timeout: 30_000,
    ...postgresUser(),
  });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}`.trim() };
}

/** The certificate the server presents to a TLS client, as PEM (openssl s_client -starttls postgres). */
function servedCertificate(pod: RenderedPod): string {
  const result = spawnSync('openssl', ['s_client', '-starttls', 'postgres', '-connect', `127.0.0.1:${pod.port}`], { input: '', encoding: 'utf8', timeout: 30_000 });
  return firstCertificate(result.stdout);
}

/** The first PEM certificate of `text` ('' when it has none). */
function firstCertificate(text: string): string {
  return /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(text)?.[0].replace(/\s+/g, '') ?? '';
}

/** A metric's value as the sidecar serves it (its metrics port), or undefined when it serves none. */
async function metric(pod: RenderedPod, key: keyof typeof ARCHIVER_METRICS): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${pod.sidecarEnv[ARCHIVER_ENV.metricsPort]}${METRICS_PATH}`)).text();
  const name = ARCHIVER_METRICS[key].name;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** A PEM certificate's notAfter, in Unix seconds. */
function expiry(pem: string): number {
  return Math.round(Date.parse(new X509Certificate(pem).validTo) / 1000);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${why()}`);
    await sleep(250);
  }
}

describe('tls: every network connection to a database with a kubernetes.io/tls Secret is TLS, the standbys\' verified against its ca.crt (rendered start.sh and sidecar, PostgreSQL 15, s3rver)', () => {
  const { objects } = synthDatabase(seedProps({
    replicas: 3,
    tls: { secretName: TLS_SECRET },
    archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.example.com', bucket: BUCKET }) },
  }));
  const { pods } = s3ServerAndPods(scratch);
  const tls = certificates();
  let pod0: RenderedPod | undefined;
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is missing: an earlier spec of this describe failed`);
    return value;
  };

  /** Starts standby `ordinal` with the TLS Secret `data`; resolves once it streams. */
  async function streamingStandby(ordinal: number, data: Record<string, string>): Promise<RenderedPod> {
    const primary = need(pod0, 'pod 0');
    const pod = await pods.make(objects, NAME, ordinal, primary, { [TLS_SECRET]: data });
    await pod.start();
    await pod.waitReady({ timeoutMs: 120_000 });
    await waitFor('streaming', () => pod.tryPsql('select status from pg_stat_wal_receiver') === 'streaming', 60_000, () => pod.log());
    return pod;
  }

  it('1. pod 0 serves TLS with the Secret\'s certificate and key (0440, root\'s, of the postgres group), and refuses a network connection without TLS', async () => {
    const pod = (pod0 = await pods.make(objects, NAME, 0, undefined, { [TLS_SECRET]: tls }));
    await pod.start();
    await pod.waitReady({ primary: true, timeoutMs: 120_000 });
    await waitFor('the replication role', () => pod.sql("select count(*) from pg_roles where rolname = 'replication'") === '1', 30_000, () => pod.archiverLog());
    expect(pod.sql('show ssl')).toBe('on');
    expect(tcpLogin(pod, 'verify-ca').ok).toBe(false); // no root certificate given to psql here: it cannot verify
    expect(tcpLogin(pod, 'require')).toStrictEqual({ ok: true, output: 't' });
    expect(tcpLogin(pod, 'disable').output).toContain('pg_hba.conf rejects connection for host "127.0.0.1", user "replication", database "postgres", no encryption');
  }, 180_000);

  it('2. a standby whose Secret has ca.crt clones and streams over TLS, pod 0\'s certificate verified (sslmode=verify-ca)', async () => {
    const pod = await streamingStandby(1, tls);
    expect(pod.sql('select conninfo from pg_stat_wal_receiver')).toMatch(/sslmode=verify-ca .*sslrootcert=\S+\/ca\.crt/);
    const primary = need(pod0, 'pod 0');
    expect(primary.sql("select s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid) where r.application_name = 'walreceiver'")).toBe('t');
  }, 240_000);

  it('3. a standby whose Secret has no ca.crt streams over TLS, unverified (sslmode=require)', async () => {
    const pod = await streamingStandby(2, { 'tls.crt': tls['tls.crt'], 'tls.key': tls['tls.key'] });
    expect(pod.sql('select conninfo from pg_stat_wal_receiver')).toContain('sslmode=require');
    const primary = need(pod0, 'pod 0');
    expect(primary.sql("select string_agg(s.ssl::text, ',') from pg_stat_replication r join pg_stat_ssl s using (pid)")).toBe('true,true');
  }, 240_000);

  it('4. a standby whose ca.crt did not sign pod 0\'s certificate refuses it: it waits for pod 0 and never clones', async () => {
    const primary = need(pod0, 'pod 0');
    const pod = await pods.make(objects, NAME, 3, primary, { [TLS_SECRET]: { ...tls, 'ca.crt': certificates()['ca.crt'] } });
    await pod.start();
    await waitFor('a wait for pod 0', () => pod.log().includes('start: waiting for the primary 127.0.0.1: unreachable'), 60_000, () => pod.log());
    expect(fs.existsSync(pod.pgdata)).toBe(false);
    expect(primary.sql('select count(*) from pg_stat_replication')).toBe('2');
    // What libpq says, with the mode and root certificate start.sh set.
    const env = { PATH: process.env.PATH!, PGSSLMODE: 'verify-ca', PGSSLROOTCERT: path.join(pod.secretVolumeDir('tls'), 'ca.crt'), PGPASSFILE: pod.passfile };
    const result = spawnSync(`${PG_BIN}/psql`, [`host=127.0.0.1 port=${primary.port} user=replication dbname=postgres connect_timeout=5`, '-c', 'select 1'], { env, encoding: 'utf8', ...postgresUser() });
    expect(result.stderr).toContain('certificate verify failed');
  }, 120_000);

  it('5. a certificate renewed in place is served without a restart: the sidecar sees the Secret\'s mount change and reloads the server', async () => {
    const pod = need(pod0, 'pod 0');
    expect(servedCertificate(pod)).toBe(firstCertificate(tls['tls.crt']));
    const started = pod.sql('select pg_postmaster_start_time()::text');
    // WHEN cert-manager renews the certificate (and its key): the kubelet updates the mounted files
    const renewed = certificates();
    pod.updateSecret(TLS_SECRET, renewed);
    // THEN the server presents the new certificate, from the same postmaster
    await waitFor('the renewed certificate served', () => servedCertificate(pod) === firstCertificate(renewed['tls.crt']), 60_000, () => pod.archiverLog().slice(-3000));
    expect(pod.sql('select pg_postmaster_start_time()::text')).toBe(started);
    expect(tcpLogin(pod, 'require')).toStrictEqual({ ok: true, output: 't' });
    // The metrics an alert watches: the Secret's certificate is served, and when it expires.
    await expect.poll(() => metric(pod, 'tlsCertificateExpiry'), { timeout: 10_000 }).toBe(expiry(renewed['tls.crt']));
    expect(await metric(pod, 'tlsCertificateCurrent')).toBe(1);
    // The sidecar said why it reloaded, naming the files, never their contents.
    const reloads = pod.archiverLog().split('\n').filter((line) => line.includes('configuration reloaded') && line.includes('tls/tls.crt'));
    expect(reloads.length).toBeGreaterThan(0);
    const keyLine = renewed['tls.key'].split('\n')[1];
    expect(pod.archiverLog()).not.toContain(keyLine);
  }, 120_000);

  it('6. a renewal the server cannot use (the key of another certificate) is no "configuration reloaded": the sidecar warns, saying why, while the server keeps its previous certificate; the fixed Secret is served', async () => {
    const pod = need(pod0, 'pod 0');
    const before = servedCertificate(pod);
    const logged = pod.archiverLog().length;
    // WHEN the Secret is updated with a certificate and the key of another one
    const good = certificates();
    const stray = certificates();
    pod.updateSecret(TLS_SECRET, { ...good, 'tls.key': stray['tls.key'] });
    // THEN the sidecar reloads, sees the previous certificate still served, and says why
    const warned = () => pod.archiverLog().slice(logged).split('\n').find((line) => line.includes('still presents its previous TLS certificate'));
    await waitFor('the sidecar\'s warning', () => warned() !== undefined, 60_000, () => pod.archiverLog().slice(-3000));
    expect(warned()).toContain('level=warn');
    expect(warned()).toContain("tls.key is not the key of tls.crt's certificate");
    expect(pod.archiverLog().slice(logged)).not.toMatch(/msg="configuration reloaded"/);
    expect(servedCertificate(pod)).toBe(before);
    expect(pod.archiverLog()).not.toContain(stray['tls.key'].split('\n')[1]);
    expect(await metric(pod, 'tlsCertificateCurrent')).toBe(0);
    // AND once the Secret holds the certificate with its own key, that certificate is served
    pod.updateSecret(TLS_SECRET, good);
    await waitFor('the fixed certificate served', () => servedCertificate(pod) === firstCertificate(good['tls.crt']), 60_000, () => pod.archiverLog().slice(-3000));
    await expect.poll(() => metric(pod, 'tlsCertificateCurrent'), { timeout: 10_000 }).toBe(1);
    expect(await metric(pod, 'tlsCertificateExpiry')).toBe(expiry(good['tls.crt']));
  }, 120_000);
});
