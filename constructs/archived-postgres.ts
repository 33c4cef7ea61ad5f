/**
 * `ArchivedPostgres`: PostgreSQL with continuous WAL archiving, composed of small pieces that each
 * render their own objects into it: the configuration files (PostgresConfig), the Services
 * (PostgresServices), the StatefulSet (PostgresStatefulSet) and the archiver containers
 * (ArchiverContainerFactory, over ArchiveStorage's `bind()`). It resolves the props' defaults and
 * validates the props; the pieces render.
 */
import { ApiObject, Chart, Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct, IConstruct } from 'constructs';
import { ARCHIVER_INSTALL_DIR, STORAGE_CREDENTIAL_ENV_OF, archivePath } from '../contract';
import { ArchiveStorage } from './archive-storage';
import { ArchiverContainerFactory } from './archiver-container-factory';
import { ARCHIVER_IMAGE_EXAMPLE, ArchiverImage } from './archiver-image';
import { BackupProps, backupEnvironment, checkBackups } from './backups';
import { Bootstrap } from './bootstrap';
import { ContainerResources, ResourceQuantities, checkContainerResources, resourcesWithDefaults } from './container-resources';
import { ReplicationProps } from './database-credentials';
import { MIN_POSTGRES_MEMORY_MIB, memorySettingsFor } from './memory-settings';
import { DatabaseMonitoring, MonitoringProps } from './monitoring';
import { DatabaseNetworkPolicy, NetworkPolicyProps } from './network-policy';
import { nameScopeOf } from './name-scope';
import { PlacementProps, checkPlacement } from './pod-placement';
import { MAX_REPLICAS, MAX_WAL_SENDERS, PostgresConfig } from './postgres-config';
import { PodRoleLabel } from './pod-role';
import { PostgresServices } from './postgres-services';
import { DataVolumeProps, PostgresStatefulSet, checkDataVolume } from './postgres-stateful-set';
import { TlsProps } from './postgres-tls';
import { CLONE_SOURCES, CloneSource, StandbyProps } from './standbys';
import { TERMINATION_POLICIES, TerminationPolicy, pruneAnnotations } from './termination-policy';
import { checkDatabaseName, checkImageReference, checkNamespace, checkSecretName, parseQuantity, show } from './validation';
import { walSizesFor } from './wal-size';
import { WipeOutJob } from './wipe-out-job';

/** PostgreSQL major versions this construct renders and its archiver is tested against. */
export const SUPPORTED_VERSIONS: readonly number[] = [13, 14, 15, 16, 17, 18];

/** The official PostgreSQL image of a major version, fully qualified. */
export function defaultPostgresImage(version: number): string {
  return `docker.io/library/postgres:${version}`;
}

/** Each member's data volume size when `storage.size` is not given. */
export const DEFAULT_DATA_VOLUME_SIZE = '1Gi';

/** archive_timeout bounds, in seconds. */
export const MIN_ARCHIVE_TIMEOUT_SECONDS = 15;
export const MAX_ARCHIVE_TIMEOUT_SECONDS = 24 * 60 * 60;

/** The PostgreSQL container's resources. */
export interface PostgresResources {
  /**
   * A quantity given only as a limit is the request too, as Kubernetes makes it
   * (`limits: { memory: "512Mi" }` alone requests 512Mi).
   * @default { cpu: "500m", memory: "1Gi" }
   */
  readonly requests?: ResourceQuantities;
  /**
   * No CPU limit (throttling a database hurts latency more than sharing a core does); the memory
   * limit equals the memory request so that the pod is never killed for memory it was promised.
   * A limit below its request is a synth error (the API server would reject the StatefulSet).
   * @default { memory: <the memory request> }
   */
  readonly limits?: ResourceQuantities;
}

/** Continuous archiving (KubeDB's `spec.archiver`). */
export interface ArchiverProps {
  /** Where the WAL archive is kept. */
  readonly storage: ArchiveStorage;
  /**
   * PostgreSQL's `archive_timeout`: the longest time committed work may wait before its segment
   * is archived. Each switch archives a whole 16 MiB segment, full or not, so small values grow
   * the archive quickly on quiet databases.
   * @default Duration.seconds(60)
   */
  readonly archiveTimeout?: Duration;
  /**
   * The `archiver` sidecar's resources. It compresses and uploads up to 8 segments at once
   * while catching up on a backlog, and idles otherwise. A quantity given only as a limit is the
   * request too; the default memory limit is raised to a larger memory request.
   * @default - requests { cpu: "100m", memory: "256Mi" }, limits { memory: "512Mi" }
   */
  readonly resources?: ContainerResources;
}

export interface ArchivedPostgresProps {
  /** PostgreSQL major version, one of SUPPORTED_VERSIONS. */
  readonly version: number;
  /**
   * The PostgreSQL image, fully qualified: `registry/repository:tag`, pinned with a digest if you
   * like (`docker.io/library/postgres:16.4@sha256:<64 hex digits>`). Must be the official image or
   * one built from it (Debian based: the archiver's Node runtime needs glibc). The archiver image
   * is set once per app: `ArchiverImage.use(app, reference)`.
   * @default `docker.io/library/postgres:${version}`
   */
  readonly image?: string;
  /**
   * `image` names no registry (`postgres:16`) or names the node itself (`localhost/postgres:16`),
   * and that is meant: the image is loaded onto every node by hand, never pulled.
   * @default false - `image` must name the registry the nodes pull from
   */
  readonly allowLocalImage?: boolean;
  /**
   * Members: pod 0 is the primary, the others are streaming hot standbys.
   * @default 1
   */
  readonly replicas?: number;
  /**
   * The namespace of every object and part of the archive path.
   * @default - the chart's namespace, else "default"
   */
  readonly namespace?: string;
  /**
   * The name of the StatefulSet and the prefix of the other objects' names.
   * @default - the construct id
   */
  readonly name?: string;
  /**
   * Each member's data volume (KubeDB's `spec.storage`).
   * @default - 1Gi ReadWriteOnce volumes of the default StorageClass
   */
  readonly storage?: DataVolumeProps;
  /** @default - see PostgresResources */
  readonly resources?: PostgresResources;
  /** Continuous archiving to S3-compatible storage or GCS (KubeDB's `spec.archiver`). */
  readonly archiver: ArchiverProps;
  /**
   * The Secret with the superuser's password under the key `password` (KubeDB's `{name}-auth`).
   * Create it outside Git or as a SealedSecret/ExternalSecret; only its name is rendered.
   * @default `${name}-auth`
   */
  readonly authSecretName?: string;
  /**
   * The replication role the standbys log in to pod 0 as (README: Roles and passwords).
   * @default - the Secret `${name}-replication`
   */
  readonly replication?: ReplicationProps;
  /**
   * Whether the superuser may log in over the network with its password. Otherwise it logs in
   * inside the pod only (kubectl exec psql), and no password of it can be guessed from outside.
   * @default false
   */
  readonly superuserNetworkLogin?: boolean;
  /**
   * TLS for every network connection, from a kubernetes.io/tls Secret (README: TLS).
   * @default - no TLS: network connections are not encrypted
   */
  readonly tls?: TlsProps;
  /**
   * What removing the database from Git deletes. `WipeOut` also renders an Argo CD PostDelete
   * hook that deletes the archive once the StatefulSet and its pod 0 are gone (`{name}-wipeout`,
   * see WipeOutJob).
   * @default TerminationPolicy.DELETE
   */
  readonly terminationPolicy?: TerminationPolicy;
  /**
   * The standbys (pods 1..N-1): where a new one gets its copy of the database.
   * @default - cloned from pod 0 with pg_basebackup (CloneSource.PRIMARY)
   */
  readonly standbys?: StandbyProps;
  /**
   * Base backups, taken by the `archiver` sidecar: at ready, on a schedule, with retention.
   * @default - a backup as soon as a new primary accepts connections and its archive holds none of
   * its timeline, from the primary; no schedule, no retention
   */
  readonly backups?: BackupProps;
  /**
   * What pod 0 does with an empty data volume: restore from the database's own archive, initdb,
   * or initialise from another database's archive to a point in time.
   * @default Bootstrap.restore() - the newest backup of the own archive and all its WAL; initdb
   * when the archive is empty; refuse to start when it holds WAL but no backup
   */
  readonly bootstrap?: Bootstrap;
  /**
   * A PodMonitor for the `archiver` sidecars' metrics, a PrometheusRule with the alerts (archiving
   * failing, a backlog, the volume filling up, backups missing or old, a short recovery window, a
   * standby not streaming) and a Grafana dashboard. `{ enabled: false }` for a cluster without the
   * Prometheus operator.
   * @default - all three, with the alerts' default thresholds
   */
  readonly monitoring?: MonitoringProps;
  /**
   * Where the members run: on different nodes and spread over zones, and on which nodes.
   * @default - members preferably on different nodes (MemberSpread.PREFERRED) and spread over the
   * zones of nodes labelled with one; any node
   */
  readonly placement?: PlacementProps;
  /**
   * A NetworkPolicy for the database's pods: PostgreSQL from the client namespaces and the
   * members, the metrics port from the monitoring namespace (when monitoring is on); out: DNS,
   * the members, the archive's storage. `{}` for the defaults (network-policy.ts says what
   * NetworkPolicy cannot express: no host names, no per-container rules).
   * @default - no NetworkPolicy: the namespace's own policies apply
   */
  readonly networkPolicy?: NetworkPolicyProps;
}

/** The PostgreSQL container's default memory (request and limit). */
export const DEFAULT_POSTGRES_MEMORY = '1Gi';

/** What makes two objects one in a cluster: API group, kind, namespace and name. */
function objectIdentity(o: ApiObject): string {
  return `${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}/${o.kind}/${o.metadata.namespace ?? Chart.of(o).namespace ?? 'default'}/${o.name}`;
}

interface ObjectIndex {
  /** The scope's constructs it was made from (findAll): the same list means the same index. */
  readonly constructs: readonly IConstruct[];
  readonly byIdentity: ReadonlyMap<string, readonly ApiObject[]>;
  /** Each construct's place in the tree's order: which of two databases comes later. */
  readonly position: ReadonlyMap<IConstruct, number>;
}

/** The last index made of each name scope. */
const objectIndexes = new WeakMap<IConstruct, ObjectIndex>();

/**
 * The objects of a name scope by identity. Every database of the scope asks for it when it is
 * validated; made once while the tree stays the same (a rebuild per database made the validation
 * of 100 databases quadratic: 1.4 of 3.5 s of a synthesis).
 */
function objectIndexOf(scope: IConstruct): ObjectIndex {
  const constructs = scope.node.findAll();
  const cached = objectIndexes.get(scope);
  if (cached && cached.constructs.length === constructs.length && cached.constructs.every((c, i) => c === constructs[i])) return cached;
  const byIdentity = new Map<string, ApiObject[]>();
  for (const c of constructs) {
    if (!ApiObject.isApiObject(c)) continue;
    const key = objectIdentity(c);
    const same = byIdentity.get(key);
    if (same) same.push(c);
    else byIdentity.set(key, [c]);
  }
  const index: ObjectIndex = { constructs, byIdentity, position: new Map(constructs.map((c, i) => [c, i])) };
  objectIndexes.set(scope, index);
  return index;
}

/** The first database of each `namespace/name`, per name scope (the app, or an Environment: name-scope.ts). */
const databasesByApp = new WeakMap<IConstruct, Map<string, ArchivedPostgres>>();

/** Records `db` under its namespace and name; returns the database that already holds them. */
function registerName(db: ArchivedPostgres): ArchivedPostgres | undefined {
  const root = nameScopeOf(db);
  let names = databasesByApp.get(root);
  if (!names) databasesByApp.set(root, (names = new Map()));
  const key = `${db.namespace}/${db.name}`;
  const first = names.get(key);
  if (!first) names.set(key, db);
  return first;
}

/**
 * PostgreSQL with continuous WAL archiving, as plain Kubernetes objects: a StatefulSet whose pod 0
 * is the primary and pods 1..N-1 streaming standbys, its Services, a ConfigMap with the server
 * configuration and start-up script, an init container that installs the archiver PostgreSQL
 * runs as archive_command and restore_command, and the `archiver` sidecar (the background
 * archiver those commands hand their work to). Credentials are referenced, never rendered.
 *
 * It grows after construction: `config.addSetting()`, `statefulSet.addContainer()` /
 * `addInitContainer()` / `addVolume()` / `addPodAnnotation()`, `statefulSet.postgres` and
 * `statefulSet.archiverSidecar` (`addEnv`, `addPort`, `addVolumeMount`), `addAnnotation()` on every
 * object; `archiverContainers` gives a Job or CronJob the archiver, and `selectorLabels` selects
 * the pods.
 */
export class ArchivedPostgres extends Construct {
  public readonly name: string;
  public readonly namespace: string;
  public readonly version: number;
  public readonly replicas: number;
  public readonly terminationPolicy: TerminationPolicy;
  public readonly archiveTimeout: Duration;
  /** Where the WAL archive is kept (`archiver.storage`). */
  public readonly archiveStorage: ArchiveStorage;
  /** The Secret with the superuser's password. */
  public readonly authSecretName: string;
  /** The Secret with the replication role's password under the key `password`. */
  public readonly replicationSecretName: string;
  /** The primary (read-write) Service's name. */
  public readonly primaryServiceName: string;
  /** The standby (read-only) Service's name. */
  public readonly standbyServiceName: string;
  /** The headless Service that gives each pod a stable DNS name. */
  public readonly governingServiceName: string;
  /** The path inside the bucket: `{prefix}/kubedb/{namespace}/{name}/archive`. */
  public readonly archivePath: string;
  /** The labels that select the database's pods (StatefulSet, Services, disruption budget); never change them. */
  public readonly selectorLabels: Readonly<Record<string, string>>;
  /** The labels of every object and pod of the database: the selector labels and two more. */
  public readonly labels: Readonly<Record<string, string>>;

  public readonly serviceAccount: k8s.KubeServiceAccount;
  /** postgresql.conf, pg_hba.conf and start.sh, in the ConfigMap `{name}-config`. */
  public readonly config: PostgresConfig;
  public readonly services: PostgresServices;
  /** Makes archiver containers for any pod: the sidecar's environment, Secret references, volumes and security context. */
  public readonly archiverContainers: ArchiverContainerFactory;
  public readonly statefulSet: PostgresStatefulSet;
  public readonly disruptionBudget: k8s.KubePodDisruptionBudget;
  /** What lets each pod's sidecar label it `archived-postgres/role: primary|standby` (the read-only Service selects `standby`). */
  public readonly podRole: PodRoleLabel;
  /** What pod 0 does with an empty data volume (`bootstrap`). */
  public readonly bootstrap: Bootstrap;
  /** The Argo CD PostDelete hook that deletes the archive: under TerminationPolicy.WIPE_OUT only. */
  public readonly wipeOut?: WipeOutJob;
  /** The PodMonitor, PrometheusRule and Grafana dashboard (`monitoring`). */
  public readonly monitoring: DatabaseMonitoring;
  /** The NetworkPolicy (`networkPolicy`), when asked for. */
  public readonly networkPolicy?: DatabaseNetworkPolicy;

  private readonly props: ArchivedPostgresProps;
  /** The database constructed earlier in the same app with the same namespace and name, if any. */
  private readonly sameNameAs?: ArchivedPostgres;

  constructor(scope: Construct, id: string, props: ArchivedPostgresProps) {
    super(scope, id);
    this.props = props;

    // Every default of the props, resolved here once (the archiver image's in ArchiverContainerFactory).
    this.name = props.name ?? id;
    this.namespace = props.namespace ?? Chart.of(this).namespace ?? 'default';
    this.version = props.version;
    this.replicas = props.replicas ?? 1;
    this.terminationPolicy = props.terminationPolicy ?? TerminationPolicy.DELETE;
    this.archiveTimeout = props.archiver?.archiveTimeout ?? Duration.seconds(60);
    this.archiveStorage = props.archiver?.storage;
    this.authSecretName = props.authSecretName ?? `${this.name}-auth`;
    this.replicationSecretName = props.replication?.secretName ?? `${this.name}-replication`;
    this.primaryServiceName = this.name;
    this.standbyServiceName = `${this.name}-standby`;
    this.governingServiceName = `${this.name}-pods`;
    this.archivePath = archivePath(this.archiveStorage?.prefix, this.namespace, this.name);
    this.bootstrap = props.bootstrap ?? Bootstrap.restore();
    this.selectorLabels = Object.freeze({ 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': this.name });
    this.labels = Object.freeze({ ...this.selectorLabels, 'app.kubernetes.io/component': 'database', 'app.kubernetes.io/managed-by': 'cdk8s' });
    const image = props.image ?? defaultPostgresImage(props.version);
    const dataVolume = {
      storageClassName: props.storage?.storageClassName,
      accessModes: props.storage?.accessModes ?? ['ReadWriteOnce'],
      size: props.storage?.size ?? DEFAULT_DATA_VOLUME_SIZE,
    };
    const postgresResources = resourcesWithDefaults({ requests: { cpu: '500m', memory: DEFAULT_POSTGRES_MEMORY }, limitsEqualRequests: ['memory'] }, props.resources);
    // PostgreSQL's memory is sized from what the container may use: its limit (an invalid one is
    // reported by validation; the files are rendered for the default meanwhile).
    const memory = memorySettingsFor(parseQuantity(postgresResources.limits?.memory ?? postgresResources.requests?.memory ?? '') ?? parseQuantity(DEFAULT_POSTGRES_MEMORY)!);
    const archiverResources = resourcesWithDefaults({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } }, props.archiver?.resources);
    this.sameNameAs = registerName(this);

    this.node.addValidation({ validate: () => this.validateProps() });

    // The objects are built from tolerant defaults even when props are invalid: validation runs
    // before anything is written and reports every problem of the app at once. Their order is
    // the YAML's; their construct ids are pinned by the tests.
    const metadata = (name: string) => ({ name, namespace: this.namespace, labels: this.labels });
    this.serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(this.name),
      automountServiceAccountToken: false,
    });
    this.podRole = new PodRoleLabel(this, 'PodRole', {
      name: this.name,
      namespace: this.namespace,
      labels: this.labels,
      statefulSetName: this.name,
      replicas: this.replicas,
      serviceAccountName: this.serviceAccount.name,
    });
    this.config = new PostgresConfig(this, {
      configMapName: `${this.name}-config`,
      namespace: this.namespace,
      labels: this.labels,
      id: `${this.namespace}/${this.name}`,
      primaryHost: `${this.name}-0.${this.governingServiceName}`,
      archiveTimeoutSeconds: Math.round(this.archiveTimeout.toMilliseconds() / 1000),
      archiverInstallDir: ARCHIVER_INSTALL_DIR,
      version: this.version,
      cloneFrom: props.standbys?.cloneFrom ?? CloneSource.PRIMARY,
      superuserNetworkLogin: props.superuserNetworkLogin ?? false,
      tls: props.tls !== undefined,
      storageCredentialVariables: this.archiveStorage?.backend ? STORAGE_CREDENTIAL_ENV_OF[this.archiveStorage.backend] : undefined,
      // An invalid size is reported by validation; the files are rendered for the default meanwhile.
      walSizes: walSizesFor(parseQuantity(dataVolume.size) ?? parseQuantity(DEFAULT_DATA_VOLUME_SIZE)!),
      memory,
    });
    this.services = new PostgresServices(this, {
      statefulSetName: this.name,
      governingServiceName: this.governingServiceName,
      primaryServiceName: this.primaryServiceName,
      standbyServiceName: this.standbyServiceName,
      namespace: this.namespace,
      labels: this.labels,
      selectorLabels: this.selectorLabels,
    });
    this.archiverContainers = new ArchiverContainerFactory({
      storage: this.archiveStorage,
      archivePath: this.archivePath,
      // The app's (ArchiverImage.use); validation reports a missing one.
      image: ArchiverImage.referenceOf(this) ?? '',
    });
    this.statefulSet = new PostgresStatefulSet(this, {
      name: this.name,
      namespace: this.namespace,
      labels: this.labels,
      selectorLabels: this.selectorLabels,
      replicas: this.replicas,
      governingServiceName: this.governingServiceName,
      serviceAccountName: this.serviceAccount.name,
      image,
      authSecretName: this.authSecretName,
      replicationSecretName: this.replicationSecretName,
      tlsSecretName: props.tls?.secretName,
      resources: postgresResources,
      dataVolume,
      config: this.config,
      archiver: this.archiverContainers,
      archiverResources,
      terminationPolicy: this.terminationPolicy,
      bootstrapEnv: this.bootstrapEnvironment(),
      backupEnv: backupEnvironment(props.backups),
      placement: props.placement,
      version: this.version,
      sharedMemorySize: `${memory.sharedMemoryVolumeMib}Mi`,
    });
    this.podRole.bind(this.statefulSet);
    this.disruptionBudget = new k8s.KubePodDisruptionBudget(this, 'DisruptionBudget', {
      metadata: metadata(this.name),
      spec: {
        // Voluntary disruptions (node drains) take one member at a time.
        maxUnavailable: k8s.IntOrString.fromNumber(1),
        selector: { matchLabels: this.selectorLabels },
      },
    });

    this.monitoring = new DatabaseMonitoring(this, 'Monitoring', {
      name: this.name,
      namespace: this.namespace,
      labels: this.labels,
      selectorLabels: this.selectorLabels,
      replicas: this.replicas,
      backupSchedule: typeof props.backups?.schedule === 'string' ? props.backups.schedule : undefined,
      retentionWindow: props.backups?.retention?.window instanceof Duration ? props.backups.retention.window : undefined,
      tls: props.tls !== undefined,
      monitoring: props.monitoring,
    });

    if (props.networkPolicy !== undefined) {
      this.networkPolicy = new DatabaseNetworkPolicy(this, 'NetworkPolicy', {
        name: this.name,
        namespace: this.namespace,
        labels: this.labels,
        selectorLabels: this.selectorLabels,
        monitoring: props.monitoring?.enabled !== false,
        storageEndpoint: this.archiveStorage?.spec.s3?.endpoint,
        networkPolicy: props.networkPolicy,
      });
    }

    if (this.terminationPolicy === TerminationPolicy.WIPE_OUT) {
      this.wipeOut = new WipeOutJob(this, 'WipeOut', {
        name: this.name,
        namespace: this.namespace,
        statefulSetName: this.statefulSet.apiObject.name,
        archiver: this.archiverContainers,
        resources: archiverResources,
      });
    }

    for (const [key, value] of Object.entries(pruneAnnotations(this.terminationPolicy))) this.addAnnotation(key, value);
  }

  /** Every Kubernetes object of the database: the ones it renders and any added inside it since. */
  public get apiObjects(): ApiObject[] {
    return this.node.findAll().filter((c): c is ApiObject => ApiObject.isApiObject(c));
  }

  /**
   * Annotates every object of the database (`apiObjects` at the time of the call), e.g. an Argo CD
   * sync wave. Objects added inside the database later are not annotated by earlier calls.
   */
  public addAnnotation(key: string, value: string): void {
    for (const object of this.apiObjects) object.metadata.addAnnotation(key, value);
  }

  /** The bootstrap's environment; a bootstrap that is not a `Bootstrap` (plain JavaScript) is reported by validation. */
  private bootstrapEnvironment(): k8s.EnvVar[] {
    if (!(this.bootstrap instanceof Bootstrap)) return [];
    return this.bootstrap.bind({ storage: this.archiveStorage, namespace: this.namespace, name: this.name });
  }

  /** Every problem with the props, each as "field: value is wrong, expected ...". */
  private validateProps(): string[] {
    const errors: string[] = [];
    const add = (field: string, message: string | undefined) => {
      if (message) errors.push(`${field}: ${message}`);
    };
    const props = this.props;

    add(props.name === undefined ? 'name (the construct id)' : 'name', checkDatabaseName(this.name));
    add('namespace', checkNamespace(this.namespace));
    if (!Number.isInteger(props.version) || !SUPPORTED_VERSIONS.includes(props.version)) {
      add('version', `${show(props.version)} is not a supported PostgreSQL major version: use one of ${SUPPORTED_VERSIONS.join(', ')}`);
    }
    if (props.image !== undefined) {
      add('image', checkImageReference(props.image, { allowLocalImage: props.allowLocalImage, example: defaultPostgresImage(this.version) }));
    }
    if (ArchiverImage.referenceOf(this) === undefined) {
      add('archiver image', `is not set: name it once for the app, in app.ts before the charts: ArchiverImage.use(app, ${show(ARCHIVER_IMAGE_EXAMPLE)}) (build and push it with npm run archiver:image)`);
    }
    if (!Number.isInteger(this.replicas) || this.replicas < 1) {
      add('replicas', `${show(this.replicas)} is not a whole number of at least 1: pod 0 is the primary and every further replica a standby`);
    } else if (this.replicas > MAX_REPLICAS) {
      add('replicas', `${this.replicas} members are more than the ${MAX_REPLICAS} this construct supports: every standby streams from pod 0, whose max_wal_senders = ${MAX_WAL_SENDERS} is sized for ${MAX_REPLICAS - 1} standbys (two senders each while one clones or reconnects) and a pg_basebackup by hand; use at most ${MAX_REPLICAS}`);
    }
    errors.push(...checkDataVolume('storage', props.storage));
    errors.push(...checkContainerResources('resources', props.resources));
    const memoryGiven = props.resources?.limits?.memory ?? props.resources?.requests?.memory;
    const memoryBytes = memoryGiven === undefined ? undefined : parseQuantity(memoryGiven);
    if (memoryBytes !== undefined && memoryBytes > 0 && memoryBytes < MIN_POSTGRES_MEMORY_MIB * 2 ** 20) {
      const field = props.resources?.limits?.memory !== undefined ? 'resources.limits.memory' : 'resources.requests.memory';
      add(field, `${show(memoryGiven)} is less than the ${MIN_POSTGRES_MEMORY_MIB}Mi PostgreSQL needs here (32 MB of shared_buffers at the least, a few MB per connection, the memory-backed /dev/shm of parallel queries): the server would be killed for memory under load; give at least "${MIN_POSTGRES_MEMORY_MIB}Mi", e.g. "1Gi"`);
    }
    errors.push(...checkPlacement('placement', props.placement));
    if (props.authSecretName !== undefined) add('authSecretName', checkSecretName(props.authSecretName));
    if (props.tls !== undefined) add('tls.secretName', checkSecretName(props.tls.secretName));
    if (props.replication?.secretName !== undefined) add('replication.secretName', checkSecretName(props.replication.secretName));
    if (props.replication?.secretName !== undefined && props.replication.secretName === this.authSecretName) {
      add('replication.secretName', `${show(props.replication.secretName)} is the superuser's Secret (authSecretName): give the replication role a Secret of its own, e.g. ${show(`${this.name}-replication`)}`);
    }
    const cloneFrom = props.standbys?.cloneFrom;
    if (cloneFrom !== undefined && !CLONE_SOURCES.includes(cloneFrom)) {
      add('standbys.cloneFrom', `${show(cloneFrom)} is not a clone source: use CloneSource.PRIMARY or CloneSource.ARCHIVE`);
    }
    if (!TERMINATION_POLICIES.includes(this.terminationPolicy)) {
      add('terminationPolicy', `${show(this.terminationPolicy)} is not a termination policy: use one of ${TERMINATION_POLICIES.join(', ')}`);
    }

    if (!props.archiver || !this.archiveStorage) {
      add('archiver.storage', 'is missing: give ArchiveStorage.s3({...}) or ArchiveStorage.gcs({...})');
    } else {
      for (const problem of this.archiveStorage.validate()) add(`archiver.storage.${problem.field}`, problem.message);
      if ((props.archiver as { image?: unknown }).image !== undefined) {
        add('archiver.image', 'is no longer a database prop: the archiver image is set once per app, ArchiverImage.use(app, reference) in app.ts');
      }
      errors.push(...checkContainerResources('archiver.resources', props.archiver.resources));
    }
    const timeoutMs = this.archiveTimeout.toMilliseconds();
    if (timeoutMs % 1000 !== 0) {
      add('archiver.archiveTimeout', `${timeoutMs} ms is not a whole number of seconds: PostgreSQL's archive_timeout counts seconds; use Duration.seconds(60)`);
    } else if (timeoutMs === 0) {
      add('archiver.archiveTimeout', `0 s would turn archive_timeout off (in PostgreSQL 0 means disabled, not "at once"): a segment would be archived only when its 16 MiB are full, which on a quiet database can take days, and until then the committed work in it exists only on the volume; give ${MIN_ARCHIVE_TIMEOUT_SECONDS} s to ${MAX_ARCHIVE_TIMEOUT_SECONDS} s: Duration.seconds(60) is the usual choice, Duration.hours(24) the fewest segments`);
    } else if (timeoutMs / 1000 < MIN_ARCHIVE_TIMEOUT_SECONDS || timeoutMs / 1000 > MAX_ARCHIVE_TIMEOUT_SECONDS) {
      add('archiver.archiveTimeout', `${timeoutMs / 1000} s is outside ${MIN_ARCHIVE_TIMEOUT_SECONDS} s to ${MAX_ARCHIVE_TIMEOUT_SECONDS} s: every timeout archives a whole 16 MiB segment even on an idle database (at 1 s that is up to 1.4 TB a day), and more than a day leaves too much committed work out of the archive; 60 s is the usual choice`);
    }

    errors.push(...checkBackups('backups', props.backups, this.replicas));
    if (!(this.bootstrap instanceof Bootstrap)) {
      add('bootstrap', `${show(this.bootstrap)} is not a Bootstrap: use Bootstrap.restore() (the default), Bootstrap.initdb() or Bootstrap.fromArchive({...})`);
    } else {
      for (const problem of this.bootstrap.validate({ storage: this.archiveStorage, namespace: this.namespace, name: this.name })) add(`bootstrap.${problem.field}`, problem.message);
    }

    // Two databases with the same namespace and name would render the same objects and write
    // into the same archive. Reported on every database after the first.
    if (this.sameNameAs) {
      add('name', `${show(this.name)} in namespace ${show(this.namespace)} is already used by ${this.sameNameAs.node.path}: two databases would share their objects and their WAL archive; choose another name or namespace`);
    }
    errors.push(...this.checkObjectNames());
    errors.push(...this.config.validate());
    return errors;
  }

  /**
   * Objects of this database that another object of the app renders under the same kind, namespace
   * and name: `orders` and `orders-standby` both render `Service/orders-standby`, and reads of one
   * database would reach the other. A collision between two databases is reported on the later
   * one in the construct tree (a database of the same name is reported above, once).
   */
  private checkObjectNames(): string[] {
    const { byIdentity, position } = objectIndexOf(nameScopeOf(this));
    const mine = new Set<IConstruct>(this.apiObjects);
    const errors: string[] = [];
    for (const object of this.apiObjects) {
      for (const other of byIdentity.get(objectIdentity(object)) ?? []) {
        if (mine.has(other)) continue;
        const otherDb = other.node.scopes.slice().reverse().find((c): c is ArchivedPostgres => c instanceof ArchivedPostgres);
        if (otherDb && (position.get(otherDb)! > position.get(this)! || (otherDb.name === this.name && otherDb.namespace === this.namespace))) continue;
        errors.push(`name: ${object.kind} ${show(object.name)} in namespace ${show(this.namespace)} (${object.node.path}) is also rendered by ${other.node.path}: one would replace the other, and clients of one database would reach the other; choose a name whose objects (${show(this.name)}, "${this.name}-standby", "${this.name}-pods", "${this.name}-config", "${this.name}-dashboard", "${this.name}-wipeout") no other object of the namespace has`);
      }
    }
    return errors;
  }
}
