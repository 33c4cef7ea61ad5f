/**
 * Whether the server took a renewed TLS certificate. PostgreSQL reads its certificate and key again
 * at a reload, and when it cannot use them (a key that does not belong to the certificate, a file it
 * cannot read or parse) it logs why and goes on serving the previous pair: the reload itself
 * succeeds, and nothing in pg_settings or pg_file_settings tells. So after a reload that the TLS
 * Secret's files took part in, the sidecar asks the server for its certificate the way a client
 * does — PostgreSQL's SSLRequest, then a TLS handshake, no login (`openssl s_client -starttls
 * postgres` does the same) — and compares it with the Secret's; and, to say why, checks the
 * Secret's key against its certificate itself.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';

/** PostgreSQL's SSLRequest: length 8, then the code 1234/5679. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** The first certificate of a PEM bundle (the server's own; the chain follows it), as DER; undefined when there is none. */
export function firstCertificateDer(pem: string): Buffer | undefined {
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!block) return undefined;
  try {
    return new X509Certificate(block).raw;
  } catch {
    return undefined;
  }
}

/**
 * Why the server would refuse `certificatePem` with `keyPem`, in words fit for a log line (never
 * quoting either file); undefined when the key belongs to the certificate.
 */
export function certificatePairProblem(certificatePem: string, keyPem: string): string | undefined {
  const der = firstCertificateDer(certificatePem);
  if (!der) return 'tls.crt holds no certificate that can be read';
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    return 'tls.key holds no private key that can be read without a passphrase';
  }
  return new X509Certificate(der).checkPrivateKey(key) ? undefined : "tls.key is not the key of tls.crt's certificate";
}

/**
 * The certificate the server at `host:port` presents to a TLS client, as DER. Rejects when it
 * cannot connect, answers the SSLRequest with anything but 'S', or does not finish the handshake
 * within `timeoutMs`. Nothing is verified: this only looks at what is served.
 */
export function servedCertificateDer(host: string, port: number, timeoutMs = 5000): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const socket = net.connect({ host, port });
    let secure: tls.TLSSocket | undefined;
    const timer = setTimeout(() => finish(new Error(`no TLS handshake with ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error: Error | undefined, der?: Buffer) => {
      clearTimeout(timer);
      secure?.destroy();
      socket.destroy();
      if (error) reject(error);
      else resolve(der!);
    };
    socket.once('error', (error) => finish(new Error(`cannot connect to ${host}:${port}: ${error.message}`)));
    socket.once('connect', () => socket.write(SSL_REQUEST));
    socket.once('data', (answer) => {
      if (answer.length !== 1 || answer[0] !== 0x53) {
        finish(new Error(`the server at ${host}:${port} does not take TLS connections (it answered the SSLRequest with ${JSON.stringify(answer.subarray(0, 1).toString('latin1'))})`));
        return;
      }
      socket.removeAllListeners('error');
      secure = tls.connect({ socket, rejectUnauthorized: false, servername: undefined });
      secure.once('error', (error) => finish(new Error(`TLS handshake with ${host}:${port} failed: ${error.message}`)));
      secure.once('secureConnect', () => {
        const certificate = secure!.getPeerCertificate();
        if (!certificate || !certificate.raw) finish(new Error(`the server at ${host}:${port} presented no certificate`));
        else finish(undefined, certificate.raw);
      });
    });
  });
}
