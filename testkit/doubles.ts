/**
 * Test doubles for the archiver's tests: a Storage wrapper that fails or holds chosen
 * operations, a latch, a log sink, a tiny in-memory S3 server for the behaviours that s3rver
 * does not have (412 on `If-None-Match: *`, request checksums checked as S3 checks them), and
 * evidence that a request is in flight (a server's kernel receive queue; a proxy that holds an
 * upload half-way) for fault tests that must kill or crash something mid-request.
 *
 * Each double says what it is and is used where a real server cannot show the behaviour under
 * test; everything else runs against the real backends.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { StorageOperation } from '../archiver/src/errors';
import { Logger } from '../archiver/src/logger';
import { ObjectInfo, OperationOptions, PutOptions, Storage } from '../archiver/src/storage/storage';
import { LogLine, parseLogLine } from './archiver';

// ---------------------------------------------------------------------------------------------
// Waiting for conditions

/**
 * Polls `condition` every `intervalMs` until it holds; fails naming `what` after `timeoutMs`.
 * (A longer interval where each look starts a process: `podman exec`, psql.)
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** `promise`, or a rejection naming `what` when it has not settled within `timeoutMs`. */
export function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// A latch

/**
 * A latch a test opens: `wait()` resolves once `open()` was called; `reached` resolves when the
 * first waiter arrives (so the test knows the work is held there).
 */
export class Gate {
  public readonly reached: Promise<void>;
  private onReached!: () => void;
  private onOpen!: () => void;
  private readonly opened: Promise<void>;

  constructor() {
    this.reached = new Promise<void>((resolve) => (this.onReached = resolve));
    this.opened = new Promise<void>((resolve) => (this.onOpen = resolve));
  }

  wait(): Promise<void> {
    this.onReached();
    return this.opened;
  }

  open(): void {
    this.onOpen();
  }
}

// ---------------------------------------------------------------------------------------------
// A Storage wrapper

export interface StorageCall {
  readonly op: StorageOperation;
  readonly key: string;
  /** Set once the call settled. */
  outcome?: 'ok' | 'error';
}

/**
 * A test double around a real Storage (the local backend, usually): every call is recorded and
 * first goes through `before(op, key)`, which may throw (a failing backend) or wait (a slow one).
 * Everything else is the real storage's doing.
 */
export class StorageDouble implements Storage {
  public readonly calls: StorageCall[] = [];

  constructor(
    private readonly inner: Storage,
    private readonly before: (op: StorageOperation, key: string) => void | Promise<void> = () => undefined,
  ) {}

  get location(): string {
    return this.inner.location;
  }

  /** Whether a call of `op` on `key` has settled. */
  settled(op: StorageOperation, key: string): boolean {
    return this.calls.some((call) => call.op === op && call.key === key && call.outcome !== undefined);
  }

  get(key: string, options?: OperationOptions): Promise<Buffer> {
    return this.record('get', key, () => this.inner.get(key, options));
  }

  getStream(key: string, options?: OperationOptions): Promise<NodeJS.ReadableStream> {
    return this.record('getStream', key, () => this.inner.getStream(key, options));
  }

  stat(key: string, options?: OperationOptions): Promise<ObjectInfo | undefined> {
    return this.record('stat', key, () => this.inner.stat(key, options));
  }

  put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.record('put', key, () => this.inner.put(key, body, options));
  }

  putStream(key: string, body: NodeJS.ReadableStream, options?: PutOptions): Promise<void> {
    return this.record('putStream', key, () => this.inner.putStream(key, body, options));
  }

  list(prefix: string, options?: OperationOptions): Promise<ObjectInfo[]> {
    return this.record('list', prefix, () => this.inner.list(prefix, options));
  }

  delete(keys: readonly string[], options?: OperationOptions): Promise<void> {
    return this.record('delete', keys.join(','), () => this.inner.delete(keys, options));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async record<T>(op: StorageOperation, key: string, call: () => Promise<T>): Promise<T> {
    const entry: StorageCall = { op, key };
    this.calls.push(entry);
    try {
      await this.before(op, key);
      const result = await call();
      entry.outcome = 'ok';
      return result;
    } catch (error) {
      entry.outcome = 'error';
      throw error;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A log sink

/** A Logger at level debug whose lines are kept, parsed, in `lines`. */
export function capturingLogger(): { readonly log: Logger; readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: new Logger('debug', (line) => lines.push(parseLogLine(line))), lines };
}

// ---------------------------------------------------------------------------------------------
// A tiny S3 server

/** One request the tiny S3 server received. */
export interface TinyS3Request {
  readonly method: string;
  readonly bucket: string;
  /** The object key (URL-decoded), '' for bucket requests. */
  readonly key: string;
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** The status it was answered with. */
  status?: number;
}

export interface TinyS3ServerOptions {
  /**
   * Runs before each request is handled: may wait (a slow server) or change `objects` (another
   * writer racing this one).
   * @default - nothing
   */
  readonly onRequest?: (request: TinyS3Request, server: TinyS3Server) => void | Promise<void>;
}

export interface TinyS3Server {
  /** `http://127.0.0.1:PORT`, path-style. */
  readonly endpoint: string;
  /** The objects, by `bucket/key`. */
  readonly objects: Map<string, Buffer>;
  readonly requests: TinyS3Request[];
  close(): Promise<void>;
}

interface Upload {
  readonly objectPath: string;
  /** The checksum algorithm named at CreateMultipartUpload, lower case, or undefined. */
  readonly algorithm: string | undefined;
  readonly parts: Map<number, { data: Buffer; etag: string; crc32: string | undefined }>;
}

/** CRC-32 as S3 writes it in x-amz-checksum-crc32 and ChecksumCRC32: 4 bytes big-endian, base64. */
export function s3Crc32(data: Buffer): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(crc32(data) >>> 0);
  return bytes.toString('base64');
}

/**
 * A test double of S3: an in-memory, path-style subset of the API (PutObject, GetObject,
 * HeadObject, the multipart upload calls), on 127.0.0.1 port 0, with the rules that s3rver does
 * not implement and the archiver relies on:
 * - `If-None-Match: *` on PutObject / CompleteMultipartUpload of an existing key: 412
 *   PreconditionFailed, the object is kept;
 * - `x-amz-checksum-crc32` on a PutObject or UploadPart must match the body (400 BadDigest);
 * - an upload created with `x-amz-checksum-algorithm: CRC32` takes only parts that carry their
 *   CRC-32, and its CompleteMultipartUpload must list each part's ChecksumCRC32 (400
 *   InvalidRequest / InvalidPart), as S3 requires;
 * - bodies in aws-chunked encoding (streamed uploads with trailing checksums) are refused (501):
 *   the archiver sends Buffers with a known length.
 * No authentication; anything else is 501 NotImplemented.
 */
export async function startTinyS3Server(options: TinyS3ServerOptions = {}): Promise<TinyS3Server> {
  const objects = new Map<string, Buffer>();
  const requests: TinyS3Request[] = [];
  const uploads = new Map<string, Upload>();
  let nextUpload = 1;
  let self!: TinyS3Server;

  const handle = (request: TinyS3Request, res: http.ServerResponse): void => {
    const objectPath = `${request.bucket}/${request.key}`;
    const send = (status: number, headers: Record<string, string> = {}, body: Buffer | string = ''): void => {
      request.status = status;
      res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
      res.end(request.method === 'HEAD' ? undefined : body);
    };
    const error = (status: number, code: string, message: string): void =>
      send(status, { 'content-type': 'application/xml' }, `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
    const xml = (body: string): void => send(200, { 'content-type': 'application/xml' }, `<?xml version="1.0" encoding="UTF-8"?>\n${body}`);

    if (/aws-chunked/.test(String(request.headers['content-encoding'] ?? '')) || /STREAMING/.test(String(request.headers['x-amz-content-sha256'] ?? ''))) {
      return error(501, 'NotImplemented', 'aws-chunked bodies are not accepted by this test double');
    }
    const sentCrc = request.headers['x-amz-checksum-crc32'] as string | undefined;
    if (sentCrc !== undefined && sentCrc !== s3Crc32(request.body)) {
      return error(400, 'BadDigest', `The CRC32 you specified did not match the calculated checksum (${sentCrc} != ${s3Crc32(request.body)})`);
    }
    const uploadId = request.query.get('uploadId');
    const checksumHeaders: Record<string, string> = sentCrc !== undefined ? { 'x-amz-checksum-crc32': sentCrc } : {};

    if (request.key === '') return error(501, 'NotImplemented', `bucket requests are not implemented by this test double: ${request.method} ${request.query}`);
    if (request.method === 'POST' && request.query.has('uploads')) {
      const id = `upload-${nextUpload++}`;
      const algorithm = (request.headers['x-amz-checksum-algorithm'] as string | undefined)?.toLowerCase();
      uploads.set(id, { objectPath, algorithm, parts: new Map() });
      return xml(`<InitiateMultipartUploadResult><Bucket>${request.bucket}</Bucket><Key>${request.key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`);
    }
    if (uploadId !== null) {
      const upload = uploads.get(uploadId);
      if (!upload || upload.objectPath !== objectPath) return error(404, 'NoSuchUpload', `no upload ${uploadId}`);
      if (request.method === 'PUT') {
        if (upload.algorithm === 'crc32' && sentCrc === undefined) {
          return error(400, 'InvalidRequest', 'The upload was created using a crc32 checksum: each part must carry x-amz-checksum-crc32');
        }
        const partNumber = Number(request.query.get('partNumber'));
        const etag = `"etag-${uploadId}-${partNumber}"`;
        upload.parts.set(partNumber, { data: request.body, etag, crc32: sentCrc });
        return send(200, { etag, ...checksumHeaders });
      }
      if (request.method === 'DELETE') {
        uploads.delete(uploadId);
        return send(204);
      }
      if (request.method === 'POST') {
        const listed = [...request.body.toString('utf8').matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((match) => ({
          number: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(match[1])?.[1]),
          crc32: /<ChecksumCRC32>([^<]*)<\/ChecksumCRC32>/.exec(match[1])?.[1],
        }));
        if (listed.length === 0) return error(400, 'MalformedXML', 'no parts listed');
        for (const part of listed) {
          const stored = upload.parts.get(part.number);
          if (!stored) return error(400, 'InvalidPart', `part ${part.number} was not uploaded`);
          if (upload.algorithm === 'crc32' && part.crc32 === undefined) {
            return error(400, 'InvalidRequest', `The upload was created using a crc32 checksum. The complete request must include the checksum for each part. It was missing for part ${part.number} in the request.`);
          }
          if (part.crc32 !== undefined && part.crc32 !== stored.crc32) return error(400, 'InvalidPart', `part ${part.number}: ChecksumCRC32 ${part.crc32} does not match the part's ${stored.crc32}`);
        }
        if (request.headers['if-none-match'] === '*' && objects.has(objectPath)) return error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        objects.set(objectPath, Buffer.concat(listed.map((part) => upload.parts.get(part.number)!.data)));
        uploads.delete(uploadId);
        return xml(`<CompleteMultipartUploadResult><Bucket>${request.bucket}</Bucket><Key>${request.key}</Key><ETag>"complete"</ETag></CompleteMultipartUploadResult>`);
      }
    }
    switch (request.method) {
      case 'PUT':
        if (request.headers['if-none-match'] === '*' && objects.has(objectPath)) return error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        objects.set(objectPath, request.body);
        return send(200, { etag: '"put"', ...checksumHeaders });
      case 'GET':
      case 'HEAD': {
        const object = objects.get(objectPath);
        if (!object) return error(404, 'NoSuchKey', 'The specified key does not exist.');
        request.status = 200;
        res.writeHead(200, { 'content-length': String(object.length), 'content-type': 'application/octet-stream', etag: '"object"', 'last-modified': new Date().toUTCString() });
        res.end(request.method === 'HEAD' ? undefined : object);
        return;
      }
      default:
        return error(501, 'NotImplemented', `${request.method} is not implemented by this test double`);
    }
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const [, bucket = '', ...rest] = url.pathname.split('/');
      const request: TinyS3Request = {
        method: req.method ?? 'GET',
        bucket: decodeURIComponent(bucket),
        key: decodeURIComponent(rest.join('/')),
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(request);
      void Promise.resolve(options.onRequest?.(request, self)).then(
        () => handle(request, res),
        (failure: unknown) => {
          request.status = 500;
          res.writeHead(500).end(String(failure));
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const { port } = server.address() as AddressInfo;
  self = {
    endpoint: `http://127.0.0.1:${port}`,
    objects,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return self;
}

// ---------------------------------------------------------------------------------------------
// Evidence that a request is in flight

/**
 * Bytes waiting in the kernel's receive queues of the established TCP connections whose local
 * port is `port` (/proc/net/tcp and tcp6). For a SIGSTOPped server, more than 0 means a request
 * has reached it and is not being answered: the request is known to be in flight.
 */
export function bytesQueuedAt(port: number): number {
  let total = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.trim().split('\n').slice(1)) {
      const [, local, , state, queues] = row.trim().split(/\s+/);
      const ESTABLISHED = '01';
      if (state === ESTABLISHED && parseInt(local.split(':').pop()!, 16) === port) total += parseInt(queues.split(':')[1], 16);
    }
  }
  return total;
}

export interface HoldingProxy {
  /** `http://127.0.0.1:PORT`: give it to the client instead of the server's endpoint. */
  readonly endpoint: string;
  /**
   * Resolves once the first request whose text contains `pattern` has reached the server with its
   * headers and half of its body; the rest of that connection's bytes are held (dropped).
   */
  readonly holding: Promise<{ readonly contentLength: number; readonly forwardedBodyBytes: number }>;
  /** Whether the client of the held request still has its connection open (its upload in flight). */
  heldClientOpen(): boolean;
  /** Resolves when the held request's connection to the server is closed (the server saw it end). */
  readonly heldUpstreamClosed: Promise<void>;
  close(): Promise<void>;
}

/**
 * A test double between an HTTP client and a server (127.0.0.1 port 0 → 127.0.0.1
 * `upstreamPort`): every byte passes both ways, except that the first request containing
 * `pattern` (e.g. `PUT /bucket/prefix/wal/NAME`) is cut off after its headers and half of its
 * body (by Content-Length), which the server has then received: an upload known to be in flight.
 * When the client goes away, the proxy closes the server's side too, as a dead client's kernel
 * would.
 */
export async function startHoldingProxy(upstreamPort: number, pattern: string): Promise<HoldingProxy> {
  const needle = Buffer.from(pattern, 'latin1');
  let armed = true;
  let heldClient: net.Socket | undefined;
  let onHolding!: (value: { contentLength: number; forwardedBodyBytes: number }) => void;
  const holding = new Promise<{ contentLength: number; forwardedBodyBytes: number }>((resolve) => (onHolding = resolve));
  let onUpstreamClosed!: () => void;
  const heldUpstreamClosed = new Promise<void>((resolve) => (onUpstreamClosed = resolve));
  const relay = await startRelay(upstreamPort, (client, upstream) => {
    upstream.on('close', () => {
      if (heldClient === client) onUpstreamClosed();
    });

    let pending = Buffer.alloc(0);
    let mode: 'scan' | 'body' | 'held' = 'scan';
    let bodyLeft = 0;
    let contentLength = 0;
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        if (mode === 'held') {
          pending = Buffer.alloc(0);
          return;
        }
        if (mode === 'body') {
          const n = Math.min(bodyLeft, pending.length);
          upstream.write(pending.subarray(0, n));
          pending = pending.subarray(n);
          bodyLeft -= n;
          if (bodyLeft > 0) return;
          mode = 'held';
          onHolding({ contentLength, forwardedBodyBytes: Math.floor(contentLength / 2) });
          continue;
        }
        if (!armed) {
          upstream.write(pending);
          pending = Buffer.alloc(0);
          return;
        }
        const at = pending.indexOf(needle);
        if (at < 0) {
          // Keep back only a tail that may be the start of the pattern.
          let keep = Math.min(needle.length - 1, pending.length);
          while (keep > 0 && !pending.subarray(pending.length - keep).equals(needle.subarray(0, keep))) keep--;
          upstream.write(pending.subarray(0, pending.length - keep));
          pending = pending.subarray(pending.length - keep);
          return;
        }
        upstream.write(pending.subarray(0, at));
        pending = pending.subarray(at);
        const headersEnd = pending.indexOf('\r\n\r\n');
        if (headersEnd < 0) return;
        contentLength = Number(/\r\ncontent-length:\s*(\d+)/i.exec(pending.subarray(0, headersEnd).toString('latin1'))?.[1] ?? 0);
        upstream.write(pending.subarray(0, headersEnd + 4));
        pending = pending.subarray(headersEnd + 4);
        armed = false;
        heldClient = client;
        mode = 'body';
        bodyLeft = Math.floor(contentLength / 2);
      }
    });
  });
  return {
    endpoint: relay.endpoint,
    holding,
    heldClientOpen: () => heldClient !== undefined && !heldClient.destroyed && heldClient.readable,
    heldUpstreamClosed,
    close: relay.close,
  };
}

export interface TripwireProxy {
  /** `http://127.0.0.1:PORT`: give it to the client instead of the server's endpoint. */
  readonly endpoint: string;
  /** Resolves once the bytes of a request containing the pattern have been passed on to the server. */
  readonly tripped: Promise<void>;
  close(): Promise<void>;
}

/**
 * A test double between an HTTP client and a server (127.0.0.1 port 0 → 127.0.0.1
 * `upstreamPort`) that passes every byte both ways and tells when the first request containing
 * `pattern` (e.g. `GET /bucket/prefix/basebackups/NAME/parts/`) went by: a download known to be
 * under way, for a test to break the server at that very point.
 */
export async function startTripwireProxy(upstreamPort: number, pattern: string): Promise<TripwireProxy> {
  const needle = Buffer.from(pattern, 'latin1');
  let onTripped!: () => void;
  const tripped = new Promise<void>((resolve) => (onTripped = resolve));
  const relay = await startRelay(upstreamPort, (client, upstream) => {
    // The pattern may straddle two chunks: the last bytes of one are searched with the next.
    let tail = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      const text = Buffer.concat([tail, chunk]);
      if (text.includes(needle)) onTripped();
      tail = text.subarray(Math.max(0, text.length - needle.length + 1));
    });
  });
  return { endpoint: relay.endpoint, tripped, close: relay.close };
}

/**
 * The plumbing of the proxies above: a TCP server on 127.0.0.1 port 0 whose every connection gets
 * one to 127.0.0.1 `upstreamPort`. The server's bytes go back to the client as they come; the
 * client's are `connected`'s to pass on (its own 'data' handler). Either side closing closes the
 * other, as a dead peer's kernel would; close() ends every connection and the server.
 */
async function startRelay(upstreamPort: number, connected: (client: net.Socket, upstream: net.Socket) => void): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.createConnection({ host: '127.0.0.1', port: upstreamPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    upstream.on('data', (data: Buffer) => client.write(data));
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    connected(client, upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
