import { ChildProcess, fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './ports';

/**
 * firebase-tools' Cloud Storage emulator (15.34.2) in a child process, speaking the GCS JSON API
 * that @google-cloud/storage uses (`apiEndpoint`, or STORAGE_EMULATOR_HOST=`host`).
 *
 * What the emulator does NOT emulate (tests must not rely on it):
 * - Preconditions: `ifGenerationMatch` (and the other `if*Match` parameters) are ignored, a write
 *   always replaces.
 * - Chunked resumable uploads: a resumable session accepts exactly one PUT with the whole body
 *   (clients must upload with `resumable: false`, a single multipart request).
 * - Request bodies above 130 MB (body-parser limit), and streaming: bodies are buffered in memory.
 * - Authentication: no credentials are needed or checked on the GCS API.
 * - Buckets: any bucket name in a request path is created on first use (nothing to provision).
 *
 * Data: object metadata lives in the child's memory, blobs in a temp directory; both go away on stop.
 */
export interface GcsEmulator {
  /** `127.0.0.1:PORT`, the form STORAGE_EMULATOR_HOST takes. */
  readonly host: string;
  /** `http://127.0.0.1:PORT`, for `new Storage({ apiEndpoint })`. */
  readonly apiEndpoint: string;
  readonly projectId: string;
  readonly pid: number;
  /** Kill the child and remove its directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGSTOP: the port still accepts TCP connections (kernel backlog) but nothing answers. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

export interface GcsEmulatorOptions {
  /** @default 'demo-archiver' (firebase's `demo-` prefix: a project that needs no cloud access) */
  readonly projectId?: string;
}

const CHILD_SCRIPT = path.join(__dirname, 'gcs-emulator-child.js');
const START_TIMEOUT_MS = 30_000;
/** The emulator cannot listen on port 0 (it treats 0 as "use the default 9199"), so a probed free
 * port is passed; another process may take it in between: try again with a new one. */
const START_ATTEMPTS = 3;

const running = new Set<{ killNowSync(): void }>();
let exitHookInstalled = false;

export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => running.forEach((emulator) => emulator.killNowSync()));
  }
  const projectId = options.projectId ?? 'demo-archiver';
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gcs-emulator-'));
    const port = await freePort();
    const child = fork(CHILD_SCRIPT, [JSON.stringify({ port, projectId })], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      execArgv: [],
      // os.tmpdir() in the child: where the emulator keeps its blobs.
      env: { ...process.env, TMPDIR: root, STORAGE_EMULATOR_DEBUG: '' },
    });
    const handle = new GcsEmulatorProcess(child, root, port, projectId);
    running.add(handle);
    try {
      await handle.waitReady();
      return handle;
    } catch (error) {
      lastError = error;
      await handle.stop();
    }
  }
  throw lastError;
}

class GcsEmulatorProcess implements GcsEmulator {
  private stderr = '';

  constructor(
    private readonly child: ChildProcess,
    private readonly root: string,
    private readonly port: number,
    public readonly projectId: string,
  ) {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get apiEndpoint(): string {
    return `http://${this.host}`;
  }

  get pid(): number {
    if (this.child.pid === undefined) {
      throw new Error('GCS emulator has no pid');
    }
    return this.child.pid;
  }

  async waitReady(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`GCS emulator did not start within ${START_TIMEOUT_MS} ms: ${this.stderr}`));
      }, START_TIMEOUT_MS);
      this.child.once('message', (message: { ready?: boolean; error?: string }) => {
        clearTimeout(timer);
        if (message.ready === true) {
          resolve();
        } else {
          reject(new Error(`GCS emulator failed to start: ${message.error ?? JSON.stringify(message)}`));
        }
      });
      this.child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`GCS emulator exited while starting (code ${code}, signal ${signal}): ${this.stderr}`));
      });
    });
  }

  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    }
    running.delete(this);
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  killNowSync(): void {
    try {
      this.child.kill('SIGKILL');
    } catch {
      // already gone
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
