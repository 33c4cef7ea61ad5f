import { ChildProcess, execFile, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

/**
 * s3rver 3.7.1 in a child process, for tests and benchmarks.
 *
 * What s3rver does NOT emulate (tests must not rely on it):
 * - SigV4: any access key and signature are accepted for path-style requests with the default
 *   account; the keys below are the ones s3rver documents, nothing checks them strictly.
 * - Conditional writes: `If-None-Match: *` is ignored, a put always replaces.
 * - aws-chunked streaming uploads: the SDK's default `requestChecksumCalculation: WHEN_SUPPORTED`
 *   sends bodies of unknown length as aws-chunked with a trailing checksum, which s3rver stores
 *   verbatim (corrupt object). Clients must use `WHEN_REQUIRED`.
 * - AbortMultipartUpload (`DELETE ?uploadId=`) answers 405: aborted uploads leave their parts behind.
 * - Atomic puts: the half-received body of a PUT whose connection is cut stays as the object
 *   (real S3 stores nothing); the archiver's verification must catch it on fetch, and a push
 *   replaces it. s3rver writes a PUT's body straight into the object's file as it arrives
 *   (lib/stores/filesystem.js putObject: fs.createWriteStream(objectPath)), so a PUT that
 *   replaces the object while the cut one's last chunks are still being written shares the file
 *   with them: the dead upload's bytes can land in the new object. Wait until the object stops
 *   changing after a cut upload before reading what replaced it.
 * - Regions other than us-east-1 in ListObjectsV2 continuation tokens.
 * - (Not a gap but a trap: its continuation tokens use DES, hence --openssl-legacy-provider below.)
 */
export interface S3ServerOptions {
  /** Serve HTTPS with a fresh self-signed certificate for IP 127.0.0.1 (pgBackRest speaks only TLS).
   * @default false - plain HTTP */
  readonly tls?: boolean;
  /** Buckets created before the server accepts requests.
   * @default ['test'] */
  readonly buckets?: readonly string[];
}

export interface S3Server {
  /** `http(s)://127.0.0.1:PORT`, path-style. */
  readonly endpoint: string;
  readonly port: number;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** s3rver's data directory (one sub-directory per bucket). */
  readonly directory: string;
  readonly buckets: readonly string[];
  /** PEM file of the self-signed certificate when `tls` is set (trust it, or disable verification). */
  readonly certificateFile: string | undefined;
  /** The current child's pid (changes on restart). */
  readonly pid: number;
  /** Kill the child (SIGKILL) and remove its directories. Idempotent. */
  stop(): Promise<void>;
  /** SIGSTOP: the port still accepts TCP connections (kernel backlog) but nothing answers. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL the child, as a crash would, keeping its data and port for restart(). */
  crash(): Promise<void>;
  /** Start the server again on the same port with the same data, killing (SIGKILL) the running
   * child first if there is one: for "server went away mid-push, then came back" tests. */
  restart(): Promise<void>;
}

/** The credentials s3rver's built-in account uses. */
const ACCESS_KEY_ID = 'S3RVER';
const SECRET_ACCESS_KEY = 'S3RVER';
const CHILD_SCRIPT = path.join(__dirname, 's3rver-child.js');
const START_TIMEOUT_MS = 20_000;

interface ChildConfig {
  readonly directory: string;
  readonly port: number;
  readonly buckets: readonly string[];
  readonly key?: string;
  readonly cert?: string;
}

/** Every server still running in this process, so that process exit can clean up. */
const running = new Set<S3ServerProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) {
    return;
  }
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const server of running) {
      server.killNowSync();
    }
  });
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  installExitHook();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
  const server = new S3ServerProcess(root, options.buckets ?? ['test'], options.tls ?? false);
  running.add(server);
  try {
    await server.start();
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

class S3ServerProcess implements S3Server {
  public readonly accessKeyId = ACCESS_KEY_ID;
  public readonly secretAccessKey = SECRET_ACCESS_KEY;
  public readonly directory: string;
  public readonly certificateFile: string | undefined;
  private child: ChildProcess | undefined;
  private currentPort = 0;
  private stopped = false;

  constructor(
    private readonly root: string,
    public readonly buckets: readonly string[],
    private readonly tls: boolean,
  ) {
    this.directory = path.join(root, 'data');
    this.certificateFile = tls ? path.join(root, 'tls', 'cert.pem') : undefined;
  }

  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.currentPort}`;
  }

  get port(): number {
    return this.currentPort;
  }

  get pid(): number {
    if (this.child?.pid === undefined) {
      throw new Error('s3rver is not running');
    }
    return this.child.pid;
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.directory, { recursive: true });
    let tlsFiles: { key: string; cert: string } | undefined;
    if (this.tls) {
      tlsFiles = await generateSelfSignedCertificate(path.join(this.root, 'tls'));
    }
    await this.spawn({ directory: this.directory, port: 0, buckets: this.buckets, ...tlsFiles });
  }

  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  async crash(): Promise<void> {
    await this.kill();
  }

  async restart(): Promise<void> {
    if (this.stopped) {
      throw new Error('restart() after stop()');
    }
    await this.kill();
    const tlsDir = path.join(this.root, 'tls');
    await this.spawn({
      directory: this.directory,
      port: this.currentPort,
      buckets: this.buckets,
      ...(this.tls ? { key: path.join(tlsDir, 'key.pem'), cert: path.join(tlsDir, 'cert.pem') } : {}),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill();
    running.delete(this);
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** For the process 'exit' hook: no awaiting possible there. */
  killNowSync(): void {
    try {
      this.child?.kill('SIGKILL');
    } catch {
      // already gone
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.child === undefined || this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(`s3rver is not running (cannot send ${signal})`);
    }
    this.child.kill(signal);
  }

  private async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL'); // also ends a SIGSTOPped child
    await exited;
  }

  private async spawn(config: ChildConfig): Promise<void> {
    const child = fork(CHILD_SCRIPT, [JSON.stringify(config)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in
      // its legacy provider: without it every paginated listing fails with InternalError.
      execArgv: ['--openssl-legacy-provider'],
    });
    this.child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms: ${stderr}`));
      }, START_TIMEOUT_MS);
      child.once('message', (message: { ready?: boolean; port?: number; error?: string }) => {
        clearTimeout(timer);
        if (message.ready === true && typeof message.port === 'number') {
          resolve(message.port);
        } else {
          reject(new Error(`s3rver failed to start: ${message.error ?? JSON.stringify(message)}`));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited while starting (code ${code}, signal ${signal}): ${stderr}`));
      });
    });
    this.currentPort = port;
  }
}

/** A fresh self-signed certificate (and its key) for IP 127.0.0.1 in `directory`, made with the openssl CLI. */
export async function generateSelfSignedCertificate(directory: string): Promise<{ key: string; cert: string }> {
  fs.mkdirSync(directory, { recursive: true });
  const key = path.join(directory, 'key.pem');
  const cert = path.join(directory, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
    '-keyout', key, '-out', cert, '-days', '7',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  return { key, cert };
}
