/**
 * The background archiver's listener: each connection carries one request line. Shared by the
 * working server (server.ts) and the one the sidecar runs while it cannot work (archive-opener.ts),
 * so that both read requests the same way.
 */
import * as net from 'node:net';
import { MAX_REQUEST_LINE } from './protocol';

/**
 * A server whose connections each carry one request line: `onLine` runs once per connection, with
 * the first line; anything after it is ignored, and a connection that sends more than
 * MAX_REQUEST_LINE bytes without a newline is dropped.
 */
export function oneLineServer(onLine: (line: string, socket: net.Socket) => void): net.Server {
  return net.createServer((socket) => {
    let buffer = '';
    let answered = false;
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      if (answered) return;
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) {
        if (buffer.length > MAX_REQUEST_LINE) socket.destroy();
        return;
      }
      answered = true;
      onLine(buffer.slice(0, newline), socket);
    });
  });
}

/** Listens on 127.0.0.1 on a port the kernel picks; resolves with it. */
export async function listenOnLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  return (server.address() as net.AddressInfo).port;
}
