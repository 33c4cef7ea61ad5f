/**
 * `TerminationPolicy.WIPE_OUT`'s deletion of the archive: a Job that runs `archiver delete
 * everything --confirm --only-when-gone <namespace>/<name>` on this database's archive location
 * only, as an Argo CD PostDelete hook (Argo CD 2.10 and later): Argo CD creates it, with its
 * ServiceAccount, Role and RoleBinding, after it has deleted every other object of the
 * Application, and deletes them once the Job has succeeded. It is idempotent: an archive already
 * empty, or never written, is deleted without an error.
 *
 * The Job deletes nothing while the database exists. Before it touches the archive, the archiver
 * asks the Kubernetes API, as the Job's ServiceAccount (its token mounted, the Role granting `get`
 * on the StatefulSet and its pod 0 by name), whether both are gone: it deletes when the API server
 * answers "not found" for both, waits while either exists (Argo CD's deletion may still be
 * terminating the pods), refuses when one still exists after the wait, and refuses at once on any
 * answer that is neither (a missing Role, an unreachable API). So a tool that ignores the hook
 * annotation and applies the Job at once (`kubectl apply -f` of its directory in dist/, a lost
 * namespace restored from the same YAML) makes a Job that fails, the archive untouched. Flux is told never to apply the
 * hook's objects (`kustomize.toolkit.fluxcd.io/reconcile: disabled`, which Flux's apply honours for
 * objects it has not created).
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ARCHIVER_COMMANDS, ONLY_WHEN_GONE_FLAG, archiverImageCommand, databaseObjects } from '../contract';
import { grantRole } from './api-access';
import { ArchiverContainerFactory } from './archiver-container-factory';
import { ContainerResources } from './container-resources';
import { DATA_MOUNT } from './pod-layout';

/** The annotations of the hook's objects. */
export const WIPE_OUT_HOOK_ANNOTATIONS: Readonly<Record<string, string>> = Object.freeze({
  // Argo CD: run once the Application is deleted, after its other objects; delete on success.
  'argocd.argoproj.io/hook': 'PostDelete',
  'argocd.argoproj.io/hook-delete-policy': 'HookSucceeded',
  // Flux: never apply it (it would run at once: Flux has no delete hooks).
  'kustomize.toolkit.fluxcd.io/reconcile': 'disabled',
});

/**
 * The Job's command: every object of the archive the container's environment names, archive.json
 * last, once the StatefulSet `statefulSetName` in `namespace` and its pod 0 are gone.
 */
export function wipeOutCommand(namespace: string, statefulSetName: string): string[] {
  return archiverImageCommand(ARCHIVER_COMMANDS.delete, 'everything', '--confirm', ONLY_WHEN_GONE_FLAG, `${namespace}/${statefulSetName}`);
}

/**
 * The Role's rules: `get` on exactly the objects whose absence the archiver asks about (contract
 * `databaseObjects`), and nothing else.
 */
export function wipeOutRoleRules(namespace: string, statefulSetName: string): k8s.PolicyRule[] {
  return databaseObjects(namespace, statefulSetName).map((object) => ({
    apiGroups: [object.apiGroup],
    resources: [object.resource],
    resourceNames: [object.name],
    verbs: ['get'],
  }));
}

export interface WipeOutJobProps {
  /** The database's name: the Job, its ServiceAccount, Role and RoleBinding are `{name}-wipeout`. */
  readonly name: string;
  readonly namespace: string;
  /** The database's StatefulSet: the Job deletes nothing while it or its pod 0 exists. */
  readonly statefulSetName: string;
  /** The archiver containers of the database: its archive location and the storage Secret by reference. */
  readonly archiver: ArchiverContainerFactory;
  /** The container's resources. */
  readonly resources: ContainerResources;
  /**
   * Attempts after the first failure (a storage outage, say), with the Job controller's back-off.
   * @default 4
   */
  readonly backoffLimit?: number;
  /**
   * Seconds a finished Job is kept when nothing else deletes it (Argo CD deletes a succeeded hook
   * at once, and a failed one to create it again; a Job applied by hand stays this long).
   * @default 86400 - a day
   */
  readonly ttlSecondsAfterFinished?: number;
}

/**
 * The ServiceAccount, Role, RoleBinding and Job (construct ids `ServiceAccount`, `Role`,
 * `RoleBinding` and `Job` in `scope`'s `WipeOut`) that delete a database's archive when its Argo CD
 * Application is deleted, once its StatefulSet and pod 0 are gone. The Job's pod has none of the
 * database's selector labels: no Service or disruption budget of the database ever selects it.
 */
export class WipeOutJob extends Construct {
  public readonly serviceAccount: k8s.KubeServiceAccount;
  /** `get` on the database's StatefulSet and its pod 0, by name: all the Job may ask the API. */
  public readonly role: k8s.KubeRole;
  public readonly roleBinding: k8s.KubeRoleBinding;
  public readonly job: k8s.KubeJob;

  constructor(scope: Construct, id: string, props: WipeOutJobProps) {
    super(scope, id);
    const name = `${props.name}-wipeout`;
    const labels = {
      'app.kubernetes.io/name': 'postgres-wipeout',
      'app.kubernetes.io/instance': props.name,
      'app.kubernetes.io/component': 'wipeout',
      'app.kubernetes.io/managed-by': 'cdk8s',
    };
    // A fresh object per use: cdk8s keeps the metadata objects it is given.
    const metadata = () => ({ name, namespace: props.namespace, labels: { ...labels }, annotations: { ...WIPE_OUT_HOOK_ANNOTATIONS } });
    const archiver = props.archiver;

    // No token for whatever else runs as this ServiceAccount; the Job's pod mounts it (below).
    this.serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(),
      automountServiceAccountToken: false,
    });
    // Hooks as well, so that they exist when the Job runs (Argo CD creates a phase's hooks
    // ServiceAccount, Role, RoleBinding, Job in that order) and go with it.
    ({ role: this.role, roleBinding: this.roleBinding } = grantRole(this, {
      metadata: metadata(),
      rules: wipeOutRoleRules(props.namespace, props.statefulSetName),
      serviceAccountName: this.serviceAccount.name,
    }));
    this.job = new k8s.KubeJob(this, 'Job', {
      metadata: metadata(),
      spec: {
        backoffLimit: props.backoffLimit ?? 4,
        ttlSecondsAfterFinished: props.ttlSecondsAfterFinished ?? 86_400,
        template: {
          metadata: { labels: { ...labels } },
          spec: {
            restartPolicy: 'Never',
            serviceAccountName: this.serviceAccount.name,
            // The token the archiver presents to the Kubernetes API to ask whether the database is gone.
            automountServiceAccountToken: true,
            securityContext: archiver.podSecurityContext,
            containers: [
              archiver.container({
                name: 'wipeout',
                command: wipeOutCommand(props.namespace, props.statefulSetName),
                // The archiver's spool directory is under the data volume's mount point; this pod
                // has no data volume, and the root filesystem is read-only.
                volumeMounts: [{ name: 'spool', mountPath: DATA_MOUNT }],
                resources: props.resources,
              }),
            ],
            volumes: [{ name: 'spool', emptyDir: {} }, ...archiver.volumes],
          },
        },
      },
    });
  }
}
