/**
 * `GitOpsDelivery`: from the repository's URL and branch, what Argo CD and Flux need to sync each
 * environment's tree into its cluster (ArgoCdDelivery, FluxDelivery), and the checks that hold
 * across environments: one directory, one cluster object and one archive per database.
 *
 *   <output>/<environment>/<namespace>/<name>/<name>.k8s.yaml       one database (DatabaseChart)
 *   <output>/delivery/argocd/<environment>/<environment>.k8s.yaml   Argo CD: AppProjects, Applications
 *   <output>/delivery/flux/<environment>/<environment>.k8s.yaml     Flux: GitRepository, Kustomizations
 */
import { Duration } from 'cdk8s';
import { Construct } from 'constructs';
import { ArgoCdDelivery, GroupKind, applicationName, kindsOf } from './argo-cd-delivery';
import { Environment } from './environment';
import { FluxDelivery } from './flux-delivery';
import { checkNamespace, show } from './validation';

export interface ArgoCdOptions {
  /**
   * The namespace Argo CD runs in and reads Applications and AppProjects from.
   * @default "argocd"
   */
  readonly namespace?: string;
  /**
   * Automated sync deletes what left Git: an object of a database, and a removed database's
   * Application (then the database, as its termination policy allows). Off: removed objects and
   * Applications stay until someone syncs with prune or deletes them.
   * @default true
   */
  readonly prune?: boolean;
  /**
   * Automated sync undoes changes made in the cluster (`kubectl edit`, `kubectl scale`).
   * @default true
   */
  readonly selfHeal?: boolean;
  /**
   * The kinds each environment's AppProject allows, e.g. a platform team's list. Every kind the
   * databases render must be among them.
   * @default - exactly the kinds the environment's databases render
   */
  readonly allowedKinds?: GroupKind[];
}

export interface FluxOptions {
  /**
   * The namespace Flux runs in.
   * @default "flux-system"
   */
  readonly namespace?: string;
  /**
   * The environment's Kustomization deletes the objects that left Git (a removed database's,
   * as its termination policy allows).
   * @default true
   */
  readonly prune?: boolean;
  /**
   * How often the Kustomizations apply the tree again (and so undo changes made in the cluster).
   * @default Duration.minutes(5)
   */
  readonly interval?: Duration;
  /**
   * The Secret in Flux's namespace with the repository's credentials.
   * @default - none: the repository is public
   */
  readonly secretName?: string;
}

export interface GitOpsDeliveryProps {
  /** The repository's clone URL, e.g. `https://github.com/your-org/pg-wal-gitops.git` (Flux takes http(s):// and ssh:// only). */
  readonly repoURL: string;
  /**
   * The branch Argo CD and Flux sync.
   * @default "main"
   */
  readonly targetRevision?: string;
  /**
   * Where the synthesized output is in the repository, relative to its root.
   * @default "dist"
   */
  readonly path?: string;
  /** The environments delivered, each with its own Argo CD and Flux manifests. */
  readonly environments: Environment[];
  /**
   * Argo CD's manifests, or `false` for none.
   * @default {} - rendered, with the defaults of ArgoCdOptions
   */
  readonly argoCd?: ArgoCdOptions | false;
  /**
   * Flux's manifests, or `false` for none.
   * @default {} - rendered, with the defaults of FluxOptions
   */
  readonly flux?: FluxOptions | false;
}

/**
 * Argo CD's and Flux's manifests for every environment (construct ids `argocd-<environment>` and
 * `flux-<environment>`, each a chart written to its own directory). Construct it after the
 * environments, once every object is added to their databases: each AppProject allows the kinds
 * rendered by then (validation reports one added later).
 */
export class GitOpsDelivery extends Construct {
  public readonly repoURL: string;
  public readonly targetRevision: string;
  public readonly path: string;
  public readonly environments: readonly Environment[];
  /** Each environment's Argo CD manifests, in the order of `environments` (none with `argoCd: false`). */
  public readonly argoCd: ArgoCdDelivery[] = [];
  /** Each environment's Flux manifests (none with `flux: false`). */
  public readonly flux: FluxDelivery[] = [];
  private readonly props: GitOpsDeliveryProps;

  constructor(scope: Construct, id: string, props: GitOpsDeliveryProps) {
    super(scope, id);
    this.props = props;
    this.repoURL = props.repoURL;
    this.targetRevision = props.targetRevision ?? 'main';
    this.path = (props.path ?? 'dist').replace(/\/+$/, '');
    this.environments = props.environments ?? [];
    this.node.addValidation({ validate: () => this.validateProps() });

    for (const environment of this.environments) {
      if (props.argoCd !== false) {
        const options = props.argoCd ?? {};
        this.argoCd.push(new ArgoCdDelivery(scope, `argocd-${environment.name}`, {
          environment,
          repoURL: this.repoURL,
          targetRevision: this.targetRevision,
          path: this.path,
          namespace: options.namespace ?? 'argocd',
          prune: options.prune ?? true,
          selfHeal: options.selfHeal ?? true,
          allowedKinds: options.allowedKinds ?? kindsOf(environment.charts),
        }));
      }
      if (props.flux !== false) {
        const options = props.flux ?? {};
        this.flux.push(new FluxDelivery(scope, `flux-${environment.name}`, {
          environment,
          repoURL: this.repoURL,
          targetRevision: this.targetRevision,
          path: this.path,
          namespace: options.namespace ?? 'flux-system',
          prune: options.prune ?? true,
          interval: options.interval ?? Duration.minutes(5),
          secretName: options.secretName,
        }));
      }
    }
  }

  /** Every path a manifest points at, relative to the repository's root: `dist/prod/demo/wal-postgres`, ... */
  public get sourcePaths(): string[] {
    return [
      ...this.argoCd.flatMap((d) => [d.root.toJson().spec.source.path, ...d.applications.map((a) => a.toJson().spec.source.path)]),
      ...this.flux.flatMap((d) => [d.delivery.toJson().spec.path, d.databases.toJson().spec.path]),
    ];
  }

  private validateProps(): string[] {
    const errors: string[] = [];
    const props = this.props;
    errors.push(...checkRepositoryUrl(this.repoURL, props.flux !== false));
    const revision = checkBranch(this.targetRevision);
    if (revision) errors.push(`targetRevision: ${revision}`);
    if (props.path !== undefined && (this.path === '' || this.path.startsWith('/') || this.path.split('/').some((p) => p === '..' || p === '.' || p === ''))) {
      errors.push(`path: ${show(props.path)} is not a directory of the repository: give the output directory relative to the repository's root, as npm run synth writes it, e.g. "dist"`);
    }
    if (this.environments.length === 0) errors.push('environments: is empty: give at least one Environment');
    for (const [field, namespace] of [['argoCd.namespace', props.argoCd ? props.argoCd.namespace : undefined], ['flux.namespace', props.flux ? props.flux.namespace : undefined]] as const) {
      const message = namespace !== undefined ? checkNamespace(namespace) : undefined;
      if (message) errors.push(`${field}: ${message}`);
    }
    errors.push(...this.checkAcrossEnvironments());
    errors.push(...this.checkArgoCd());
    return errors;
  }

  /** Two environments that would make one cluster object or one archive of two databases. */
  private checkAcrossEnvironments(): string[] {
    const errors: string[] = [];
    const seen = new Set<Environment>();
    const objects = new Map<string, string>();
    const archives = new Map<string, string>();
    for (const env of this.environments) {
      if (seen.has(env)) {
        errors.push(`environments: ${env.node.path} is given twice: each environment once`);
        continue;
      }
      seen.add(env);
      const cluster = env.cluster.server !== undefined ? `server ${env.cluster.server}` : `cluster ${env.cluster.name}`;
      for (const db of env.databases) {
        const object = `${cluster}|${db.namespace}/${db.name}`;
        const other = objects.get(object);
        if (other) {
          errors.push(`environments: ${db.node.path} and ${other} are both ${show(`${db.namespace}/${db.name}`)} in the ${cluster}: one would replace the other's objects; give the environments different clusters (cluster), or the databases different namespaces`);
        } else {
          objects.set(object, db.node.path);
        }
        const storage = db.archiveStorage;
        if (storage?.backend === undefined) continue; // reported by the database
        const endpoint = storage.spec.s3?.endpoint ?? '';
        const archive = `${storage.backend}|${endpoint}|${storage.bucket}/${db.archivePath}`;
        const owner = archives.get(archive);
        if (owner) {
          errors.push(`environments: ${db.node.path} archives into ${storage.backend}://${storage.bucket}/${db.archivePath}, as ${owner} does: two databases writing one archive corrupt each other's recovery (and WipeOut of one deletes the other's); give the environments different archivePrefix values, or the databases different buckets`);
        } else {
          archives.set(archive, db.node.path);
        }
      }
    }
    return errors;
  }

  /** Application names Argo CD can track, and AppProjects that allow every kind their databases render. */
  private checkArgoCd(): string[] {
    const errors: string[] = [];
    for (const delivery of this.argoCd) {
      const env = this.environments.find((e) => delivery.node.id === `argocd-${e.name}`)!;
      for (const chart of env.charts) {
        const name = applicationName(env, chart);
        if (name.length > 63) {
          errors.push(`environments: the Application of ${chart.database.node.path} would be named ${show(name)} (${name.length} characters): Argo CD tracks an Application's objects by its name in a label, at most 63 characters; shorten the environment's name, the namespace or the database's name`);
        }
      }
      const allowed = new Set((delivery.project.toJson().spec.namespaceResourceWhitelist ?? []).map((gk: GroupKind) => `${gk.group}/${gk.kind}`));
      for (const chart of env.charts) {
        for (const gk of kindsOf([chart])) {
          if (allowed.has(`${gk.group}/${gk.kind}`)) continue;
          const field = this.props.argoCd && this.props.argoCd.allowedKinds ? 'argoCd.allowedKinds' : 'argoCd';
          const fix = field === 'argoCd.allowedKinds'
            ? `add { group: ${show(gk.group)}, kind: ${show(gk.kind)} } to argoCd.allowedKinds, or render no ${gk.kind} in the database`
            : `construct GitOpsDelivery after every object is added to the databases (its AppProjects allow the kinds rendered by then), or list the kinds in argoCd.allowedKinds`;
          errors.push(`${field}: the AppProject ${show(delivery.project.name)} does not allow ${gk.group === '' ? 'core' : gk.group}/${gk.kind}, which ${chart.database.node.path} renders: Argo CD would refuse to sync its Application (resource not permitted in project); ${fix}`);
        }
      }
    }
    return errors;
  }
}

/** A repository URL Argo CD (and, when `flux`, Flux) can clone. */
export function checkRepositoryUrl(repoURL: string, flux: boolean): string[] {
  const example = 'e.g. "https://github.com/your-org/pg-wal-gitops.git" or "ssh://git@github.com/your-org/pg-wal-gitops.git"';
  if (typeof repoURL !== 'string' || repoURL.trim() === '') return [`repoURL: is empty: give the repository's clone URL, ${example}`];
  const scpLike = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!\/\/)[^\s]+$/.test(repoURL);
  if (scpLike) {
    if (!flux) return [];
    const [user, rest] = repoURL.split('@');
    const [host, ...repoPath] = rest.split(':');
    return [`repoURL: ${show(repoURL)} is a scp-like address, which Argo CD takes but Flux's GitRepository does not (it takes http://, https:// and ssh:// URLs only): write ${show(`ssh://${user}@${host}/${repoPath.join(':')}`)}`];
  }
  let url: URL | undefined;
  try {
    url = new URL(repoURL);
  } catch {
    url = undefined;
  }
  if (!url || !['http:', 'https:', 'ssh:'].includes(url.protocol) || !url.hostname || url.pathname.replace(/\//g, '') === '' || /\s/.test(repoURL)) {
    return [`repoURL: ${show(repoURL)} is not a URL of a Git repository: write the repository's clone URL with its scheme, host and path, ${example}`];
  }
  if (url.password) return ['repoURL: has a password in it (value not shown): never put credentials into Git; give Argo CD a repository Secret and Flux `flux.secretName`'];
  return [];
}

/** A branch name Git accepts (git check-ref-format --branch). */
export function checkBranch(branch: string): string | undefined {
  if (typeof branch !== 'string' || branch === '' || /[\s~^:?*[\\\x00-\x1f\x7f]|\.\.|@\{|^[/.-]|\/$|\.lock$|\/\.|\/\/|\.$/.test(branch)) {
    return `${show(branch)} is not a branch name: give the branch Argo CD and Flux sync, e.g. "main"`;
  }
  return undefined;
}
