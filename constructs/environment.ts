/**
 * Environments: one definition of each database (a catalog), several environments (`dev`,
 * `prod`) that run some of them with their own replicas, storage, resources, archive prefix and
 * backup schedule. Each environment synthesizes to its own tree, one directory per database:
 * `<environment>/<namespace>/<name>/` (DatabaseChart).
 */
import { Construct } from 'constructs';
import { ArchivedPostgres, ArchivedPostgresProps, ArchiverProps, PostgresResources } from './archived-postgres';
import { ArchiveStorage } from './archive-storage';
import { BackupProps } from './backups';
import { DatabaseChart } from './database-chart';
import { markNameScope } from './name-scope';
import { DataVolumeProps } from './postgres-stateful-set';
import { TerminationPolicy } from './termination-policy';
import { checkNamespace, checkPrefix, show } from './validation';

/** A database, defined once for every environment: its props, with its namespace. Its name is its key in the catalog. */
export interface DatabaseDefinition extends Omit<ArchivedPostgresProps, 'name' | 'namespace'> {
  /** The namespace of its objects, in every environment. */
  readonly namespace: string;
}

/** Every database an environment may run, by name. */
export type DatabaseCatalog = Readonly<Record<string, DatabaseDefinition>>;

/**
 * What an environment sets differently for a database. `storage`, `archiver` and `backups` are
 * merged field by field over the definition's; `resources` replaces the definition's.
 */
export interface DatabaseSettings {
  readonly replicas?: number;
  readonly storage?: DataVolumeProps;
  readonly resources?: PostgresResources;
  /** The sidecar's resources and `archiveTimeout`; the archive storage is the definition's (see `archivePrefix`). */
  readonly archiver?: Omit<ArchiverProps, 'storage'>;
  readonly backups?: BackupProps;
  readonly terminationPolicy?: TerminationPolicy;
}

/** The cluster an environment's databases run in, as Argo CD names it: exactly one of `server` or `name`. */
export interface ClusterDestination {
  /** The API server's URL as registered in Argo CD, e.g. `https://kubernetes.default.svc` (Argo CD's own cluster). */
  readonly server?: string;
  /** The cluster's name as registered in Argo CD, e.g. `prod-eu`. */
  readonly name?: string;
}

/** Argo CD's own cluster. */
export const IN_CLUSTER = 'https://kubernetes.default.svc';

/** Names an environment directory may not have: `delivery/` holds the Argo CD and Flux manifests. */
export const RESERVED_DIRECTORIES: readonly string[] = ['delivery'];

export interface EnvironmentProps {
  /** Every database definition, by name. */
  readonly catalog: DatabaseCatalog;
  /** The databases this environment runs (names in the catalog), each with this environment's settings (`{}` for none). */
  readonly databases: Readonly<Record<string, DatabaseSettings>>;
  /**
   * Settings of every database of the environment, under each database's own.
   * @default - none
   */
  readonly defaults?: DatabaseSettings;
  /**
   * Put in front of each database's archive prefix, so that environments never share an archive:
   * `{bucket}/{archivePrefix}/{prefix}/kubedb/{namespace}/{name}/archive`.
   * @default - the definitions' prefixes as they are (then the environments must use different buckets)
   */
  readonly archivePrefix?: string;
  /**
   * The directory under the output directory: `<directory>/<namespace>/<name>/`.
   * @default - the environment's name (its construct id)
   */
  readonly directory?: string;
  /**
   * The cluster the databases run in (Argo CD's destination).
   * @default { server: IN_CLUSTER } - Argo CD's own cluster
   */
  readonly cluster?: ClusterDestination;
  /** Argo CD settings of this environment. */
  readonly argoCd?: EnvironmentArgoCdProps;
  /** Flux settings of this environment. */
  readonly flux?: EnvironmentFluxProps;
}

export interface EnvironmentArgoCdProps {
  /**
   * The destination namespace of every Application of the environment. It must be each
   * database's own namespace: set it only to pin it.
   * @default - each database's namespace
   */
  readonly destinationNamespace?: string;
}

export interface EnvironmentFluxProps {
  /**
   * Flux Kustomizations (in Flux's namespace) that must be ready before this environment's
   * databases are applied, e.g. the one that delivers their Secrets (SealedSecrets,
   * ExternalSecrets): a database never starts without its storage and superuser Secrets.
   * @default - none
   */
  readonly dependsOn?: string[];
}

/**
 * One environment: the catalog's databases it runs, each in a DatabaseChart written to
 * `<directory>/<namespace>/<name>/<name>.k8s.yaml` (construct path `<environment>/<name>/Database`).
 * Databases of different environments may share a namespace and name (they run in different
 * clusters or with different archive prefixes): the environment is a name scope of its own.
 */
export class Environment extends Construct {
  /** Whether `x` is an Environment. */
  public static isEnvironment(x: unknown): x is Environment {
    return x !== null && typeof x === 'object' && ENVIRONMENT in x;
  }

  /** The environment's name: its construct id. */
  public readonly name: string;
  /** Its directory under the output directory. */
  public readonly directory: string;
  public readonly cluster: ClusterDestination;
  /** The database charts, in the order of `databases`. */
  public readonly charts: DatabaseChart[];
  public readonly argoCd: EnvironmentArgoCdProps;
  public readonly flux: EnvironmentFluxProps;
  private readonly props: EnvironmentProps;

  constructor(scope: Construct, id: string, props: EnvironmentProps) {
    super(scope, id);
    Object.defineProperty(this, ENVIRONMENT, { value: true });
    markNameScope(this);
    this.props = props;
    this.name = id;
    this.directory = props.directory ?? id;
    this.cluster = props.cluster ?? { server: IN_CLUSTER };
    this.argoCd = props.argoCd ?? {};
    this.flux = props.flux ?? {};
    this.node.addValidation({ validate: () => this.validateProps() });

    this.charts = [];
    for (const [name, settings] of Object.entries(props.databases ?? {})) {
      const definition = props.catalog?.[name];
      if (!definition) continue; // reported by validation
      const { namespace, ...base } = definition;
      this.charts.push(new DatabaseChart(this, name, {
        directory: `${this.directory}/${namespace}/${name}`,
        name,
        namespace,
        props: settle(base, [props.defaults ?? {}, settings ?? {}], props.archivePrefix),
      }));
    }
  }

  /** The environment's databases. */
  public get databases(): ArchivedPostgres[] {
    return this.charts.map((c) => c.database);
  }

  private validateProps(): string[] {
    const errors: string[] = [];
    const directoryMessage = checkDirectoryName(this.directory);
    if (directoryMessage) errors.push(`${this.props.directory === undefined ? 'directory (the construct id)' : 'directory'}: ${directoryMessage}`);
    const catalog = this.props.catalog ?? {};
    const known = Object.keys(catalog);
    for (const name of Object.keys(this.props.databases ?? {})) {
      if (catalog[name]) continue;
      const near = known.filter((k) => editDistance(k, name) <= 2);
      errors.push(`databases[${show(name)}]: names no database of the catalog (${known.length > 0 ? known.map((k) => show(k)).join(', ') : 'it is empty'}): ${near.length > 0 ? `did you mean ${near.map((k) => show(k)).join(' or ')}? ` : ''}fix the name, or add the database's definition to the catalog`);
    }
    if (Object.keys(this.props.databases ?? {}).length === 0) {
      errors.push('databases: is empty: name at least one database of the catalog, e.g. { "wal-postgres": {} }');
    }
    if (this.props.archivePrefix !== undefined) {
      const message = checkPrefix(this.props.archivePrefix);
      if (message) errors.push(`archivePrefix: ${message}`);
    }
    errors.push(...checkCluster('cluster', this.cluster));
    const destination = this.argoCd.destinationNamespace;
    if (destination !== undefined) {
      const message = checkNamespace(destination);
      if (message) errors.push(`argoCd.destinationNamespace: ${message}`);
      for (const db of this.databases) {
        if (db.namespace !== destination) {
          errors.push(`argoCd.destinationNamespace: ${show(destination)} is not the namespace of ${db.node.path} (${show(db.namespace)}): its Application would deploy into one namespace and its objects into another (Argo CD checks the project's destinations against each object's own namespace, and creates the destination namespace, not the objects'); leave destinationNamespace unset (each database's own), or set it to ${show(db.namespace)}`);
        }
      }
    }
    for (const name of this.flux.dependsOn ?? []) {
      if (checkNamespace(name)) errors.push(`flux.dependsOn: ${show(name)} is not the name of a Flux Kustomization: use lowercase letters, digits and '-', e.g. "postgres-secrets"`);
    }
    return errors;
  }
}

const ENVIRONMENT = Symbol.for('archived-postgres.Environment');

/** A directory name of the output tree: a DNS label, not reserved. */
export function checkDirectoryName(directory: string): string | undefined {
  if (RESERVED_DIRECTORIES.includes(directory)) {
    return `${show(directory)} is reserved: the output directory's ${directory}/ holds the Argo CD and Flux manifests; name the environment otherwise, e.g. "prod"`;
  }
  if (checkNamespace(directory)) {
    return `${show(directory)} is not a valid environment directory: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. "prod" (it names the directory and, in Argo CD and Flux, the objects that deliver it)`;
  }
  return undefined;
}

/** Problems of a cluster destination, as `field.server: message`. */
export function checkCluster(field: string, cluster: ClusterDestination): string[] {
  if ((cluster.server === undefined) === (cluster.name === undefined)) {
    return [`${field}: ${cluster.server === undefined ? 'neither' : 'both'} of server and name ${cluster.server === undefined ? 'is' : 'are'} set: give exactly one, e.g. { server: ${show(IN_CLUSTER)} } (Argo CD's own cluster) or { name: "prod-eu" }`];
  }
  if (cluster.server !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(cluster.server);
    } catch {
      url = undefined;
    }
    if (!url || url.protocol !== 'https:' || !url.hostname) {
      return [`${field}.server: ${show(cluster.server)} is not the https:// URL of a Kubernetes API server: write it as Argo CD has the cluster registered (argocd cluster list), e.g. ${show(IN_CLUSTER)}`];
    }
  } else if (checkNamespace(cluster.name!)) {
    return [`${field}.name: ${show(cluster.name)} is not a cluster name as Argo CD registers them: use lowercase letters, digits and '-', e.g. "prod-eu"`];
  }
  return [];
}

/** A definition's props in an environment: the settings merged over it, the archive prefix in front of its own. */
function settle(base: Omit<ArchivedPostgresProps, 'name' | 'namespace'>, layers: DatabaseSettings[], archivePrefix: string | undefined): ArchivedPostgresProps {
  let props: ArchivedPostgresProps = { ...base };
  for (const layer of layers) {
    props = {
      ...props,
      ...(layer.replicas !== undefined ? { replicas: layer.replicas } : {}),
      ...(layer.storage ? { storage: { ...props.storage, ...layer.storage } } : {}),
      ...(layer.resources ? { resources: layer.resources } : {}),
      ...(layer.archiver ? { archiver: { ...props.archiver, ...layer.archiver } } : {}),
      ...(layer.backups ? { backups: { ...props.backups, ...layer.backups } } : {}),
      ...(layer.terminationPolicy !== undefined ? { terminationPolicy: layer.terminationPolicy } : {}),
    };
  }
  const storage = props.archiver?.storage;
  if (archivePrefix !== undefined && storage instanceof ArchiveStorage) {
    props = { ...props, archiver: { ...props.archiver, storage: withPrefix(storage, archivePrefix) } };
  }
  return props;
}

/** `storage` with `prefix` in front of its own prefix; an invalid storage (both or neither backend) as it is. */
function withPrefix(storage: ArchiveStorage, prefix: string): ArchiveStorage {
  const spec = storage.spec;
  const join = (own: string | undefined) => [prefix, own].map((p) => p?.replace(/^\/+|\/+$/g, '')).filter((p) => p).join('/');
  if (spec.s3 && !spec.gcs) return ArchiveStorage.fromSpec({ ...spec, s3: { ...spec.s3, prefix: join(spec.s3.prefix) } });
  if (spec.gcs && !spec.s3) return ArchiveStorage.fromSpec({ ...spec, gcs: { ...spec.gcs, prefix: join(spec.gcs.prefix) } });
  return storage;
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}
