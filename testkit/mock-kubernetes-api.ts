/**
 * A MOCK of the Kubernetes API server, for `archiver delete everything --only-when-gone`: no API
 * server can run on this machine. It serves HTTPS on 127.0.0.1 with a throwaway self-signed
 * certificate made by the openssl CLI, and a ServiceAccount directory (`token`, `ca.crt`) as the
 * kubelet mounts it in a pod.
 *
 * What it mimics of the real one (kube-apiserver 1.27), and nothing more:
 * - `GET /apis/apps/v1/namespaces/NS/statefulsets/NAME` and `GET /api/v1/namespaces/NS/pods/NAME`:
 *   200 with the object when the test put it there, else 404 with the API server's Status
 *   (reason NotFound, details naming the resource, group and name); any other path 404 with
 *   `404 page not found` as text, as the real server answers an unknown path;
 * - authentication by `Authorization: Bearer <token>`: another or no token is 401 Unauthorized;
 * - authorization by RBAC, when given Roles and RoleBindings (the rendered ones): the token's
 *   ServiceAccount may `get` an object only if a RoleBinding in its namespace binds it to a Role
 *   with a rule matching the API group, resource, verb and, when listed, the resource name;
 *   otherwise 403 Forbidden with the real server's message. Without `rbac`, everything is allowed.
 *
 * Not mimicked: every other verb and resource, watches, API discovery, ClusterRoles.
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
      const { status, body, contentType } = this.answer(request.method ?? '', request.url ?? '', request.headers.authorization);
      this.requests.push({ method: request.method ?? '', path: request.url ?? '', authorization: request.headers.authorization, status });
      response.writeHead(status, { 'Content-Type': contentType });
      response.end(body);
    });
  }

  public get port(): number {
    return (this.server.address() as AddressInfo).port;
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
  public putPod(namespace: string, name: string, options: { readonly deletionTimestamp?: string } = {}): void {
    this.put(RESOURCES[1].resource, namespace, name, options);
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

  private put(resource: Resource, namespace: string, name: string, options: { readonly deletionTimestamp?: string }): void {
    const metadata: Record<string, unknown> = { name, namespace, uid: randomBytes(8).toString('hex') };
    if (options.deletionTimestamp) metadata.deletionTimestamp = options.deletionTimestamp;
    this.objects.set(key(resource, namespace, name), { apiVersion: resource.apiVersion, kind: resource.kind, metadata, spec: {}, status: {} });
  }

  private answer(method: string, url: string, authorization: string | undefined): { status: number; body: string; contentType: string } {
    if (this.forcedAnswer) return { ...this.forcedAnswer, contentType: 'application/json' };
    if (authorization !== `Bearer ${this.token}`) return status(401, 'Unauthorized', 'Unauthorized');
    const match = RESOURCES.map(({ pattern, resource }) => ({ resource, m: url.match(pattern) })).find(({ m }) => m !== null);
    if (method !== 'GET' || !match?.m) return { status: 404, body: '404 page not found\n', contentType: 'text/plain; charset=utf-8' };
    const { resource } = match;
    const [namespace, name] = [decodeURIComponent(match.m[1]), decodeURIComponent(match.m[2])];
    const qualified = resource.group ? `${resource.resource}.${resource.group}` : resource.resource;
    const details = { name, ...(resource.group ? { group: resource.group } : {}), kind: resource.resource };
    if (!this.allowed(resource, namespace, name)) {
      const user = `system:serviceaccount:${this.serviceAccount.namespace}:${this.serviceAccount.name}`;
      return status(403, 'Forbidden', `${qualified} "${name}" is forbidden: User "${user}" cannot get resource "${resource.resource}" in API group "${resource.group}" in the namespace "${namespace}"`, details);
    }
    const object = this.objects.get(key(resource, namespace, name));
    if (!object) return status(404, 'NotFound', `${qualified} "${name}" not found`, details);
    return { status: 200, body: JSON.stringify(object), contentType: 'application/json' };
  }

  /** RBAC: a RoleBinding in `namespace` binds the ServiceAccount to a Role that allows this get. */
  private allowed(resource: Resource, namespace: string, name: string): boolean {
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
          includes(rule.verbs, 'get') &&
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
    const server = https.createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    return new MockKubernetesApi(server, serviceAccountDir, token, directory, options.serviceAccount ?? { namespace: 'demo', name: 'wal-postgres-wipeout' }, options.rbac);
  } catch (error) {
    fs.rmSync(directory, { recursive: true, force: true });
    throw error;
  }
}
