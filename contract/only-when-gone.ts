/**
 * `archiver delete everything --only-when-gone <namespace>/<statefulset>`: the guard that keeps the
 * WipeOut Job (constructs/wipe-out-job.ts) from deleting the archive of a database that still
 * exists. Before it deletes anything, the archiver asks the Kubernetes API whether the database's
 * StatefulSet and its pod 0 are gone; the constructs render the Role that lets the Job's
 * ServiceAccount ask exactly that. Both sides take the flags, the objects and their API paths from
 * here, so that the Role grants what the archiver asks for.
 */

/** `delete everything`'s option naming the database (`<namespace>/<statefulset>`) that must be gone first. */
export const ONLY_WHEN_GONE_FLAG = '--only-when-gone';

/** How long `--only-when-gone` waits for the database to be gone before it refuses: a duration (contract/duration.ts). */
export const GONE_TIMEOUT_FLAG = '--gone-timeout';

/**
 * The default of GONE_TIMEOUT_FLAG. Argo CD runs a PostDelete hook once the Application's other
 * objects are deleted, but the StatefulSet's pods may still be terminating (PostgreSQL shuts down,
 * the sidecar pushes its last WAL): minutes, not hours.
 */
export const DEFAULT_GONE_TIMEOUT = '10m';

/** Seconds between two questions to the Kubernetes API while the database still exists. */
export const GONE_POLL_SECONDS = 5;

/** Where a pod finds its ServiceAccount's token (`token`) and the API server's CA (`ca.crt`). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The API server's address, which the kubelet gives every container. */
export const KUBERNETES_SERVICE_ENV = { host: 'KUBERNETES_SERVICE_HOST', port: 'KUBERNETES_SERVICE_PORT' } as const;

/** An object whose existence the guard asks about, and the RBAC rule that lets it ask. */
export interface DatabaseObject {
  /** `StatefulSet`, `Pod`: for messages. */
  readonly kind: string;
  /** The API group: `''` for the core group. */
  readonly apiGroup: string;
  /** The resource, as RBAC and the API server's NotFound answers name it (`statefulsets`). */
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  /** The path of `GET` on the object. */
  readonly path: string;
}

/**
 * The objects that are there as long as the database is: its StatefulSet, and its pod 0 (the
 * primary, which archives), which outlives the StatefulSet while it terminates. In the order asked.
 */
export function databaseObjects(namespace: string, statefulSetName: string): DatabaseObject[] {
  const ns = encodeURIComponent(namespace);
  const pod = `${statefulSetName}-0`;
  return [
    {
      kind: 'StatefulSet',
      apiGroup: 'apps',
      resource: 'statefulsets',
      namespace,
      name: statefulSetName,
      path: `/apis/apps/v1/namespaces/${ns}/statefulsets/${encodeURIComponent(statefulSetName)}`,
    },
    { kind: 'Pod', apiGroup: '', resource: 'pods', namespace, name: pod, path: `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod)}` },
  ];
}
