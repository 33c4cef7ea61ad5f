/**
 * The StatefulSet of one database: pod 0 the primary, pods 1..N-1 streaming standbys, each with
 * the archiver installed for PostgreSQL's archive_command and restore_command and the `archiver`
 * sidecar beside it. The pod is rendered when the app is synthesized, so containers, variables,
 * ports, volumes and annotations added after construction reach the YAML.
 *
 * Each member's data volume claim is rendered too, before the StatefulSet (`data-{name}-{ordinal}`,
 * the name the StatefulSet controller gives the claim of its template `data`): the controller
 * adopts a claim that exists instead of creating one, and a claim's size, unlike a StatefulSet's
 * `volumeClaimTemplates`, may grow. So a larger `storage.size` in Git grows the volumes when the
 * claims are applied (where the StorageClass has `allowVolumeExpansion: true`) and leaves the
 * StatefulSet's immutable fields as they are: its template always asks for CLAIM_TEMPLATE_SIZE.
 */
import { Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ARCHIVER_ENV, ARCHIVER_INSTALL_DIR, METRICS_PORT, METRICS_PORT_NAME, PGDATA_ENV, archiverDaemonCommand } from '../contract';
import { ArchiverContainerFactory } from './archiver-container-factory';
import { ContainerResources, renderResources } from './container-resources';
import { IMAGE_PULL_POLICY } from './image-pull';
import { credentialWiring } from './database-credentials';
import { tlsVolume } from './postgres-tls';
import { PodContainer } from './pod-container';
import { PlacementProps, renderPlacement } from './pod-placement';
import { CONFIG_DIR, DATA_MOUNT, PGDATA, POSTGRES_PORT, SOCKET_DIR, SUPERUSER, TLS_DIR } from './pod-layout';
import { containerSecurityContext, podSecurityContext } from './pod-security';
import { PostgresConfig } from './postgres-config';
import { MAX_REPLICAS } from './postgres-config';
import { TerminationPolicy, claimAnnotations, volumeClaimRetention } from './termination-policy';
import { checkSecretName, checkVolumeSize, show } from './validation';
import { MIN_DATA_VOLUME_MIB } from './wal-size';

/** The name of the StatefulSet's volume claim template, and of each member's data volume. */
export const DATA_VOLUME = 'data';

/**
 * The size the StatefulSet's volume claim template asks for, whatever `storage.size` is: the
 * template is immutable, so it never carries a size that a pull request may change. The controller
 * uses it only for a member whose claim is not rendered (a `kubectl scale` beyond `replicas`);
 * every rendered claim has `storage.size`.
 */
export const CLAIM_TEMPLATE_SIZE = `${MIN_DATA_VOLUME_MIB}Mi`;

/** The data volume claim of member `ordinal`, as the StatefulSet controller names it: `data-{statefulSet}-{ordinal}`. */
export function dataVolumeClaimName(statefulSetName: string, ordinal: number): string {
  return `${DATA_VOLUME}-${statefulSetName}-${ordinal}`;
}

/** The data volume of every member (KubeDB's `spec.storage`): one volume claim per pod. */
export interface DataVolumeProps {
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
   * The size of each member's volume, a Kubernetes quantity of at least 512Mi. It holds the data
   * directory, its WAL and the archiver's spool; max_wal_size, min_wal_size and wal_keep_size are
   * sized from it (wal-size.ts).
   * @default "1Gi"
   */
  readonly size?: string;
}

/** The access modes a volume claim may ask for. */
export const ACCESS_MODES: readonly string[] = ['ReadWriteOnce', 'ReadWriteOncePod', 'ReadWriteMany', 'ReadOnlyMany'];

/** Every problem of a data volume definition, as `field.size: message` (`field` is the prop's name). */
export function checkDataVolume(field: string, volume: DataVolumeProps | undefined): string[] {
  const errors: string[] = [];
  if (volume?.size !== undefined) {
    const message = checkVolumeSize(volume.size);
    if (message) errors.push(`${field}.size: ${message}`);
  }
  if (volume?.storageClassName !== undefined && checkSecretName(volume.storageClassName)) {
    errors.push(`${field}.storageClassName: ${show(volume.storageClassName)} is not a valid StorageClass name: use lowercase letters, digits, '-' and '.', e.g. "standard"`);
  }
  if (volume?.accessModes !== undefined) {
    if (volume.accessModes.length === 0) errors.push(`${field}.accessModes: is empty: use e.g. ["ReadWriteOnce"]`);
    for (const mode of volume.accessModes) {
      if (!ACCESS_MODES.includes(mode)) errors.push(`${field}.accessModes: ${show(mode)} is not an access mode: use ${ACCESS_MODES.join(', ')}`);
    }
  }
  return errors;
}

/** Everything the StatefulSet is rendered from; the database resolves every default. */
export interface PostgresStatefulSetProps {
  readonly name: string;
  readonly namespace: string;
  /** The labels of every object of the database (the pods' too). */
  readonly labels: Record<string, string>;
  /** The labels that select the pods; immutable once the StatefulSet exists. */
  readonly selectorLabels: Record<string, string>;
  readonly replicas: number;
  readonly governingServiceName: string;
  readonly serviceAccountName: string;
  /** The PostgreSQL image. */
  readonly image: string;
  /** The Secret with the superuser's password under the key `password`. */
  readonly authSecretName: string;
  /** The Secret with the replication role's password under the key `password`. */
  readonly replicationSecretName: string;
  /**
   * The kubernetes.io/tls Secret mounted for the server's TLS (postgres-tls.ts).
   * @default - none
   */
  readonly tlsSecretName?: string;
  /** The PostgreSQL container's resources. */
  readonly resources: ContainerResources;
  /** The volume claim template `data`; `storageClassName` undefined is the cluster's default. */
  readonly dataVolume: { readonly storageClassName?: string; readonly accessModes: string[]; readonly size: string };
  /** The ConfigMap the PostgreSQL container is started from and the sidecar watches; its checksum rolls the pods. */
  readonly config: PostgresConfig;
  /** Makes the installer and the `archiver` sidecar. */
  readonly archiver: ArchiverContainerFactory;
  /** The `archiver` sidecar's resources. */
  readonly archiverResources: ContainerResources;
  /**
   * What pod 0 does with an empty data volume: the PostgreSQL container's ARCHIVER_BOOTSTRAP*
   * variables (`Bootstrap.bind()`), read by `archiver bootstrap` in the start script.
   */
  readonly bootstrapEnv: k8s.EnvVar[];
  /** The sidecar's base backups: its ARCHIVER_BACKUP_* variables (`backupEnvironment()`). */
  readonly backupEnv: k8s.EnvVar[];
  readonly terminationPolicy: TerminationPolicy;
  /** Where the members run; the default spreads them over nodes and zones. */
  readonly placement?: PlacementProps;
  /** PostgreSQL major version: the StatefulSet carries it, so that a later synthesis can refuse to change it. */
  readonly version: number;
  /** The size of the PostgreSQL container's /dev/shm (a memory-backed volume), from its memory. */
  readonly sharedMemorySize: string;
}

/**
 * The StatefulSet's annotation with the PostgreSQL major version its members' data directories
 * hold: a later synthesis compares `version` with it (a major version cannot start on another's data).
 */
export const MAJOR_VERSION_ANNOTATION = 'archived-postgres/postgres-major-version';

/**
 * Ephemeral storage (the node's disk: container logs, the writable layer, emptyDir volumes). A
 * limit makes the kubelet evict a pod that fills the node's disk instead of the node failing for
 * every pod on it; the requests let the scheduler place the pods where that much is free. The
 * logs the kubelet keeps per container are at most 50Mi (5 files of 10Mi by default).
 */
const EPHEMERAL_STORAGE = {
  /** Logs and /tmp (probe state), and the archiver's installed copy (about 110 MB) counted with the pod. */
  postgres: { request: '256Mi', limit: '1Gi' },
  /** Logs (its spool and a backup's parts are on the data volume). */
  archiver: { request: '128Mi', limit: '512Mi' },
} as const;

/** The emptyDir volumes' size limits: more means something is wrong, and the kubelet evicts the pod. */
const EMPTY_DIR_LIMITS = {
  /** The server's Unix socket and lock file. */
  run: '16Mi',
  /** Probe state files; pg_basebackup and psql write nothing here. */
  tmp: '256Mi',
  /** The archiver as the init container installs it (launcher, Node runtime, bundle). */
  archiver: '256Mi',
} as const;

/** The StatefulSet (construct id `StatefulSet` in `scope`, the database) and its pod. */
export class PostgresStatefulSet {
  /**
   * Each member's data volume claim, `data-{name}-{ordinal}` (construct ids `DataVolumeClaim0`,
   * `DataVolumeClaim1`, ...), before the StatefulSet, which adopts them.
   */
  public readonly dataVolumeClaims: k8s.KubePersistentVolumeClaim[];
  public readonly apiObject: k8s.KubeStatefulSet;
  /** The `postgres` container. */
  public readonly postgres: PodContainer;
  /** The `archiver` sidecar: the background archiver PostgreSQL's archive_command and restore_command hand their work to. */
  public readonly archiverSidecar: PodContainer;
  private readonly props: PostgresStatefulSetProps;
  private readonly installer: k8s.Container;
  private readonly extraInitContainers: k8s.Container[] = [];
  private readonly extraContainers: k8s.Container[] = [];
  private readonly extraVolumes: k8s.Volume[] = [];
  private readonly podAnnotations: Record<string, string> = {};
  private readonly credentialVolumes: k8s.Volume[];

  constructor(scope: Construct, props: PostgresStatefulSetProps) {
    this.props = props;
    const archiver = props.archiver;
    // Mounted, not in the environment (database-credentials.ts).
    const credentials = credentialWiring(props);
    const tls = props.tlsSecretName !== undefined ? tlsVolume(props.tlsSecretName) : undefined;

    this.credentialVolumes = [...credentials.volumes, ...(tls ? [tls.volume] : [])];
    this.installer = archiver.installContainer({ volumeName: 'archiver', installDir: ARCHIVER_INSTALL_DIR });
    this.postgres = new PodContainer({
      name: 'postgres',
      image: props.image,
      imagePullPolicy: IMAGE_PULL_POLICY,
      command: ['/bin/bash', `${CONFIG_DIR}/start.sh`],
      // A start that stops with a reason (a data directory of another major version, a refused
      // bootstrap) shows it in \`kubectl describe pod\` (Last State: Terminated, Message).
      terminationMessagePolicy: 'FallbackToLogsOnError',
      ports: [{ name: 'postgres', containerPort: POSTGRES_PORT, protocol: 'TCP' }],
      env: [
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'PGDATA', value: PGDATA },
        { name: 'POSTGRES_USER', value: SUPERUSER },
        ...credentials.postgresEnv,
        // PostgreSQL runs the archiver (archive_command, restore_command) with this environment.
        // Its storage credentials serve start.sh's bootstrap and backup-fetch only: start.sh
        // unsets them (STORAGE_CREDENTIAL_ENV) before it starts PostgreSQL (README: Who holds
        // the storage credentials), so all of them are variables here, GCS's key too: a mounted
        // file could not be taken away from the server.
        ...archiver.unsettableEnv,
        // The sidecar below is the background archiver; a call never starts one of its own
        // (it would be adopted by the postmaster, PID 1 here) and, without credentials, never
        // works alone: while the sidecar is down a call fails and PostgreSQL calls again.
        { name: ARCHIVER_ENV.daemon, value: 'external' },
        ...props.bootstrapEnv,
      ],
      resources: withEphemeralStorage(renderResources(props.resources), EPHEMERAL_STORAGE.postgres),
      securityContext: containerSecurityContext(),
      // Started once the server answers, or while a copy into the empty volume grows (probe.sh):
      // nothing but a wait (e.g. for pod 0) is cut short after this hour.
      startupProbe: { exec: { command: ['/bin/bash', `${CONFIG_DIR}/probe.sh`, 'startup'] }, periodSeconds: 10, failureThreshold: 360 },
      // probe.sh (probe-script.ts): the server accepts connections (ready) or answers at all
      // (live), and a standby follows pod 0: one that cannot is taken out of the Services and
      // restarted, and start.sh rewinds it or clones it again.
      readinessProbe: { exec: { command: ['/bin/bash', `${CONFIG_DIR}/probe.sh`, 'ready'] }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
      livenessProbe: { exec: { command: ['/bin/bash', `${CONFIG_DIR}/probe.sh`, 'live'] }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
      volumeMounts: [
        { name: DATA_VOLUME, mountPath: DATA_MOUNT },
        { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
        { name: 'run', mountPath: SOCKET_DIR },
        { name: 'tmp', mountPath: '/tmp' },
        // Parallel queries share memory through /dev/shm; a runtime gives 64Mi by default.
        { name: 'shm', mountPath: '/dev/shm' },
        { name: 'archiver', mountPath: ARCHIVER_INSTALL_DIR, readOnly: true },
        ...credentials.postgresVolumeMounts,
        ...(tls ? [tls.mount] : []),
      ],
    });
    // The background archiver: warm before the first segment is ready, outside the postmaster's
    // process tree, its log in `kubectl logs -c archiver`. It sees the data volume at the same
    // path, so the paths PostgreSQL passes mean the same file here. It never idles out (a
    // container that exits is restarted with a back-off). It takes the base backups: its role
    // comes from the pod's name, as the start script's does, and it reaches the server over the
    // Unix socket, where peer authentication maps its uid (999) to the superuser.
    const sidecar = archiver.container({
      name: 'archiver',
      command: archiverDaemonCommand(),
      env: [
        { name: ARCHIVER_ENV.daemonIdleSeconds, value: '0' },
        { name: ARCHIVER_ENV.podName, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        // libpq's names, which the archiver's backups read.
        { name: 'PGHOST', value: SOCKET_DIR },
        { name: 'PGUSER', value: SUPERUSER },
        ...props.backupEnv,
        // Its metrics (the PodMonitor scrapes the port by name), and where it finds pg_wal for them.
        { name: ARCHIVER_ENV.metricsPort, value: String(METRICS_PORT) },
        { name: PGDATA_ENV, value: PGDATA },
        // The ConfigMap, which it watches: a change the kubelet brings in place is applied with a
        // reload (only a change that needs a restart rolls the pods: PostgresConfig.checksum).
        { name: ARCHIVER_ENV.configDir, value: CONFIG_DIR },
        // The TLS Secret, watched the same way: PostgreSQL loads a renewed certificate only at a
        // reload. The sidecar reads the key too, to see a new one (hashed, never logged); it already
        // reads the whole data directory, so the key tells it nothing new. One volume in both
        // containers: the kubelet swaps the certificate and the key for both at once.
        ...(tls ? [{ name: ARCHIVER_ENV.tlsDir, value: TLS_DIR }] : []),
        // It keeps the roles' passwords equal to the Secrets and writes the standbys' passfile.
        ...credentials.sidecarEnv,
      ],
      ports: [{ name: METRICS_PORT_NAME, containerPort: METRICS_PORT, protocol: 'TCP' }],
      resources: props.archiverResources,
      volumeMounts: [
        { name: DATA_VOLUME, mountPath: DATA_MOUNT },
        { name: 'tmp', mountPath: '/tmp' },
        // Connecting to a socket needs no write access to its directory.
        { name: 'run', mountPath: SOCKET_DIR, readOnly: true },
        { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
        ...credentials.sidecarVolumeMounts,
        ...(tls ? [tls.mount] : []),
      ],
    });
    this.archiverSidecar = new PodContainer({ ...sidecar, resources: withEphemeralStorage(sidecar.resources ?? {}, EPHEMERAL_STORAGE.archiver) });

    // Invalid replicas are reported by validation; no claim is rendered for them meanwhile.
    const members = Number.isInteger(props.replicas) && props.replicas >= 1 ? Math.min(props.replicas, MAX_REPLICAS) : 0;
    this.dataVolumeClaims = Array.from({ length: members }, (_, ordinal) => new k8s.KubePersistentVolumeClaim(scope, `DataVolumeClaim${ordinal}`, {
      metadata: {
        name: dataVolumeClaimName(props.name, ordinal),
        namespace: props.namespace,
        labels: props.labels,
        annotations: claimAnnotations(props.terminationPolicy),
      },
      spec: {
        accessModes: props.dataVolume.accessModes,
        storageClassName: props.dataVolume.storageClassName,
        resources: { requests: { storage: k8s.Quantity.fromString(props.dataVolume.size) } },
      },
    }));

    this.apiObject = new k8s.KubeStatefulSet(scope, 'StatefulSet', {
      metadata: {
        name: props.name,
        namespace: props.namespace,
        labels: props.labels,
        annotations: {
          'archived-postgres/termination-policy': props.terminationPolicy,
          [MAJOR_VERSION_ANNOTATION]: String(props.version),
        },
      },
      spec: Lazy.any({ produce: () => this.renderSpec() }),
    });
  }

  /** Adds a container to every pod, after `postgres` and `archiver`. */
  public addContainer(container: k8s.Container): void {
    this.extraContainers.push(container);
  }

  /** Adds an init container to every pod, after the one that installs the archiver. */
  public addInitContainer(container: k8s.Container): void {
    this.extraInitContainers.push(container);
  }

  /** Adds a volume to every pod; mount it with `postgres.addVolumeMount()` or in an added container. */
  public addVolume(volume: k8s.Volume): void {
    this.extraVolumes.push(volume);
  }

  /** Annotates the pod template (a change rolls the pods). */
  public addPodAnnotation(key: string, value: string): void {
    this.podAnnotations[key] = value;
  }

  private renderSpec(): k8s.StatefulSetSpec {
    const props = this.props;
    return {
      serviceName: props.governingServiceName,
      replicas: props.replicas,
      // Pod 0 (the primary) must be running before the standbys clone it.
      podManagementPolicy: 'OrderedReady',
      selector: { matchLabels: props.selectorLabels },
      updateStrategy: { type: 'RollingUpdate' },
      persistentVolumeClaimRetentionPolicy: volumeClaimRetention(props.terminationPolicy),
      template: {
        metadata: {
          labels: props.labels,
          annotations: {
            ...this.podAnnotations,
            // A change that needs a restart rolls the pods (the hash is of those settings and
            // start.sh only); the sidecar applies every other change with a reload.
            'archived-postgres/config-sha256': props.config.checksum,
          },
        },
        spec: this.renderPodSpec(),
      },
      // Only for a member whose claim is not rendered: see CLAIM_TEMPLATE_SIZE.
      volumeClaimTemplates: [
        {
          metadata: { name: DATA_VOLUME, labels: props.selectorLabels },
          spec: {
            accessModes: props.dataVolume.accessModes,
            storageClassName: props.dataVolume.storageClassName,
            resources: { requests: { storage: k8s.Quantity.fromString(CLAIM_TEMPLATE_SIZE) } },
          },
        },
      ],
    };
  }

  private renderPodSpec(): k8s.PodSpec {
    return {
      serviceAccountName: this.props.serviceAccountName,
      automountServiceAccountToken: false,
      // Fast shutdown plus a last archive_command for the final segment.
      terminationGracePeriodSeconds: 60,
      securityContext: podSecurityContext(),
      ...renderPlacement(this.props.placement, this.props.selectorLabels),
      initContainers: [this.installer, ...this.extraInitContainers],
      containers: [this.postgres.toKube(), this.archiverSidecar.toKube(), ...this.extraContainers],
      volumes: [
        { name: 'config', configMap: { name: this.props.config.configMapName, defaultMode: 0o444 } },
        { name: 'run', emptyDir: { sizeLimit: k8s.Quantity.fromString(EMPTY_DIR_LIMITS.run) } },
        { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString(EMPTY_DIR_LIMITS.tmp) } },
        { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString(this.props.sharedMemorySize) } },
        { name: 'archiver', emptyDir: { sizeLimit: k8s.Quantity.fromString(EMPTY_DIR_LIMITS.archiver) } },
        ...this.props.archiver.volumes,
        ...this.credentialVolumes,
        ...this.extraVolumes,
      ],
    };
  }
}

/** `resources` with an ephemeral-storage request and limit added. */
export function withEphemeralStorage(resources: k8s.ResourceRequirements, storage: { readonly request: string; readonly limit: string }): k8s.ResourceRequirements {
  return {
    requests: { ...resources.requests, 'ephemeral-storage': k8s.Quantity.fromString(storage.request) },
    limits: { ...resources.limits, 'ephemeral-storage': k8s.Quantity.fromString(storage.limit) },
  };
}
