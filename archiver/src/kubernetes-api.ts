/**
 * A GET or a PATCH on the Kubernetes API from inside a pod, as the pod's ServiceAccount: the address from
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (which the kubelet sets in every container),
 * the bearer token and the API server's CA from the mounted ServiceAccount directory.
 *
 * Node's https and nothing else: `delete --only-when-gone` asks two GETs and reads the status code
 * and a few fields of the answer; the sidecar's role label (daemon/role-label.ts) is one GET and a
 * merge patch of its own pod. @kubernetes/client-node would add megabytes of dependencies
 * (request handling, WebSocket, OpenID, YAML, generated models for every kind) to an image that
 * ships every byte it bundles, for no behaviour these few requests need.
 *
 * The token is read at every request (the kubelet rotates bound tokens in place) and never leaves
 * this module but in the Authorization header: no message, log line or error carries it.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { ARCHIVER_ENV, KUBERNETES_SERVICE_ENV, SERVICE_ACCOUNT_DIR } from '../../contract';
import { KubernetesApiError } from './errors';

/** The API server's answer: its status and (up to MAX_BODY bytes of) its body. */
export interface ApiAnswer {
  readonly status: number;
  readonly statusText: string;
  readonly body: string;
}

export interface KubernetesApi {
  /** `https://10.96.0.1:443`, for messages. */
  readonly server: string;
  /**
   * `GET path`. Rejects with a KubernetesApiError that says why when no answer came: the token or
   * CA cannot be read, the server cannot be reached, its certificate is not the CA's, no answer
   * within the deadline. Any answer, whatever its status, resolves.
   */
  get(path: string): Promise<ApiAnswer>;
  /**
   * `PATCH path` with `patch` as a JSON merge patch (`application/merge-patch+json`: only the
   * fields it names change). Resolves and rejects as `get`.
   */
  mergePatch(path: string, patch: unknown): Promise<ApiAnswer>;
}

/** A StatefulSet or a Pod is a few kilobytes; a larger answer is cut here (and still an answer). */
const MAX_BODY = 1024 * 1024;

/** TLS verification failures, told apart from an unreachable server: the fix differs. */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export interface InClusterOptions {
  /** Deadline of one request in milliseconds. @default 10000 */
  readonly timeoutMs?: number;
}

/**
 * The API of the cluster the pod runs in. Fails (KubernetesApiError) when the environment names
 * none: not in a pod.
 */
export function inClusterApi(env: NodeJS.ProcessEnv = process.env, options: InClusterOptions = {}): KubernetesApi {
  const host = env[KUBERNETES_SERVICE_ENV.host];
  if (!host) {
    throw new KubernetesApiError(
      `${KUBERNETES_SERVICE_ENV.host} is not set: not running in a Kubernetes pod, so there is no Kubernetes API to ask`,
    );
  }
  const portText = env[KUBERNETES_SERVICE_ENV.port] || '443';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new KubernetesApiError(`${KUBERNETES_SERVICE_ENV.port} is not a port: ${JSON.stringify(portText)}`);
  }
  const dir = env[ARCHIVER_ENV.serviceAccountDir] || SERVICE_ACCOUNT_DIR;
  const tokenFile = path.join(dir, 'token');
  const caFile = path.join(dir, 'ca.crt');
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const timeoutMs = options.timeoutMs ?? 10_000;

  const read = (file: string, what: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new KubernetesApiError(
        `cannot read the ServiceAccount's ${what} ${file} (${code}): the container must have its ServiceAccount token mounted there (automountServiceAccountToken: true, or a projected serviceAccountToken volume)`,
      );
    }
  };

  return {
    server,
    get: (apiPath: string) => send('GET', apiPath),
    mergePatch: (apiPath: string, patch: unknown) => send('PATCH', apiPath, { contentType: 'application/merge-patch+json', body: JSON.stringify(patch) }),
  };

  function send(method: 'GET' | 'PATCH', apiPath: string, content?: { readonly contentType: string; readonly body: string }): Promise<ApiAnswer> {
    // Read at every request: the kubelet rotates a projected token in place.
    let token: string;
    let ca: string;
    try {
      token = read(tokenFile, 'token').trim();
      ca = read(caFile, 'CA certificate');
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<ApiAnswer>((resolve, reject) => {
      const request = https.request(
        {
          host,
          port,
          path: apiPath,
          method,
          ca,
          headers: {
            Authorization: `Bearer ${token}`,
            Accept: 'application/json',
            ...(content ? { 'Content-Type': content.contentType, 'Content-Length': Buffer.byteLength(content.body) } : {}),
          },
          // One request, no pooled socket left open behind it.
          agent: false,
          timeout: timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            if (size < MAX_BODY) chunks.push(chunk.subarray(0, MAX_BODY - size));
            size += chunk.length;
          });
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, statusText: response.statusMessage ?? '', body: Buffer.concat(chunks).toString('utf8') }),
          );
          response.on('error', (error) => reject(failure(error)));
        },
      );
      request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
      request.on('error', (error) => reject(failure(error)));
      request.end(content?.body);
    });
  }

  function failure(error: Error): KubernetesApiError {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
    if (code && CERTIFICATE_ERRORS.has(code)) {
      return new KubernetesApiError(`the certificate of the Kubernetes API at ${server} was not accepted with the CA in ${caFile}: ${reason}`, { cause: error });
    }
    return new KubernetesApiError(`cannot reach the Kubernetes API at ${server}: ${reason}`, { cause: error });
  }
}
