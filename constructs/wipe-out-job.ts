/**
 * `TerminationPolicy.WIPE_OUT`'s deletion of the archive: a Job that runs `archiver delete
 * everything --confirm` on this database's archive location only, as an Argo CD PostDelete hook
 * (Argo CD 2.10 and later): Argo CD creates it, with its ServiceAccount, after it has deleted
 * every other object of the Application, and deletes both once the Job has succeeded. It is
 * idempotent: an archive already empty, or never written, is deleted without an error.
 *
 * Any other tool would apply the hook as an ordinary Job and empty the archive at once. Flux is
 * told never to apply it (`kustomize.toolkit.fluxcd.io/reconcile: disabled`, which Flux's apply
 * honours for objects it has not created); `kubectl apply` knows no such annotation.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ARCHIVER_COMMANDS, archiverImageCommand } from '../contract';
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

/** The Job's command: every object of the archive the container's environment names, archive.json last. */
export const WIPE_OUT_COMMAND: readonly string[] = archiverImageCommand(ARCHIVER_COMMANDS.delete, 'everything', '--confirm');

export interface WipeOutJobProps {
  /** The database's name: the Job and its ServiceAccount are `{name}-wipeout`. */
  readonly name: string;
  readonly namespace: string;
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
 * The ServiceAccount and Job (construct ids `ServiceAccount` and `Job` in `scope`'s `WipeOut`) that
 * delete a database's archive when its Argo CD Application is deleted. Their pod has none of the
 * database's selector labels: no Service or disruption budget of the database ever selects it.
 */
export class WipeOutJob extends Construct {
  public readonly serviceAccount: k8s.KubeServiceAccount;
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

    this.serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(),
      automountServiceAccountToken: false,
    });
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
            automountServiceAccountToken: false,
            securityContext: archiver.podSecurityContext,
            containers: [
              archiver.container({
                name: 'wipeout',
                command: [...WIPE_OUT_COMMAND],
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
