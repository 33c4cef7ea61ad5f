/**
 * A MOCK of the Kubernetes API server, for `archiver delete everything --only-when-gone` and the
 * sidecar's role label: no API server can run on this machine. It serves HTTPS on 127.0.0.1 with
 * a throwaway self-signed certificate made by the openssl CLI, and a ServiceAccount directory
 * (`token`, `ca.crt`, `namespace`) as the kubelet mounts it in a pod.
 *
 * What it mimics of the real one (kube-apiserver 1.27), and nothing more:
 * - `GET /apis/apps/v1/namespaces/NS/statefulsets/NAME` and `GET /api/v1/namespaces/NS/pods/NAME`:
 *   200 with the object when the test put it there, else 404 with the API server's Status
 *   (reason NotFound, details naming the resource, group and name); any other path 404 with
 *   `404 page not found` as text, as the real server answers an unknown path;
 * - `PATCH /api/v1/namespaces/NS/pods/NAME` with `Content-Type: application/merge-patch+json`: the
 *   patch's `metadata.labels` merged into the pod's (a null value removes a label), 200 with the
 *   pod; another content type 415 UnsupportedMediaType; a pod that is not there 404;
 * - authentication by `Authorization: Bearer <token>`: another or no token is 401 Unauthorized;
 * - authorization by RBAC, when given Roles and RoleBindings (the rendered ones): the token's
 *   ServiceAccount may `get` (`patch`) an object only if a RoleBinding in its namespace binds it to
 *   a Role with a rule matching the API group, resource, verb and, when listed, the resource name;
 *   otherwise 403 Forbidden with the real server's message. Without `rbac`, everything is allowed.
 *
 * Not mimicked: every other verb and resource, other patch types and fields, watches, API
 * discovery, ClusterRoles.
 *
 * `goOffline()` closes the port (connections are refused, as for an API server that is down) until
 * `goOnline()` listens on it again.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { generateSelfSignedCertificate } from './s3-server';

/** A Role, RoleBinding or any other object, as the constructs render it. */
export interface RenderedObject {
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string };
  readonly [field: string]: any;
}

export interface MockKubernetesApiOptions {
  /** The ServiceAccount the token belongs to. @default demo/wal-postgres-wipeout */
  readonly serviceAccount?: { readonly namespace: string; readonly name: string };
  /**
   * Roles and RoleBindings that authorize the token's ServiceAccount (an empty list: nothing is
   * allowed).
   * @default - every request with the token is allowed
   */
  readonly rbac?: readonly RenderedObject[];
}

/** One request the mock received. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** The Authorization header as received. */
  readonly authorization: string | undefined;
  /** The status it answered. */
  readonly status: number;
  /** The request's body (a PATCH's), as received. */
  readonly body: string;
}

/** An answer the test forces (e.g. 500), instead of the mock's own. */
export interface ForcedAnswer {
  readonly status: number;
  readonly body: string;
}

interface Resource {
  readonly group: string;
  readonly resource: string;
  readonly kind: string;
  readonly apiVersion: string;
}

const RESOURCES: readonly { readonly pattern: RegExp; readonly resource: Resource }[] = [
  { pattern: /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/statefulsets\/([^/]+)$/, resource: { group: 'apps', resource: 'statefulsets', kind: 'StatefulSet', apiVersion: 'apps/v1' } },
  { pattern: /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/, resource: { group: '', resource: 'pods', kind: 'Pod', apiVersion: 'v1' } },
];

const DEFAULT_SERVICE_ACCOUNT = { namespace: 'demo', name: 'wal-postgres-wipeout' } as const;

export class MockKubernetesApi {
  /** Every request received, in order. */
  public readonly requests: RecordedRequest[] = [];
  /** Answers every request with this instead, while set. */
  public forcedAnswer: ForcedAnswer | undefined;
  /** The Roles and RoleBindings that authorize the ServiceAccount; undefined: everything allowed. */
  public rbac: readonly RenderedObject[] | undefined;
  /** The ServiceAccount the token belongs to (a test running another pod's Job sets that pod's). */
  public serviceAccount: { readonly namespace: string; readonly name: string };
  private readonly objects = new Map<string, Record<string, unknown>>();
  /** The port, while goOffline() has it closed. */
  private offlinePort: number | undefined;

  constructor(
    private readonly server: https.Server,
    /** The directory of `token` and `ca.crt` (point ARCHIVER_SERVICE_ACCOUNT_DIR here). */
    public readonly serviceAccountDir: string,
    /** The ServiceAccount's token: what the archiver must send, and never print. */
    public readonly token: string,
    private readonly directory: string,
    serviceAccount: { readonly namespace: string; readonly name: string },
    rbac: readonly RenderedObject[] | undefined,
  ) {
    this.serviceAccount = serviceAccount;
    this.rbac = rbac;
    server.on('request', (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const received = Buffer.concat(chunks).toString('utf8');
        const { status, body, contentType } = this.answer(request.method ?? '', request.url ?? '', request.headers.authorization, request.headers['content-type'], received);
        this.requests.push({ method: request.method ?? '', path: request.url ?? '', authorization: request.headers.authorization, status, body: received });
        response.writeHead(status, { 'Content-Type': contentType });
        response.end(body);
      });
    });
  }

  public get port(): number {
    return this.offlinePort ?? (this.server.address() as AddressInfo).port;
  }

  /** The environment the kubelet gives a pod's containers, and the ServiceAccount directory. */
  public get env(): Record<string, string> {
    return { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(this.port), ARCHIVER_SERVICE_ACCOUNT_DIR: this.serviceAccountDir };
  }

  /** Creates (or replaces) a StatefulSet; `deletionTimestamp` marks it as being deleted. */
  public putStatefulSet(namespace: string, name: string, options: { readonly deletionTimestamp?: string } = {}): void {
    this.put(RESOURCES[0].resource, namespace, name, options);
  }

  /** Creates (or replaces) a Pod; `deletionTimestamp` marks it as terminating. */
  public putPod(namespace: string, name: string, options: { readonly deletionTimestamp?: string; readonly labels?: Record<string, string> } = {}): void {
    this.put(RESOURCES[1].resource, namespace, name, options);
  }

  /** A Pod's labels as they are now (after the patches), or undefined when there is no such pod. */
  public podLabels(namespace: string, name: string): Record<string, string> | undefined {
    const pod = this.objects.get(key(RESOURCES[1].resource, namespace, name)) as { metadata: { labels?: Record<string, string> } } | undefined;
    return pod ? { ...pod.metadata.labels } : undefined;
  }

  /** Closes the port: every new connection is refused until goOnline() (a request being answered is answered first). */
  public async goOffline(): Promise<void> {
    this.offlinePort = this.port;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await closed;
  }

  /** Listens again on the port goOffline() closed. */
  public async goOnline(): Promise<void> {
    const port = this.offlinePort;
    if (port === undefined) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: '127.0.0.1', port }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.offlinePort = undefined;
  }

  public deleteStatefulSet(namespace: string, name: string): void {
    this.objects.delete(key(RESOURCES[0].resource, namespace, name));
  }

  public deletePod(namespace: string, name: string): void {
    this.objects.delete(key(RESOURCES[1].resource, namespace, name));
  }

  /** Forgets every object, request and forced answer (the RBAC stays as set). */
  public reset(): void {
    this.objects.clear();
    this.requests.length = 0;
    this.forcedAnswer = undefined;
  }

  /** The requests for `path`'s object. */
  public requestsFor(path: string): RecordedRequest[] {
    return this.requests.filter((request) => request.path === path);
  }

  /** Closes the server and its connections, and removes its directory. Idempotent. */
  public async stop(): Promise<void> {
    if (this.server.listening) {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      await closed;
    }
    fs.rmSync(this.directory, { recursive: true, force: true });
  }

  private put(resource: Resource, namespace: string, name: string, options: { readonly deletionTimestamp?: string; readonly labels?: Record<string, string> }): void {
    const metadata: Record<string, unknown> = { name, namespace, uid: randomBytes(8).toString('hex') };
    if (options.deletionTimestamp) metadata.deletionTimestamp = options.deletionTimestamp;
    if (options.labels) metadata.labels = { ...options.labels };
    this.objects.set(key(resource, namespace, name), { apiVersion: resource.apiVersion, kind: resource.kind, metadata, spec: {}, status: {} });
  }

  private answer(method: string, url: string, authorization: string | undefined, contentType: string | undefined, body: string): { status: number; body: string; contentType: string } {
    if (this.forcedAnswer) return { ...this.forcedAnswer, contentType: 'application/json' };
    if (authorization !== `Bearer ${this.token}`) return status(401, 'Unauthorized', 'Unauthorized');
    const match = RESOURCES.map(({ pattern, resource }) => ({ resource, m: url.match(pattern) })).find(({ m }) => m !== null);
    const verb = method === 'GET' ? 'get' : method === 'PATCH' && match?.resource.resource === 'pods' ? 'patch' : undefined;
    if (verb === undefined || !match?.m) return { status: 404, body: '404 page not found\n', contentType: 'text/plain; charset=utf-8' };
    const { resource } = match;
    const [namespace, name] = [decodeURIComponent(match.m[1]), decodeURIComponent(match.m[2])];
    const qualified = resource.group ? `${resource.resource}.${resource.group}` : resource.resource;
    const details = { name, ...(resource.group ? { group: resource.group } : {}), kind: resource.resource };
    if (!this.allowed(resource, namespace, name, verb)) {
      const user = `system:serviceaccount:${this.serviceAccount.namespace}:${this.serviceAccount.name}`;
      return status(403, 'Forbidden', `${qualified} "${name}" is forbidden: User "${user}" cannot ${verb} resource "${resource.resource}" in API group "${resource.group}" in the namespace "${namespace}"`, details);
    }
    const object = this.objects.get(key(resource, namespace, name)) as { metadata: { labels?: Record<string, string | null> } } | undefined;
    if (!object) return status(404, 'NotFound', `${qualified} "${name}" not found`, details);
    if (verb === 'patch') {
      if (contentType?.split(';')[0].trim() !== 'application/merge-patch+json') {
        return status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
      }
      let patch: { metadata?: { labels?: Record<string, string | null> } };
      try {
        patch = JSON.parse(body);
      } catch (error) {
        return status(400, 'BadRequest', `error decoding patch: ${(error as Error).message}`);
      }
      const labels = { ...object.metadata.labels, ...patch.metadata?.labels };
      for (const [label, value] of Object.entries(labels)) if (value === null) delete labels[label];
      object.metadata.labels = labels;
    }
    return { status: 200, body: JSON.stringify(object), contentType: 'application/json' };
  }

  /** RBAC: a RoleBinding in `namespace` binds the ServiceAccount to a Role that allows `verb` on this object. */
  private allowed(resource: Resource, namespace: string, name: string, verb: string): boolean {
    if (this.rbac === undefined) return true;
    const inNamespace = (o: RenderedObject) => (o.metadata.namespace ?? 'default') === namespace;
    const bindings = this.rbac.filter((o) => o.kind === 'RoleBinding' && inNamespace(o));
    const roles = this.rbac.filter((o) => o.kind === 'Role' && inNamespace(o));
    const includes = (list: readonly string[] | undefined, value: string) => (list ?? []).includes(value) || (list ?? []).includes('*');
    return bindings.some((binding) => {
      const boundHere = (binding.subjects ?? []).some(
        (s: any) => s.kind === 'ServiceAccount' && s.name === this.serviceAccount.name && (s.namespace ?? namespace) === this.serviceAccount.namespace,
      );
      if (!boundHere || binding.roleRef?.kind !== 'Role') return false;
      const role = roles.find((r) => r.metadata.name === binding.roleRef.name);
      return (role?.rules ?? []).some(
        (rule: any) =>
          includes(rule.apiGroups, resource.group) &&
          includes(rule.resources, resource.resource) &&
          includes(rule.verbs, verb) &&
          (rule.resourceNames === undefined || rule.resourceNames.length === 0 || rule.resourceNames.includes(name)),
      );
    });
  }
}

function key(resource: Resource, namespace: string, name: string): string {
  return `${resource.group}/${resource.resource}/${namespace}/${name}`;
}

/** A Kubernetes Status answer, as the real server writes it. */
function status(code: number, reason: string, message: string, details?: Record<string, string>): { status: number; body: string; contentType: string } {
  const body = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
  return { status: code, body: JSON.stringify(body), contentType: 'application/json' };
}

/**
 * Starts the mock in a new directory under `parent`: a certificate for IP 127.0.0.1, the
 * ServiceAccount directory (a random token, the certificate as `ca.crt`), and the server on
 * 127.0.0.1 at a port the kernel picks. Stop it with `stop()`.
 */
export async function startMockKubernetesApi(parent: string, options: MockKubernetesApiOptions = {}): Promise<MockKubernetesApi> {
  const directory = fs.mkdtempSync(path.join(parent, 'mock-kubernetes-api-'));
  try {
    const { key: keyFile, cert: certFile } = await generateSelfSignedCertificate(path.join(directory, 'tls'));
    const serviceAccountDir = path.join(directory, 'serviceaccount');
    fs.mkdirSync(serviceAccountDir);
    const token = `mock-token-${randomBytes(24).toString('hex')}`;
    fs.writeFileSync(path.join(serviceAccountDir, 'token'), token);
    fs.copyFileSync(certFile, path.join(serviceAccountDir, 'ca.crt'));
    // What the downward API projects beside them: the pod's namespace (the ServiceAccount's).
    fs.writeFileSync(path.join(serviceAccountDir, 'namespace'), (options.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT).namespace);
    const server = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    return new MockKubernetesApi(server, serviceAccountDir, token, directory, options.serviceAccount ?? DEFAULT_SERVICE_ACCOUNT, options.rbac);
  } catch (error) {
    fs.rmSync(directory, { recursive: true, force: true });
    throw error;
  }
}
