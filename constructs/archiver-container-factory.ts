/**
 * The archiver as a container of any pod: the StatefulSet's sidecar, a Job's or a CronJob's. Every
 * container it makes runs the archiver image with the archive's environment (credentials as Secret
 * references only), the storage's volume mounts and the restricted security context; the pod that
 * holds it adds `volumes` and runs with `podSecurityContext`.
 */
import { k8s } from 'cdk8s-plus-27';
import { ARCHIVER_ENV, ARCHIVER_INSTALL_DIR, archiverInstallCommand } from '../contract';
import { ArchiveStorage, ArchiveStorageBinding } from './archive-storage';
import { ContainerResources, renderResources } from './container-resources';
import { IMAGE_PULL_POLICY } from './image-pull';
import { ARCHIVER_SPOOL_DIR } from './pod-layout';
import { containerSecurityContext, podSecurityContext } from './pod-security';

export interface ArchiverContainerFactoryProps {
  /** Where the archive is kept. */
  readonly storage: ArchiveStorage;
  /** The archive's path inside the bucket: `{prefix}/kubedb/{namespace}/{name}/archive`. */
  readonly archivePath: string;
  /**
   * The archiver image, fully qualified (`ArchiverImage.use` sets the app's; build and push it
   * with `npm run archiver:image`).
   */
  readonly image: string;
  /**
   * The archiver's spool directory (ARCHIVER_SPOOL). It must be on the same filesystem as pg_wal
   * wherever PostgreSQL's calls and the sidecar share it; a pod without the data volume mounts a
   * volume of its own at `DATA_MOUNT`.
   * @default ARCHIVER_SPOOL_DIR - on the data volume, outside PGDATA
   */
  readonly spoolDirectory?: string;
}

/** One archiver container. */
export interface ArchiverContainerOptions {
  /** The container's name, unique in its pod. */
  readonly name: string;
  /** What it runs, e.g. `archiverDaemonCommand()` or `archiverImageCommand('check')` (contract). */
  readonly command: string[];
  /**
   * Variables after the archiver's environment.
   * @default - the archiver's environment only
   */
  readonly env?: k8s.EnvVar[];
  /**
   * Mounts before the storage's, e.g. the data volume.
   * @default - the storage's mounts only
   */
  readonly volumeMounts?: k8s.VolumeMount[];
  /**
   * Named ports, e.g. a metrics port.
   * @default - none
   */
  readonly ports?: k8s.ContainerPort[];
  /**
   * Requests and limits.
   * @default - none: the namespace's defaults apply
   */
  readonly resources?: ContainerResources;
}

/** The init container that copies the archiver out of its image into a volume another container reads. */
export interface ArchiverInstallContainerOptions {
  /**
   * The container's name.
   * @default "install-archiver"
   */
  readonly name?: string;
  /** The volume the archiver is copied into; mounted at `installDir`. */
  readonly volumeName: string;
  /**
   * Where the archiver is installed (the reading container mounts `volumeName` there too).
   * @default ARCHIVER_INSTALL_DIR
   */
  readonly installDir?: string;
  /**
   * @default - requests { cpu: "50m", memory: "64Mi" }, limits { memory: "128Mi" }
   */
  readonly resources?: ContainerResources;
}

/**
 * Makes archiver containers for any pod: the environment, Secret references, volumes and security
 * context with which the archiver reaches one database's archive, resolved once.
 *
 * ```ts
 * const archiver = db.archiverContainers;
 * new k8s.KubeJob(this, 'check', { spec: { template: { spec: {
 *   restartPolicy: 'Never',
 *   securityContext: archiver.podSecurityContext,
 *   containers: [archiver.container({ name: 'check', command: archiverImageCommand('check') })],
 *   volumes: archiver.volumes,
 * } } } });
 * ```
 */
export class ArchiverContainerFactory {
  public readonly image: string;
  public readonly spoolDirectory: string;
  private readonly binding: ArchiveStorageBinding;
  private readonly variablesBinding: ArchiveStorageBinding;

  constructor(props: ArchiverContainerFactoryProps) {
    this.image = props.image;
    this.spoolDirectory = props.spoolDirectory ?? ARCHIVER_SPOOL_DIR;
    // Props from plain JavaScript may lack the storage; the database's validation reports it.
    const none: ArchiveStorageBinding = { env: [], volumes: [], volumeMounts: [] };
    this.binding = props.storage ? props.storage.bind({ archivePath: props.archivePath }) : none;
    this.variablesBinding = props.storage ? props.storage.bind({ archivePath: props.archivePath, credentials: 'variables' }) : none;
  }

  /**
   * The environment the archiver reads (contract's ARCHIVER_ENV): spool, archive location,
   * credentials by reference. The references are optional: a storage Secret that is missing or
   * lacks a key would keep the kubelet from starting the container at all (the pod NotReady, the
   * primary Service without its endpoint); started, the sidecar reports it in its log and
   * metrics instead and PostgreSQL keeps the WAL (README: The archiver sidecar).
   */
  public get env(): k8s.EnvVar[] {
    return environment(this.spoolDirectory, this.binding);
  }

  /**
   * `env` with every credential in a variable (contract's STORAGE_CREDENTIAL_ENV) and none in a
   * mounted file, needing no `volumeMounts`: for a container that unsets its credentials before
   * it runs anything else, as the postgres container's start.sh does before it starts
   * PostgreSQL (a mounted GCS key would stay readable by every superuser session).
   */
  public get unsettableEnv(): k8s.EnvVar[] {
    return environment(this.spoolDirectory, this.variablesBinding);
  }

  /** The volumes a pod with archiver containers must have (the storage's, e.g. the GCS key), optional as `env`'s references. */
  public get volumes(): k8s.Volume[] {
    return this.binding.volumes.map((v) => {
      const volume = structuredClone(v);
      return volume.secret ? { ...volume, secret: { ...volume.secret, optional: true } } : volume;
    });
  }

  /** Each archiver container's mounts of `volumes`. */
  public get volumeMounts(): k8s.VolumeMount[] {
    return this.binding.volumeMounts.map((m) => ({ ...m }));
  }

  /** The security context of every archiver container. */
  public get securityContext(): k8s.SecurityContext {
    return containerSecurityContext();
  }

  /** The security context of a pod that runs archiver containers (the same user as PostgreSQL's pod). */
  public get podSecurityContext(): k8s.PodSecurityContext {
    return podSecurityContext();
  }

  /** An archiver container that reaches the archive. */
  public container(options: ArchiverContainerOptions): k8s.Container {
    const volumeMounts = [...(options.volumeMounts ?? []), ...this.volumeMounts];
    return {
      name: options.name,
      image: this.image,
      imagePullPolicy: IMAGE_PULL_POLICY,
      command: options.command,
      env: [...this.env, ...(options.env ?? [])],
      ports: options.ports,
      resources: options.resources ? renderResources(options.resources) : undefined,
      securityContext: this.securityContext,
      volumeMounts: volumeMounts.length > 0 ? volumeMounts : undefined,
    };
  }

  /**
   * The init container that copies the archiver (launcher, Node runtime, bundle) from the image into
   * a volume, for a container of another image to run it (PostgreSQL's archive_command). It does
   * not reach the archive: no environment, no credentials.
   */
  public installContainer(options: ArchiverInstallContainerOptions): k8s.Container {
    const installDir = options.installDir ?? ARCHIVER_INSTALL_DIR;
    return {
      name: options.name ?? 'install-archiver',
      image: this.image,
      imagePullPolicy: IMAGE_PULL_POLICY,
      command: archiverInstallCommand(installDir),
      securityContext: this.securityContext,
      resources: renderResources(options.resources ?? { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } }),
      volumeMounts: [{ name: options.volumeName, mountPath: installDir }],
    };
  }
}

/** The spool, then the binding's variables, their Secret references optional (see `env`). */
function environment(spoolDirectory: string, binding: ArchiveStorageBinding): k8s.EnvVar[] {
  return [
    { name: ARCHIVER_ENV.spool, value: spoolDirectory },
    ...binding.env.map((v) => (v.valueFrom?.secretKeyRef ? { ...v, valueFrom: { ...v.valueFrom, secretKeyRef: { ...v.valueFrom.secretKeyRef, optional: true } } } : { ...v })),
  ];
}
