/**
 * The pods' role labels, without an operator: each pod's `archiver` sidecar labels its own pod
 * `archived-postgres/role: primary` or `standby` from `pg_is_in_recovery()`
 * (archiver/src/daemon/role-label.ts), and the read-only Service selects `standby` only
 * (postgres-services.ts). This renders what the sidecar needs for that and nothing more:
 * - a Role that allows `get` and `patch` on exactly the StatefulSet's pods, by name
 *   (`{name}-0` .. `{name}-{replicas-1}`), bound to the database's ServiceAccount;
 * - the ServiceAccount's token as a projected volume mounted in the sidecar only: the pod keeps
 *   `automountServiceAccountToken: false`, so PostgreSQL (and whatever a superuser makes it run)
 *   has no token;
 * - ARCHIVER_ROLE_LABEL=on in the sidecar.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ARCHIVER_ENV, ROLE_LABEL_VERBS } from '../contract';
import { grantRole, serviceAccountTokenMount, serviceAccountTokenVolume } from './api-access';
import { MAX_REPLICAS } from './postgres-config';
import { PostgresStatefulSet } from './postgres-stateful-set';

/** The pod volume of the sidecar's token. */
export const SIDECAR_TOKEN_VOLUME = 'archiver-api-token';

/**
 * The Role's one rule: `get` and `patch` on the pods `{statefulSetName}-0` .. `-{replicas-1}`. A
 * pod beyond `replicas` (a `kubectl scale` past Git) cannot label itself, so it never joins the
 * read-only Service. Never an empty `resourceNames`, which RBAC reads as every pod: invalid
 * replicas (reported by validation, nothing is written) still render pod 0's name.
 */
export function podRoleRules(statefulSetName: string, replicas: number): k8s.PolicyRule[] {
  const members = Number.isInteger(replicas) && replicas >= 1 ? Math.min(replicas, MAX_REPLICAS) : 1;
  return [
    {
      apiGroups: [''],
      resources: ['pods'],
      resourceNames: Array.from({ length: members }, (_, ordinal) => `${statefulSetName}-${ordinal}`),
      verbs: [...ROLE_LABEL_VERBS],
    },
  ];
}

export interface PodRoleLabelProps {
  /** The Role's and RoleBinding's name. */
  readonly name: string;
  readonly namespace: string;
  /** The labels of every object of the database. */
  readonly labels: Record<string, string>;
  /** The StatefulSet whose pods the sidecars label. */
  readonly statefulSetName: string;
  readonly replicas: number;
  /** The pods' ServiceAccount, which the Role is bound to. */
  readonly serviceAccountName: string;
}

/**
 * The Role and RoleBinding (construct ids `Role` and `RoleBinding` in `scope`'s `PodRole`) that let
 * each database pod's sidecar label its own pod; `bind()` gives the StatefulSet's sidecar its token
 * and switches the label on. Constructed before the StatefulSet, so that `kubectl apply -f` creates
 * the Role before the first pod asks.
 */
export class PodRoleLabel extends Construct {
  /** `get` and `patch` on the StatefulSet's pods, by name: all the sidecar may ask the API. */
  public readonly role: k8s.KubeRole;
  public readonly roleBinding: k8s.KubeRoleBinding;

  constructor(scope: Construct, id: string, props: PodRoleLabelProps) {
    super(scope, id);
    ({ role: this.role, roleBinding: this.roleBinding } = grantRole(this, {
      metadata: { name: props.name, namespace: props.namespace, labels: { ...props.labels } },
      rules: podRoleRules(props.statefulSetName, props.replicas),
      serviceAccountName: props.serviceAccountName,
    }));
  }

  /** Mounts the token in `statefulSet`'s `archiver` sidecar (and no other container) and turns the label on there. */
  public bind(statefulSet: PostgresStatefulSet): void {
    statefulSet.addVolume(serviceAccountTokenVolume(SIDECAR_TOKEN_VOLUME));
    statefulSet.archiverSidecar.addVolumeMount(serviceAccountTokenMount(SIDECAR_TOKEN_VOLUME));
    statefulSet.archiverSidecar.addEnv({ name: ARCHIVER_ENV.roleLabel, value: 'on' });
  }
}
