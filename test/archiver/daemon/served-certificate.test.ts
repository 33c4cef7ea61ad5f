/**
 * How the sidecar tells whether the server took a renewed TLS certificate
 * (archiver/src/daemon/served-certificate.ts): the certificate a real PostgreSQL 15 presents after
 * PostgreSQL's SSLRequest, and the check of a Secret's key against its certificate, with pairs
 * made here by openssl.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigReloadWatcher } from '../../../archiver/src/daemon/config-reload';
import { certificatePairProblem, firstCertificateDer, servedCertificateDer } from '../../../archiver/src/daemon/served-certificate';
import { MetricsRecorder, NO_METRICS } from '../../../archiver/src/metrics/recorder';
import { capturingLogger } from '../../../testkit/doubles';
import { freePort } from '../../../testkit/ports';
import { PostgresCluster, postgresUser } from '../../../testkit/postgres';
import { testScratch } from '../../../testkit/scratch';

const scratch = testScratch('served-certificate-');

/** A self-signed certificate and its key, as PEM. */
function pair(name: string): { crt: string; key: string } {
  const dir = fs.mkdtempSync(path.join(scratch.dir, `${name}-`));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')], { stdio: 'pipe' });
  return { crt: fs.readFileSync(path.join(dir, 'tls.crt'), 'utf8'), key: fs.readFileSync(path.join(dir, 'tls.key'), 'utf8') };
}

describe('the Secret\'s certificate and key, checked by themselves', () => {
  const one = pair('one');
  const other = pair('other');

  it('finds nothing wrong with a certificate and its own key', () => {
    expect(certificatePairProblem(one.crt, one.key)).toBeUndefined();
  });

  it('says when the key belongs to another certificate, without quoting either', () => {
    const problem = certificatePairProblem(one.crt, other.key);
    expect(problem).toBe("tls.key is not the key of tls.crt's certificate");
  });

  it('says when either file cannot be read as what it should hold', () => {
    expect(certificatePairProblem('not a certificate', one.key)).toBe('tls.crt holds no certificate that can be read');
    expect(certificatePairProblem(one.crt, 'not a key')).toBe('tls.key holds no private key that can be read without a passphrase');
  });

  it('takes the first certificate of a bundle (the server\'s; its chain follows)', () => {
    expect(firstCertificateDer(`${one.crt}${other.crt}`)).toStrictEqual(firstCertificateDer(one.crt));
    expect(firstCertificateDer(one.crt)).not.toStrictEqual(firstCertificateDer(other.crt));
    expect(firstCertificateDer('')).toBeUndefined();
  });
});

describe('the certificate a server presents (PostgreSQL 15)', () => {
  let cluster: PostgresCluster;
  const served = pair('served');

  beforeAll(async () => {
    cluster = await PostgresCluster.create();
    const { uid, gid } = postgresUser();
    for (const [name, text] of [['server.crt', served.crt], ['server.key', served.key]] as const) {
      const file = path.join(cluster.dataDir, name);
      fs.writeFileSync(file, text, { mode: 0o600 });
      fs.chownSync(file, uid, gid);
    }
    cluster.configure({ ssl: 'on', ssl_cert_file: "'server.crt'", ssl_key_file: "'server.key'" });
    cluster.start();
  }, 60_000);
  afterAll(async () => cluster?.remove());

  it('is the server\'s certificate, read after PostgreSQL\'s SSLRequest without logging in', async () => {
    expect(await servedCertificateDer('127.0.0.1', cluster.port)).toStrictEqual(firstCertificateDer(served.crt));
  });

  it('changes at a reload with a new pair, and stays the previous one when the new key is another certificate\'s', async () => {
    const renewed = pair('renewed');
    const write = (name: string, text: string) => fs.writeFileSync(path.join(cluster.dataDir, name), text);
    write('server.crt', renewed.crt);
    write('server.key', served.key);
    cluster.reload();
    await waitForLog(cluster, /does not match|private key/);
    expect(await servedCertificateDer('127.0.0.1', cluster.port)).toStrictEqual(firstCertificateDer(served.crt));
    write('server.key', renewed.key);
    cluster.reload();
    await expect.poll(async () => (await servedCertificateDer('127.0.0.1', cluster.port)).equals(firstCertificateDer(renewed.crt)!), { timeout: 10_000 }).toBe(true);
  });

  it('after a reload of changed TLS files, the watcher warns with the reason when the server presents another certificate, and counts the reload applied (never reloading again) when it cannot look', async () => {
    // The server presents `renewed` (the spec above); the watched Secret holds another pair.
    const configDir = fs.mkdtempSync(path.join(scratch.dir, 'config-'));
    fs.writeFileSync(path.join(configDir, 'postgresql.conf'), 'ssl = on\n');
    const other = pair('other-secret');
    const tlsDir = fs.mkdtempSync(path.join(scratch.dir, 'tls-'));
    fs.writeFileSync(path.join(tlsDir, 'tls.crt'), other.crt);
    fs.writeFileSync(path.join(tlsDir, 'tls.key'), served.key);
    const connection = { host: cluster.baseDir, port: cluster.port };
    const seen: { current: boolean; expiresAt: number }[] = [];
    const metrics: MetricsRecorder = { ...NO_METRICS, tlsCertificateSeen: (s) => void seen.push(s) };
    const { log, lines } = capturingLogger();
    expect(await new ConfigReloadWatcher({ log, configDir, tlsDir, connection, metrics }).look()).toBeDefined();
    expect(lines.find((line) => String(line.msg).startsWith('configuration reloaded, but the server still presents its previous TLS certificate'))).toMatchObject({ level: 'warn', why: "tls.key is not the key of tls.crt's certificate" });
    expect(seen).toHaveLength(1);
    expect(seen[0].current).toBe(false);
    // No TLS listener where the watcher looks (a server down right after the reload, say): the reload stands.
    const blind = capturingLogger();
    const watcher = new ConfigReloadWatcher({ log: blind.log, configDir, tlsDir, connection, metrics, tlsAddress: { host: '127.0.0.1', port: await freePort() } });
    expect(await watcher.look()).toBeDefined();
    expect(await watcher.look()).toBeUndefined();
    expect(blind.lines.find((line) => line.msg === 'cannot see which TLS certificate the server presents after the reload')).toMatchObject({ level: 'debug' });
    expect(blind.lines.filter((line) => String(line.msg).startsWith('configuration reloaded'))).toHaveLength(1);
    expect(seen).toHaveLength(1);
  });

  it('is refused with a clear error by a server without TLS, a closed port, and a listener that never answers', async () => {
    const plain = await PostgresCluster.create();
    try {
      plain.start();
      await expect(servedCertificateDer('127.0.0.1', plain.port)).rejects.toThrow(/does not take TLS connections \(it answered the SSLRequest with "N"\)/);
    } finally {
      await plain.remove();
    }
    await expect(servedCertificateDer('127.0.0.1', await freePort())).rejects.toThrow(/^cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      await expect(servedCertificateDer('127.0.0.1', port, 300)).rejects.toThrow(`no TLS handshake with 127.0.0.1:${port} within 300 ms`);
    } finally {
      silent.close();
    }
  }, 60_000);
});

async function waitForLog(cluster: PostgresCluster, pattern: RegExp): Promise<void> {
  await expect.poll(() => pattern.test(cluster.log()), { timeout: 10_000 }).toBe(true);
}
