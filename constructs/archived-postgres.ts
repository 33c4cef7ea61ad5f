import { createHash } from 'node:crypto';
import { ApiObject, Chart, Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct, IConstruct } from 'constructs';
import {
  ARCHIVER_ENV,
  ARCHIVER_INSTALL_DIR,
  STORAGE_SECRET_KEYS,
  archivePath,
  archiverDaemonCommand,
  archiverInstallCommand,
  repositoryUrl,
} from '../contract';
import { ArchiveStorage } from './archive-storage';
import {
  ARCHIVER_SPOOL_DIR,
  CONFIG_DIR,
  DATA_MOUNT,
  PGDATA,
  POSTGRES_PORT,
  SOCKET_DIR,
  SUPERUSER,
  renderPgHbaConf,
  renderPostgresqlConf,
  renderStartScript,
} from './postgres-config';
import { TERMINATION_POLICIES, TerminationPolicy } from './termination-policy';
import {
  checkDatabaseName,
  checkImage,
  checkNamespace,
  checkResourceQuantity,
  checkSecretName,
  checkStorageSize,
  show,
} from './validation';

/** PostgreSQL major versions this construct renders and its archiver is tested against. */
export const SUPPORTED_VERSIONS: readonly number[] = [13, 14, 15, 16, 17, 18];

/** The archiver image used when `archiver.image` is not set. Build and push it with `npm run archiver:image`. */
export const DEFAULT_ARCHIVER_IMAGE = 'pg-wal-archiver:0.1.0';

/** archive_timeout bounds, in seconds. */
export const MIN_ARCHIVE_TIMEOUT_SECONDS = 15;
export const MAX_ARCHIVE_TIMEOUT_SECONDS = 24 * 60 * 60;

/** The data volume of every member (KubeDB's `spec.storage`). */
export interface PostgresStorage {
  /**
   * The StorageClass of the volume claims.
   * @default - the cluster's default StorageClass
   */
  readonly storageClassName?: string;
  /**
   * @default ["ReadWriteOnce"]
   */
  readonly accessModes?: string[];
  /**
   * The size of each member's volume, a Kubernetes quantity.
   * @default "1Gi"
   */
  readonly size?: string;
}

/** CPU and memory, as Kubernetes quantities. */
export interface ResourceQuantities {
  readonly cpu?: string;
  readonly memory?: string;
}

/** A container's requests and limits. */
export interface ContainerResources {
  readonly requests?: ResourceQuantities;
  readonly limits?: ResourceQuantities;
}

/** The PostgreSQL container's resources. */
export interface PostgresResources {
  /**
   * @default { cpu: "500m", memory: "1Gi" }
   */
  readonly requests?: ResourceQuantities;
  /**
   * No CPU limit (throttling a database hurts latency more than sharing a core does); the memory
   * limit equals the request so that the pod is never killed for memory it was promised.
   * @default { memory: "1Gi" }
   */
  readonly limits?: ResourceQuantities;
}

/** Continuous archiving (KubeDB's `spec.archiver`). */
export interface ArchiverOptions {
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
   * The archiver image. It runs twice in each pod: as the init container that copies the
   * archiver into the PostgreSQL container (PostgreSQL runs it as archive_command and
   * restore_command), and as the `archiver` sidecar, the background archiver that pushes ready
   * WAL ahead of PostgreSQL's calls and prefetches WAL for recovery.
   * @default DEFAULT_ARCHIVER_IMAGE
   */
  readonly image?: string;
  /**
   * The `archiver` sidecar's resources. It compresses and uploads up to 8 segments at once
   * while catching up on a backlog, and idles otherwise.
   * @default - requests { cpu: "100m", memory: "256Mi" }, limits { memory: "512Mi" }
   */
  readonly resources?: ContainerResources;
}

export interface ArchivedPostgresProps {
  /** PostgreSQL major version, one of SUPPORTED_VERSIONS. */
  readonly version: number;
  /**
   * The PostgreSQL image. Must be the official image or one built from it (Debian based: the
   * archiver's Node runtime needs glibc).
   * @default `postgres:${version}`
   */
  readonly image?: string;
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
  /** @default - 1Gi volumes of the default StorageClass */
  readonly storage?: PostgresStorage;
  /** @default - see PostgresResources */
  readonly resources?: PostgresResources;
  /** Continuous archiving to S3-compatible storage or GCS. */
  readonly archiver: ArchiverOptions;
  /**
   * The Secret with the superuser's password under the key `password` (KubeDB's `{name}-auth`).
   * Create it outside Git or as a SealedSecret/ExternalSecret; only its name is rendered.
   * @default `${name}-auth`
   */
  readonly authSecretName?: string;
  /**
   * What removing the database from Git deletes.
   * @default TerminationPolicy.DELETE
   */
  readonly terminationPolicy?: TerminationPolicy;
}

/** The first database of each `namespace/name`, per app (construct tree root). */
const databasesByApp = new WeakMap<IConstruct, Map<string, ArchivedPostgres>>();

/** Records `db` under its namespace and name; returns the database that already holds them. */
function registerName(db: ArchivedPostgres): ArchivedPostgres | undefined {
  const root = db.node.root;
  let names = databasesByApp.get(root);
  if (!names) databasesByApp.set(root, (names = new Map()));
  const key = `${db.namespace}/${db.name}`;
  const first = names.get(key);
  if (!first) names.set(key, db);
  return first;
}

/** Labels every object of one database carries; the first two are the (immutable) selector. */
function selectorLabels(name: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': name };
}

/**
 * PostgreSQL with continuous WAL archiving, as plain Kubernetes objects: a StatefulSet whose pod 0
 * is the primary and pods 1..N-1 streaming standbys, its Services, a ConfigMap with the server
 * configuration and start-up script, an init container that installs the archiver PostgreSQL
 * runs as archive_command and restore_command, and the `archiver` sidecar (the background
 * archiver those commands hand their work to). Credentials are referenced, never rendered.
 */
export class ArchivedPostgres extends Construct {
  public readonly name: string;
  public readonly namespace: string;
  public readonly version: number;
  public readonly replicas: number;
  public readonly terminationPolicy: TerminationPolicy;
  public readonly archiveTimeout: Duration;
  public readonly storage: ArchiveStorage;
  /** The primary (read-write) Service's name. */
  public readonly primaryServiceName: string;
  /** The standby (read-only) Service's name. */
  public readonly standbyServiceName: string;
  /** The headless Service that gives each pod a stable DNS name. */
  public readonly governingServiceName: string;
  /** The path inside the bucket: `{prefix}/kubedb/{namespace}/{name}/archive`. */
  public readonly archivePath: string;

  private readonly props: ArchivedPostgresProps;
  /** The database constructed earlier in the same app with the same namespace and name, if any. */
  private readonly sameNameAs?: ArchivedPostgres;

  constructor(scope: Construct, id: string, props: ArchivedPostgresProps) {
    super(scope, id);
    this.props = props;
    this.name = props.name ?? id;
    this.namespace = props.namespace ?? Chart.of(this).namespace ?? 'default';
    this.version = props.version;
    this.replicas = props.replicas ?? 1;
    this.terminationPolicy = props.terminationPolicy ?? TerminationPolicy.DELETE;
    this.archiveTimeout = props.archiver?.archiveTimeout ?? Duration.seconds(60);
    this.storage = props.archiver?.storage;
    this.primaryServiceName = this.name;
    this.standbyServiceName = `${this.name}-standby`;
    this.governingServiceName = `${this.name}-pods`;
    this.archivePath = archivePath(this.storage?.prefix, this.namespace, this.name);
    this.sameNameAs = registerName(this);

    this.node.addValidation({ validate: () => this.validateProps() });

    // The objects are built from tolerant defaults even when props are invalid: validation runs
    // before anything is written and reports every problem of the app at once.
    const rendered = this.renderObjects();
    for (const object of rendered) {
      this.applyTerminationPolicy(object);
    }
  }

  /** Every problem with the props, each as "field: value is wrong, expected ...". */
  private validateProps(): string[] {
    const errors: string[] = [];
    const add = (field: string, message: string | undefined) => {
      if (message) errors.push(`${field}: ${message}`);
    };
    const props = this.props;
    const checkResources = (field: string, resources: ContainerResources | undefined) => {
      for (const kind of ['requests', 'limits'] as const) {
        for (const resource of ['cpu', 'memory'] as const) {
          const value = resources?.[kind]?.[resource];
          if (value !== undefined) add(`${field}.${kind}.${resource}`, checkResourceQuantity(value));
        }
      }
    };

    add(props.name === undefined ? 'name (the construct id)' : 'name', checkDatabaseName(this.name));
    add('namespace', checkNamespace(this.namespace));
    if (!Number.isInteger(props.version) || !SUPPORTED_VERSIONS.includes(props.version)) {
      add('version', `${show(props.version)} is not a supported PostgreSQL major version: use one of ${SUPPORTED_VERSIONS.join(', ')}`);
    }
    if (props.image !== undefined) add('image', checkImage(props.image));
    if (!Number.isInteger(this.replicas) || this.replicas < 1) {
      add('replicas', `${show(this.replicas)} is not a whole number of at least 1: pod 0 is the primary and every further replica a standby`);
    } else if (this.replicas > 32) {
      add('replicas', `${this.replicas} members exceed max_wal_senders and the 32 this construct supports`);
    }
    if (props.storage?.size !== undefined) add('storage.size', checkStorageSize(props.storage.size));
    if (props.storage?.storageClassName !== undefined && checkSecretName(props.storage.storageClassName)) {
      add('storage.storageClassName', `${show(props.storage.storageClassName)} is not a valid StorageClass name: use lowercase letters, digits, '-' and '.', e.g. "standard"`);
    }
    const validModes = ['ReadWriteOnce', 'ReadWriteOncePod', 'ReadWriteMany', 'ReadOnlyMany'];
    if (props.storage?.accessModes !== undefined) {
      if (props.storage.accessModes.length === 0) add('storage.accessModes', `is empty: use e.g. ["ReadWriteOnce"]`);
      for (const mode of props.storage.accessModes) {
        if (!validModes.includes(mode)) add('storage.accessModes', `${show(mode)} is not an access mode: use ${validModes.join(', ')}`);
      }
    }
    checkResources('resources', props.resources);
    if (props.authSecretName !== undefined) add('authSecretName', checkSecretName(props.authSecretName));
    if (!TERMINATION_POLICIES.includes(this.terminationPolicy)) {
      add('terminationPolicy', `${show(this.terminationPolicy)} is not a termination policy: use one of ${TERMINATION_POLICIES.join(', ')}`);
    }

    if (!props.archiver || !this.storage) {
      add('archiver.storage', 'is missing: give ArchiveStorage.s3({...}) or ArchiveStorage.gcs({...})');
    } else {
      for (const problem of this.storage.validate()) add(`archiver.storage.${problem.field}`, problem.message);
      if (props.archiver.image !== undefined) add('archiver.image', checkImage(props.archiver.image));
      checkResources('archiver.resources', props.archiver.resources);
    }
    const timeoutMs = this.archiveTimeout.toMilliseconds();
    if (timeoutMs % 1000 !== 0) {
      add('archiver.archiveTimeout', `${timeoutMs} ms is not a whole number of seconds: PostgreSQL's archive_timeout counts seconds; use Duration.seconds(60)`);
    } else if (timeoutMs / 1000 < MIN_ARCHIVE_TIMEOUT_SECONDS || timeoutMs / 1000 > MAX_ARCHIVE_TIMEOUT_SECONDS) {
      add('archiver.archiveTimeout', `${timeoutMs / 1000} s is outside ${MIN_ARCHIVE_TIMEOUT_SECONDS} s to ${MAX_ARCHIVE_TIMEOUT_SECONDS} s: every timeout archives a whole 16 MiB segment even on an idle database (at 1 s that is up to 1.4 TB a day), and more than a day leaves too much committed work out of the archive; 60 s is the usual choice`);
    }

    // Two databases with the same namespace and name would render the same objects and write
    // into the same archive. Reported on every database after the first.
    if (this.sameNameAs) {
      add('name', `${show(this.name)} in namespace ${show(this.namespace)} is already used by ${this.sameNameAs.node.path}: two databases would share their objects and their WAL archive; choose another name or namespace`);
    }
    return errors;
  }

  private renderObjects(): ApiObject[] {
    const labels = {
      ...selectorLabels(this.name),
      'app.kubernetes.io/component': 'database',
      'app.kubernetes.io/managed-by': 'cdk8s',
    };
    const metadata = (name: string) => ({ name, namespace: this.namespace, labels });
    const primaryHost = `${this.name}-0.${this.governingServiceName}`;
    const id = `${this.namespace}/${this.name}`;
    const archiveTimeoutSeconds = Math.round(this.archiveTimeout.toMilliseconds() / 1000);
    const configName = `${this.name}-config`;
    const configData = {
      'postgresql.conf': renderPostgresqlConf({ id, primaryHost, archiveTimeoutSeconds, archiverInstallDir: ARCHIVER_INSTALL_DIR }),
      'pg_hba.conf': renderPgHbaConf(id),
      'start.sh': renderStartScript({ id, primaryHost }),
    };

    const serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: metadata(this.name),
      automountServiceAccountToken: false,
    });
    const config = new k8s.KubeConfigMap(this, 'Config', { metadata: metadata(configName), data: configData });
    const port = { name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres'), protocol: 'TCP' };
    const governing = new k8s.KubeService(this, 'GoverningService', {
      metadata: metadata(this.governingServiceName),
      spec: {
        clusterIp: 'None',
        // Standbys resolve the primary by its pod name while it is still starting.
        publishNotReadyAddresses: true,
        selector: selectorLabels(this.name),
        ports: [port],
      },
    });
    const primary = new k8s.KubeService(this, 'PrimaryService', {
      metadata: metadata(this.primaryServiceName),
      spec: {
        type: 'ClusterIP',
        // Pod 0 is always the primary; its name label is set by the StatefulSet controller.
        selector: { ...selectorLabels(this.name), 'statefulset.kubernetes.io/pod-name': `${this.name}-0` },
        ports: [port],
      },
    });
    const standby = new k8s.KubeService(this, 'StandbyService', {
      metadata: metadata(this.standbyServiceName),
      spec: {
        type: 'ClusterIP',
        // Every ready member answers read-only queries. Kubernetes 1.27 has no label that tells
        // pod 0 from the others, so the primary is a member too (the only one when replicas is 1).
        selector: selectorLabels(this.name),
        ports: [port],
      },
    });

    const statefulSet = new k8s.KubeStatefulSet(this, 'StatefulSet', {
      metadata: { ...metadata(this.name), annotations: { 'archived-postgres/termination-policy': this.terminationPolicy } },
      spec: {
        serviceName: this.governingServiceName,
        replicas: this.replicas,
        // Pod 0 (the primary) must be running before the standbys clone it.
        podManagementPolicy: 'OrderedReady',
        selector: { matchLabels: selectorLabels(this.name) },
        updateStrategy: { type: 'RollingUpdate' },
        persistentVolumeClaimRetentionPolicy: this.pvcRetentionPolicy(),
        template: {
          metadata: {
            labels,
            annotations: {
              // A configuration change rolls the pods; the hash is of the rendered files only.
              'archived-postgres/config-sha256': createHash('sha256').update(JSON.stringify(configData)).digest('hex'),
            },
          },
          spec: this.podSpec(serviceAccount.name, configName),
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels: selectorLabels(this.name) },
            spec: {
              accessModes: this.props.storage?.accessModes ?? ['ReadWriteOnce'],
              storageClassName: this.props.storage?.storageClassName,
              resources: { requests: { storage: k8s.Quantity.fromString(this.props.storage?.size ?? '1Gi') } },
            },
          },
        ],
      },
    });

    const budget = new k8s.KubePodDisruptionBudget(this, 'DisruptionBudget', {
      metadata: metadata(this.name),
      spec: {
        // Voluntary disruptions (node drains) take one member at a time.
        maxUnavailable: k8s.IntOrString.fromNumber(1),
        selector: { matchLabels: selectorLabels(this.name) },
      },
    });
    return [serviceAccount, config, governing, primary, standby, statefulSet, budget];
  }

  private pvcRetentionPolicy(): k8s.StatefulSetPersistentVolumeClaimRetentionPolicy {
    const keepData = this.terminationPolicy === TerminationPolicy.DO_NOT_TERMINATE || this.terminationPolicy === TerminationPolicy.HALT;
    // Scaling down keeps a standby's volume: scaling up again resumes it instead of re-cloning.
    return { whenDeleted: keepData ? 'Retain' : 'Delete', whenScaled: 'Retain' };
  }

  /** DoNotTerminate: tell Argo CD and Flux never to prune these objects. */
  private applyTerminationPolicy(object: ApiObject): void {
    if (this.terminationPolicy === TerminationPolicy.DO_NOT_TERMINATE) {
      object.metadata.addAnnotation('argocd.argoproj.io/sync-options', 'Delete=false');
      object.metadata.addAnnotation('kustomize.toolkit.fluxcd.io/prune', 'disabled');
    }
  }

  private podSpec(serviceAccountName: string, configName: string): k8s.PodSpec {
    const version = this.props.version;
    const image = this.props.image ?? `postgres:${version}`;
    const authSecretName = this.props.authSecretName ?? `${this.name}-auth`;
    const storageVolumes = this.archiverVolumes();
    const pgIsReady = ['pg_isready', '--quiet', `--host=${SOCKET_DIR}`, `--port=${POSTGRES_PORT}`];
    const requests = { cpu: '500m', memory: '1Gi', ...this.props.resources?.requests };
    const limits = { memory: requests.memory, ...this.props.resources?.limits };
    const quantities = (values: Record<string, string | undefined>) =>
      Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined).map(([k, v]) => [k, k8s.Quantity.fromString(v!)]));

    return {
      serviceAccountName,
      automountServiceAccountToken: false,
      // Fast shutdown plus a last archive_command for the final segment.
      terminationGracePeriodSeconds: 60,
      securityContext: {
        // uid/gid 999 is the postgres user of the official (Debian) image.
        runAsUser: 999,
        runAsGroup: 999,
        runAsNonRoot: true,
        fsGroup: 999,
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      },
      initContainers: [
        {
          name: 'install-archiver',
          image: this.props.archiver?.image ?? DEFAULT_ARCHIVER_IMAGE,
          command: archiverInstallCommand(ARCHIVER_INSTALL_DIR),
          securityContext: this.containerSecurityContext(),
          resources: {
            requests: quantities({ cpu: '50m', memory: '64Mi' }),
            limits: quantities({ memory: '128Mi' }),
          },
          volumeMounts: [{ name: 'archiver', mountPath: ARCHIVER_INSTALL_DIR }],
        },
      ],
      containers: [
        {
          name: 'postgres',
          image,
          command: ['/bin/bash', `${CONFIG_DIR}/start.sh`],
          ports: [{ name: 'postgres', containerPort: POSTGRES_PORT, protocol: 'TCP' }],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'PGDATA', value: PGDATA },
            { name: 'POSTGRES_USER', value: SUPERUSER },
            { name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: authSecretName, key: 'password' } } },
            // Used by pg_basebackup and by a standby's walreceiver to authenticate to the primary.
            { name: 'PGPASSWORD', valueFrom: { secretKeyRef: { name: authSecretName, key: 'password' } } },
            ...this.archiverEnv(),
            // The sidecar below is the background archiver; a call never starts one of its own
            // (it would be adopted by the postmaster, PID 1 here) and works alone while the
            // sidecar is down.
            ...(this.storage ? [{ name: ARCHIVER_ENV.daemon, value: 'external' }] : []),
          ],
          resources: { requests: quantities(requests), limits: quantities(limits) },
          securityContext: this.containerSecurityContext(),
          // A standby's first clone or a long archive recovery may take a while: up to an hour.
          startupProbe: { exec: { command: pgIsReady }, periodSeconds: 10, failureThreshold: 360 },
          readinessProbe: { exec: { command: pgIsReady }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
          // Alive while the server answers at all: pg_isready exits 1 ("rejecting connections",
          // e.g. during recovery) or 0; only 2 (no response) means the server is gone.
          livenessProbe: {
            exec: { command: ['/bin/sh', '-c', `${pgIsReady.join(' ')}; [ $? -ne 2 ]`] },
            periodSeconds: 10,
            timeoutSeconds: 5,
            failureThreshold: 6,
          },
          volumeMounts: [
            { name: 'data', mountPath: DATA_MOUNT },
            { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
            { name: 'run', mountPath: SOCKET_DIR },
            { name: 'tmp', mountPath: '/tmp' },
            { name: 'archiver', mountPath: ARCHIVER_INSTALL_DIR, readOnly: true },
            ...storageVolumes.mounts,
          ],
        },
        {
          // The background archiver: warm before the first segment is ready, outside the
          // postmaster's process tree, its log in `kubectl logs -c archiver`. It sees the data
          // volume at the same path, so the paths PostgreSQL passes mean the same file here.
          name: 'archiver',
          image: this.props.archiver?.image ?? DEFAULT_ARCHIVER_IMAGE,
          command: archiverDaemonCommand(),
          env: [...this.archiverEnv(), { name: ARCHIVER_ENV.daemonIdleSeconds, value: '0' }],
          resources: {
            requests: quantities({ cpu: '100m', memory: '256Mi', ...this.props.archiver?.resources?.requests }),
            limits: quantities({ memory: '512Mi', ...this.props.archiver?.resources?.limits }),
          },
          securityContext: this.containerSecurityContext(),
          volumeMounts: [{ name: 'data', mountPath: DATA_MOUNT }, { name: 'tmp', mountPath: '/tmp' }, ...storageVolumes.mounts],
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: configName, defaultMode: 0o444 } },
        { name: 'run', emptyDir: {} },
        { name: 'tmp', emptyDir: {} },
        { name: 'archiver', emptyDir: {} },
        ...storageVolumes.volumes,
      ],
    };
  }

  private containerSecurityContext(): k8s.SecurityContext {
    return {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    };
  }

  /** The environment the archiver reads (see archiver/src/contract.ts); secrets by reference only. */
  private archiverEnv(): k8s.EnvVar[] {
    const storage = this.storage;
    if (!storage) return [];
    const secret = (name: string, key: string): k8s.EnvVar => ({
      name,
      valueFrom: { secretKeyRef: { name: storage.spec.storageSecretName, key } },
    });
    const env: k8s.EnvVar[] = [{ name: ARCHIVER_ENV.spool, value: ARCHIVER_SPOOL_DIR }];
    if (storage.kind === 's3') {
      const s3 = storage.spec.s3!;
      env.push({ name: ARCHIVER_ENV.repository, value: repositoryUrl('s3', storage.bucket, this.archivePath) });
      if (s3.endpoint !== undefined) env.push({ name: ARCHIVER_ENV.s3Endpoint, value: s3.endpoint });
      env.push({ name: ARCHIVER_ENV.awsRegion, value: s3.region ?? 'us-east-1' });
      env.push(secret(ARCHIVER_ENV.awsAccessKeyId, STORAGE_SECRET_KEYS.awsAccessKeyId));
      env.push(secret(ARCHIVER_ENV.awsSecretAccessKey, STORAGE_SECRET_KEYS.awsSecretAccessKey));
    } else if (storage.kind === 'gcs') {
      env.push({ name: ARCHIVER_ENV.repository, value: repositoryUrl('gcs', storage.bucket, this.archivePath) });
      env.push(secret(ARCHIVER_ENV.gcsProjectId, STORAGE_SECRET_KEYS.gcsProjectId));
      env.push({ name: ARCHIVER_ENV.gcsCredentialsFile, value: `${GCS_KEY_DIR}/${GCS_KEY_FILE}` });
    }
    return env;
  }

  private archiverVolumes(): { volumes: k8s.Volume[]; mounts: k8s.VolumeMount[] } {
    if (this.storage?.kind !== 'gcs') return { volumes: [], mounts: [] };
    return {
      volumes: [
        {
          name: 'gcs-key',
          secret: {
            secretName: this.storage.spec.storageSecretName,
            items: [{ key: STORAGE_SECRET_KEYS.gcsServiceAccountJsonKey, path: GCS_KEY_FILE }],
            // Readable by the pod's group (fsGroup 999) only.
            defaultMode: 0o440,
          },
        },
      ],
      mounts: [{ name: 'gcs-key', mountPath: GCS_KEY_DIR, readOnly: true }],
    };
  }
}

/** Where the GCS service-account key is mounted. */
export const GCS_KEY_DIR = '/var/run/secrets/archiver/gcs';
export const GCS_KEY_FILE = 'service-account.json';
