/**
 * The role label: each database pod's `archiver` sidecar labels its own pod with what its server
 * is, `primary` or `standby` (from `pg_is_in_recovery()`), and the read-only Service selects
 * `standby` only, so that no client of it ever reaches a server that accepts writes. The
 * constructs render the Service's selector and the Role that lets the sidecar patch its pod; the
 * archiver patches the label. Both take the names from here.
 */

/** The pod label the sidecar sets. */
export const ROLE_LABEL = 'archived-postgres/role';

/** The label's values: `primary` out of recovery (accepts writes), `standby` in recovery (read-only). */
export const POD_ROLES = ['primary', 'standby'] as const;
export type PodRole = (typeof POD_ROLES)[number];

/** How often the sidecar asks its server whether it is in recovery (and patches the label when that changed). */
export const ROLE_CHECK_SECONDS = 10;

/**
 * The RBAC verbs the sidecar needs on its own pod: `get` to read the label it finds when it starts
 * (a restarted sidecar patches nothing that is already right), `patch` to change it.
 */
export const ROLE_LABEL_VERBS = ['get', 'patch'] as const;

/** The API path of pod `name` in `namespace` (GET and PATCH). */
export function podPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`;
}

/** The JSON merge patch (RFC 7386, `application/merge-patch+json`) that sets the role label and touches nothing else. */
export function roleLabelPatch(role: PodRole): { metadata: { labels: Record<string, string> } } {
  return { metadata: { labels: { [ROLE_LABEL]: role } } };
}
