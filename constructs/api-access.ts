/**
 * A pod's access to the Kubernetes API, granted as narrowly as it can be: a Role whose rules name
 * the objects by `resourceNames`, bound to one ServiceAccount, and the ServiceAccount's token
 * mounted in the one container that uses it. The WipeOut Job (wipe-out-job.ts) asks whether its
 * database is gone; the database's `archiver` sidecar labels its own pod with its role
 * (pod-role.ts).
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { SERVICE_ACCOUNT_DIR } from '../contract';

export interface RoleGrantProps {
  /** The Role's and RoleBinding's metadata (name, namespace, labels, annotations); copied for each. */
  readonly metadata: k8s.ObjectMeta & { readonly name: string; readonly namespace: string };
  /** What the ServiceAccount may do: name the objects (`resourceNames`) wherever the verbs allow it. */
  readonly rules: k8s.PolicyRule[];
  /** The ServiceAccount, in the same namespace, that gets the rules. */
  readonly serviceAccountName: string;
}

/**
 * A Role and the RoleBinding that grants it to a ServiceAccount, as construct ids `Role` and
 * `RoleBinding` in `scope` (in that order: Argo CD creates hooks of one phase in the order given).
 */
export function grantRole(scope: Construct, props: RoleGrantProps): { role: k8s.KubeRole; roleBinding: k8s.KubeRoleBinding } {
  // A fresh object per use: cdk8s keeps the metadata objects it is given.
  const metadata = () => structuredClone(props.metadata);
  const role = new k8s.KubeRole(scope, 'Role', { metadata: metadata(), rules: props.rules });
  const roleBinding = new k8s.KubeRoleBinding(scope, 'RoleBinding', {
    metadata: metadata(),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.name },
    subjects: [{ kind: 'ServiceAccount', name: props.serviceAccountName, namespace: props.metadata.namespace }],
  });
  return { role, roleBinding };
}

/** Seconds a projected token is valid; the kubelet renews it in place at 80 % of that, and the archiver reads it at every request. */
export const TOKEN_EXPIRATION_SECONDS = 3600;

/**
 * The volume the kubelet would mount in every container with `automountServiceAccountToken:
 * true` (a bound, expiring token, the cluster's CA from the `kube-root-ca.crt` ConfigMap every
 * namespace has, the pod's namespace from the downward API), as a volume of the pod that only the
 * containers that mount it see. The fields the API server would default are rendered, so that the
 * live StatefulSet is what Git holds.
 */
export function serviceAccountTokenVolume(name: string): k8s.Volume {
  return {
    name,
    projected: {
      defaultMode: 0o644,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: TOKEN_EXPIRATION_SECONDS } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardApi: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}

/** The mount of `serviceAccountTokenVolume(name)` where the kubelet would put it, and where the archiver reads it. */
export function serviceAccountTokenMount(name: string): k8s.VolumeMount {
  return { name, mountPath: SERVICE_ACCOUNT_DIR, readOnly: true };
}
