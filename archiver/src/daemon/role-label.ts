/**
 * The pod's role label: the `archiver` sidecar labels its own pod `archived-postgres/role:
 * primary` or `standby` (contract/pod-role.ts) from what its server says it is, so that the
 * read-only Service, which selects `standby`, never sends a client to a server that accepts
 * writes. There is no operator: each pod says what it is, and nothing else may touch its label
 * (the Role the constructs render names the StatefulSet's pods, verbs get and patch).
 *
 * Every ROLE_CHECK_SECONDS:
 * 1. Ask the server over the Unix socket (one session, kept open and reopened after the server
 *    restarts) `pg_is_in_recovery()`: in recovery it is a standby, else the primary. A server that
 *    does not answer leaves the label as it is: the readiness probe takes a down server out of the
 *    Services, and a label guessed while it is down would be worse than the last one it earned.
 * 2. Once per sidecar, GET the pod and read the label it has (a restarted sidecar patches nothing
 *    that is already right).
 * 3. When the role differs from the label, PATCH the pod with a JSON merge patch of that one label.
 * A failure (PostgreSQL, the token, RBAC, the API server) is logged once per kind of failure and
 * retried at the next look: the sidecar's WAL work never depends on it, and it never throws.
 *
 * No message carries the token: the API module keeps it in the Authorization header, and only the
 * status, the API server's Status message and our own words are logged.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARCHIVER_ENV, PodRole, ROLE_CHECK_SECONDS, ROLE_LABEL, SERVICE_ACCOUNT_DIR, podPath, roleLabelPatch } from '../../../contract';
import { ConnectionSettings, PostgresSession } from '../backup/postgres-session';
import { KubernetesApi, inClusterApi } from '../kubernetes-api';
import { Logger } from '../logger';
import { MetricsRecorder, NO_METRICS } from '../metrics/recorder';
import { PeriodicLook } from './periodic-look';

export interface RoleLabellerProps {
  /** The Kubernetes API as the pod's ServiceAccount (its GET and merge patch). */
  readonly api: Pick<KubernetesApi, 'server' | 'get' | 'mergePatch'>;
  /** The pod's name (POD_NAME). */
  readonly podName: string;
  /**
   * The pod's namespace, or where to read it: the `namespace` file the ServiceAccount volume
   * projects from the downward API, read until it could be.
   */
  readonly namespace: string | { readonly file: string };
  readonly log: Logger;
  /** @default - libpq's environment (PGHOST: the socket directory the sidecar shares) */
  readonly connection?: ConnectionSettings;
  /** How often the server is asked. @default ROLE_CHECK_SECONDS × 1000 */
  readonly intervalMs?: number;
  /** Counts the looks that could not read or patch the pod. @default NO_METRICS */
  readonly metrics?: MetricsRecorder;
}

/** What one look found and did. */
export type RoleLookOutcome =
  | { readonly kind: 'unchanged'; readonly role: PodRole }
  | { readonly kind: 'patched'; readonly role: PodRole; readonly previous: string | undefined }
  /** The server did not answer: the label is left as it is. */
  | { readonly kind: 'postgres-unreachable'; readonly error: string }
  /** The pod could not be read or patched: tried again at the next look. */
  | { readonly kind: 'api-failed'; readonly role: PodRole; readonly error: string };

/** The failure of one request to the API: the status and the API server's own message, never a header. */
function describeAnswer(what: string, answer: { status: number; statusText: string; body: string }): string {
  let message: string | undefined;
  try {
    const status = JSON.parse(answer.body) as { message?: unknown };
    if (typeof status.message === 'string') message = status.message;
  } catch {
    // not a Status: the text is cut below
  }
  const hint = answer.status === 401 ? ': the token was refused' : answer.status === 403 ? ': the Role must grant get and patch on this pod (resourceNames)' : '';
  return `${what} answered ${answer.status} ${answer.statusText}${message ? ` (${message.slice(0, 300)})` : ''}${hint}`;
}

export class RoleLabeller {
  private readonly loop: PeriodicLook;
  private session: PostgresSession | undefined;
  private namespace: string | undefined;
  /** The label the pod has, as last read or patched; undefined until the pod was read. */
  private label: { readonly value: string | undefined } | undefined;
  /** The failure last logged, so that a failure repeated every look is logged once. */
  private lastFailure: string | undefined;
  private failures = 0;

  constructor(private readonly props: RoleLabellerProps) {
    if (typeof props.namespace === 'string') this.namespace = props.namespace;
    this.loop = new PeriodicLook(() => this.look(), props.intervalMs ?? ROLE_CHECK_SECONDS * 1000);
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
    await this.session?.close();
    this.session = undefined;
  }

  /** One look (steps 1 to 3 of the module's comment). Never throws. */
  async look(): Promise<RoleLookOutcome> {
    const role = await this.askServer();
    if (typeof role !== 'string') return this.failed({ kind: 'postgres-unreachable', error: role.error });
    try {
      const namespace = this.readNamespace();
      const pod = podPath(namespace, this.props.podName);
      if (this.label === undefined) {
        const answer = await this.props.api.get(pod);
        if (answer.status !== 200) return this.failed({ kind: 'api-failed', role, error: describeAnswer(`GET of pod ${namespace}/${this.props.podName}`, answer) });
        const labels = (JSON.parse(answer.body) as { metadata?: { labels?: Record<string, string> } }).metadata?.labels;
        this.label = { value: labels?.[ROLE_LABEL] };
      }
      if (this.label.value === role) return this.succeeded({ kind: 'unchanged', role });
      const answer = await this.props.api.mergePatch(pod, roleLabelPatch(role));
      if (answer.status !== 200) return this.failed({ kind: 'api-failed', role, error: describeAnswer(`PATCH of pod ${namespace}/${this.props.podName}`, answer) });
      const previous = this.label.value;
      this.label = { value: role };
      this.props.log.info('the pod is labelled with its role', { pod: this.props.podName, label: ROLE_LABEL, role, previous: previous ?? '(none)' });
      return this.succeeded({ kind: 'patched', role, previous });
    } catch (error) {
      return this.failed({ kind: 'api-failed', role, error: (error as Error).message });
    }
  }

  /** Step 1: the role, or why the server did not say. */
  private async askServer(): Promise<PodRole | { error: string }> {
    try {
      this.session ??= await PostgresSession.open({ ...this.props.connection, applicationName: 'archiver role-label' });
      const [row] = await this.session.rows<{ in_recovery: boolean }>('SELECT pg_is_in_recovery() AS in_recovery');
      return row.in_recovery ? 'standby' : 'primary';
    } catch (error) {
      // A session the server ended (a restart) is opened again at the next look.
      await this.session?.close();
      this.session = undefined;
      return { error: (error as Error).message };
    }
  }

  private readNamespace(): string {
    if (this.namespace !== undefined) return this.namespace;
    const file = (this.props.namespace as { file: string }).file;
    try {
      const namespace = fs.readFileSync(file, 'utf8').trim();
      if (namespace) return (this.namespace = namespace);
    } catch (error) {
      throw new Error(`cannot read the pod's namespace from ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): the ServiceAccount volume projects it from the downward API`);
    }
    throw new Error(`the pod's namespace file ${file} is empty`);
  }

  private failed(outcome: RoleLookOutcome & { error: string }): RoleLookOutcome {
    this.failures++;
    if (outcome.kind === 'api-failed') (this.props.metrics ?? NO_METRICS).roleLabelFailed();
    const what = outcome.kind === 'postgres-unreachable' ? 'PostgreSQL does not answer; the pod keeps its role label' : "cannot label the pod with its role (trying again)";
    const key = `${outcome.kind}:${outcome.error}`;
    // Every look while the API server is down would log the same line: once per kind of failure.
    if (key !== this.lastFailure) this.props.log.warn(what, { pod: this.props.podName, error: outcome.error, failures: this.failures });
    else this.props.log.debug(what, { pod: this.props.podName, error: outcome.error, failures: this.failures });
    this.lastFailure = key;
    return outcome;
  }

  private succeeded(outcome: RoleLookOutcome): RoleLookOutcome {
    if (this.lastFailure !== undefined) this.props.log.info('the pod role label is up to date again', { pod: this.props.podName, failures: this.failures });
    this.lastFailure = undefined;
    this.failures = 0;
    return outcome;
  }
}

/**
 * The entry point the background archiver starts (from lib/scheduler.cjs) when ARCHIVER_ROLE_LABEL
 * is `on`: the API from the pod's environment, its name from POD_NAME, its namespace from the
 * ServiceAccount directory. Throws (the caller logs it) when the environment names no pod or API.
 */
export function startRoleLabeller(props: { readonly env: Readonly<Record<string, string | undefined>>; readonly log: Logger; readonly metrics?: MetricsRecorder; readonly intervalMs?: number }): RoleLabeller {
  const podName = props.env[ARCHIVER_ENV.podName];
  if (!podName) throw new Error(`${ARCHIVER_ENV.podName} is not set: render it from the downward API (fieldRef metadata.name)`);
  const api = inClusterApi(props.env as NodeJS.ProcessEnv);
  const dir = props.env[ARCHIVER_ENV.serviceAccountDir] || SERVICE_ACCOUNT_DIR;
  const labeller = new RoleLabeller({ api, podName, namespace: { file: path.join(dir, 'namespace') }, log: props.log, metrics: props.metrics, intervalMs: props.intervalMs });
  props.log.info('labelling the pod with its role', { pod: podName, label: ROLE_LABEL, api: api.server });
  labeller.start();
  return labeller;
}
