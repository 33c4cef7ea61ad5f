import * as net from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it for a listen(0) probe,
 * which is closed again before this resolves.
 *
 * Prefer letting a server listen on port 0 itself and report the port it got (no race); use this
 * only where a port must be known before the server starts, or for an address where nothing
 * listens ("connection refused" tests: another process could take the port in between, so such a
 * test asserts a failure, never a specific one).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen({ port: 0, host, exclusive: true }, () => {
      const address = probe.address();
      if (address === null || typeof address === 'string') {
        probe.close();
        reject(new Error(`listen(0) on ${host} returned no port: ${String(address)}`));
        return;
      }
      probe.close(() => resolve(address.port));
    });
  });
}
