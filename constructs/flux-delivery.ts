/**
 * What Flux syncs an environment from, in `delivery/flux/<environment>/<environment>.k8s.yaml`
 * (Flux's namespace, in the environment's own cluster):
 *
 * - the GitRepository `<environment>-postgres`: the repository's branch, only the output
 *   directory fetched;
 * - the Kustomization `<environment>-postgres` over the environment's tree (`<environment>/`, every
 *   database's directory): pruned, healthy when every StatefulSet is, after the Kustomizations of
 *   `flux.dependsOn` (e.g. the one that delivers the Secrets);
 * - the Kustomization `<environment>-postgres-delivery` over this directory, so that what is
 *   rendered here (a new database's health check) reaches the cluster too: applied once by hand.
 *
 * Flux applies a Kustomization's objects in kind order (ConfigMaps and claims before
 * StatefulSets), ignores the Argo CD annotations, and never applies the WipeOut hook (its objects
 * say `kustomize.toolkit.fluxcd.io/reconcile: disabled`): Flux has no delete hooks.
 */
import { Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { GitRepository } from '../imports/flux-gitrepository-source.toolkit.fluxcd.io';
import { Kustomization, KustomizationSpecSourceRefKind } from '../imports/flux-kustomization-kustomize.toolkit.fluxcd.io';
import { Environment } from './environment';
import { FileChart } from './gitops-app';

/** What an environment's Flux manifests are rendered from; GitOpsDelivery resolves every default. */
export interface FluxDeliveryProps {
  readonly environment: Environment;
  readonly repoURL: string;
  /** The branch. */
  readonly targetRevision: string;
  /** Where the output directory is in the repository, e.g. `dist`. */
  readonly path: string;
  /** Flux's namespace. */
  readonly namespace: string;
  readonly prune: boolean;
  readonly interval: Duration;
  /** The Secret with the repository's credentials, if it is private. */
  readonly secretName?: string;
}

/** Flux's interval notation: whole minutes as `5m`, else seconds. */
function interval(duration: Duration): string {
  const seconds = duration.toSeconds();
  return seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/** The GitRepository and Kustomizations of one environment (construct ids `Source`, `Databases`, `Delivery`). */
export class FluxDelivery extends FileChart {
  public readonly outputFile: string;
  /** Where the delivery Kustomization reads, relative to the output directory: `delivery/flux/<environment>`. */
  public readonly directory: string;
  public readonly source: GitRepository;
  /** The Kustomization over the environment's databases. */
  public readonly databases: Kustomization;
  /** The Kustomization over this directory. */
  public readonly delivery: Kustomization;

  constructor(scope: Construct, id: string, props: FluxDeliveryProps) {
    super(scope, id);
    const env = props.environment;
    this.directory = `delivery/flux/${env.directory}`;
    this.outputFile = `${this.directory}/${env.directory}.k8s.yaml`;
    const name = `${env.name}-postgres`;
    const labels = { 'app.kubernetes.io/part-of': name, 'app.kubernetes.io/managed-by': 'cdk8s' };
    const every = interval(props.interval);

    this.source = new GitRepository(this, 'Source', {
      metadata: { name, namespace: props.namespace, labels },
      spec: {
        url: props.repoURL,
        ref: { branch: props.targetRevision },
        interval: '1m',
        // Only the output directory: the rest of the repository is never fetched into the artifact.
        ignore: `/*\n!/${props.path}/\n`,
        ...(props.secretName !== undefined ? { secretRef: { name: props.secretName } } : {}),
      },
    });
    const sourceRef = { kind: KustomizationSpecSourceRefKind.GIT_REPOSITORY, name };
    this.delivery = new Kustomization(this, 'Delivery', {
      metadata: { name: `${name}-delivery`, namespace: props.namespace, labels },
      spec: { sourceRef, path: `./${props.path}/${this.directory}`, interval: every, prune: true },
    });
    this.databases = new Kustomization(this, 'Databases', {
      metadata: { name, namespace: props.namespace, labels },
      spec: {
        sourceRef,
        path: `./${props.path}/${env.directory}`,
        interval: every,
        retryInterval: '1m',
        // How long each apply waits for the health checks; a restore that takes longer is checked
        // again at the next interval.
        timeout: '10m',
        prune: props.prune,
        wait: false,
        healthChecks: env.databases.map((db) => ({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: db.statefulSet.apiObject.name, namespace: db.namespace })),
        ...(env.flux.dependsOn && env.flux.dependsOn.length > 0 ? { dependsOn: env.flux.dependsOn.map((dependency) => ({ name: dependency })) } : {}),
      },
    });
  }
}
