/**
 * What Argo CD syncs an environment from, in `delivery/argocd/<environment>/<environment>.k8s.yaml`:
 *
 * - one Application per database (`<environment>-<namespace>-<name>`), over the database's
 *   directory, with the `resources-finalizer.argocd.argoproj.io` finalizer: removing a database
 *   from code removes its directory and its Application, whose deletion deletes the database's
 *   objects (as its termination policy allows) and then runs its PostDelete hooks. WipeOut's hook
 *   (WipeOutJob) relies on that: Argo CD runs a PostDelete hook when an Application is deleted,
 *   never when one object of a shared Application is pruned;
 * - the AppProject `<environment>-postgres`, which allows exactly the environment's destinations
 *   (its cluster and the databases' namespaces) and the kinds its databases render;
 * - the root Application `<environment>-postgres` (app of apps) over this directory, in its own
 *   AppProject `<environment>-postgres-delivery` (Applications and AppProjects in Argo CD's
 *   namespace only): applied once by hand, it keeps the Applications as Git has them. It has no
 *   finalizer, so deleting it leaves the databases' Applications (and the databases) in place.
 */
import { Construct } from 'constructs';
import { Application, ApplicationSpecIgnoreDifferences } from '../imports/argocd-application-argoproj.io';
import { AppProject } from '../imports/argocd-appproject-argoproj.io';
import { DatabaseChart } from './database-chart';
import { Environment, IN_CLUSTER } from './environment';
import { FileChart } from './gitops-app';

/** A group and kind of Kubernetes object, as AppProjects list them (`""` is the core group). */
export interface GroupKind {
  readonly group: string;
  readonly kind: string;
}

/** The finalizer that makes an Application's deletion delete its objects (and then run its PostDelete hooks). */
export const RESOURCES_FINALIZER = 'resources-finalizer.argocd.argoproj.io';

/**
 * What the API server, controllers and people write into the database's objects at run time,
 * which Argo CD must neither report as drift nor undo:
 * - the StatefulSet's claim template: the API server adds `apiVersion`, `kind`, `volumeMode` and
 *   a `status` to it (argoproj/argo-cd#11143, #16707);
 * - `kubectl rollout restart`'s annotation on the pod template;
 * - a claim's `volumeName` (the binder) and `volumeMode` (the API server's default).
 */
export const IGNORE_DIFFERENCES: readonly ApplicationSpecIgnoreDifferences[] = Object.freeze([
  {
    group: 'apps',
    kind: 'StatefulSet',
    jqPathExpressions: [
      '.spec.volumeClaimTemplates[]?.apiVersion',
      '.spec.volumeClaimTemplates[]?.kind',
      '.spec.volumeClaimTemplates[]?.spec.volumeMode',
      '.spec.volumeClaimTemplates[]?.status',
      '.spec.template.metadata.annotations."kubectl.kubernetes.io/restartedAt"',
    ],
  },
  {
    group: '',
    kind: 'PersistentVolumeClaim',
    jqPathExpressions: ['.spec.volumeName', '.spec.volumeMode'],
  },
]);

/** The group and kind of every object `database` renders, sorted, each once. */
export function kindsOf(charts: readonly DatabaseChart[]): GroupKind[] {
  const seen = new Map<string, GroupKind>();
  for (const chart of charts) {
    for (const object of chart.database.apiObjects) {
      const group = object.apiVersion.includes('/') ? object.apiVersion.split('/')[0] : '';
      seen.set(`${group}/${object.kind}`, { group, kind: object.kind });
    }
  }
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, gk]) => gk);
}

/** What an environment's Argo CD manifests are rendered from; GitOpsDelivery resolves every default. */
export interface ArgoCdDeliveryProps {
  readonly environment: Environment;
  readonly repoURL: string;
  readonly targetRevision: string;
  /** Where the output directory is in the repository, e.g. `dist`. */
  readonly path: string;
  /** Argo CD's namespace. */
  readonly namespace: string;
  readonly prune: boolean;
  readonly selfHeal: boolean;
  /** The kinds the environment's AppProject allows. */
  readonly allowedKinds: readonly GroupKind[];
}

/** The AppProjects and Applications of one environment (construct ids `Project`, `DeliveryProject`, `Root`, and each database's name). */
export class ArgoCdDelivery extends FileChart {
  public readonly outputFile: string;
  /** Where the root Application reads, relative to the output directory: `delivery/argocd/<environment>`. */
  public readonly directory: string;
  public readonly project: AppProject;
  public readonly deliveryProject: AppProject;
  public readonly root: Application;
  /** Each database's Application, in the environment's order. */
  public readonly applications: Application[];

  constructor(scope: Construct, id: string, props: ArgoCdDeliveryProps) {
    super(scope, id);
    const env = props.environment;
    this.directory = `delivery/argocd/${env.directory}`;
    this.outputFile = `${this.directory}/${env.directory}.k8s.yaml`;
    const labels = { 'app.kubernetes.io/part-of': `${env.name}-postgres`, 'app.kubernetes.io/managed-by': 'cdk8s' };
    const projectName = `${env.name}-postgres`;
    const automated = { prune: props.prune, selfHeal: props.selfHeal };
    // A sync that fails (a Secret or namespace not there yet) is tried again, for about 15 minutes.
    const retry = { limit: 5, backoff: { duration: '30s', factor: 2, maxDuration: '10m' } };
    const namespaces = [...new Set(env.databases.map((db) => db.namespace))].sort();

    this.project = new AppProject(this, 'Project', {
      metadata: { name: projectName, namespace: props.namespace, labels },
      spec: {
        description: `The PostgreSQL databases of environment ${env.name}: their namespaces and the kinds they render, nothing else.`,
        sourceRepos: [props.repoURL],
        destinations: namespaces.map((namespace) => ({ ...env.cluster, namespace })),
        // No clusterResourceWhitelist: a database renders no cluster-scoped object.
        namespaceResourceWhitelist: props.allowedKinds.map((gk) => ({ ...gk })),
      },
    });
    this.deliveryProject = new AppProject(this, 'DeliveryProject', {
      metadata: { name: `${projectName}-delivery`, namespace: props.namespace, labels },
      spec: {
        description: `The Applications and AppProjects that deliver environment ${env.name} (this directory of the repository).`,
        sourceRepos: [props.repoURL],
        destinations: [{ server: IN_CLUSTER, namespace: props.namespace }],
        namespaceResourceWhitelist: [{ group: 'argoproj.io', kind: 'AppProject' }, { group: 'argoproj.io', kind: 'Application' }],
      },
    });
    this.root = new Application(this, 'Root', {
      metadata: { name: projectName, namespace: props.namespace, labels },
      spec: {
        project: this.deliveryProject.name,
        source: { repoUrl: props.repoURL, targetRevision: props.targetRevision, path: `${props.path}/${this.directory}` },
        destination: { server: IN_CLUSTER, namespace: props.namespace },
        syncPolicy: { automated, retry },
      },
    });
    this.applications = env.charts.map((chart) => {
      const db = chart.database;
      const annotations: Record<string, string> = {};
      if (db.wipeOut) {
        annotations['archived-postgres/post-delete-hook'] = `Job ${db.namespace}/${db.wipeOut.job.name} deletes the database's WAL archive when this Application is deleted (Argo CD runs PostDelete hooks on an Application's deletion only): the database must stay the only one of this Application`;
      }
      return new Application(this, chart.node.id, {
        metadata: {
          name: applicationName(env, chart),
          namespace: props.namespace,
          labels: { ...labels, 'app.kubernetes.io/instance': db.name },
          annotations,
          finalizers: [RESOURCES_FINALIZER],
        },
        spec: {
          project: this.project.name,
          source: { repoUrl: props.repoURL, targetRevision: props.targetRevision, path: `${props.path}/${chart.directory}` },
          destination: { ...env.cluster, namespace: env.argoCd.destinationNamespace ?? db.namespace },
          syncPolicy: { automated, syncOptions: ['PruneLast=true', 'RespectIgnoreDifferences=true'], retry },
          ignoreDifferences: IGNORE_DIFFERENCES.map((d) => ({ ...d, jqPathExpressions: [...(d.jqPathExpressions ?? [])] })),
        },
      });
    });
  }
}

/** The Application of a database: `<environment>-<namespace>-<name>`. */
export function applicationName(env: Environment, chart: DatabaseChart): string {
  return `${env.name}-${chart.database.namespace}-${chart.database.name}`;
}
