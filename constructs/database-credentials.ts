/**
 * The database roles' passwords in the pod: the superuser's Secret (`authSecretName`) and the
 * replication role's (`replication.secretName`), mounted as volumes — never as environment
 * variables, which a rotated Secret never reaches, and never rendered as values. The archiver
 * sidecar reads both mounts, keeps the roles' passwords equal to them on pod 0 and writes the
 * replication role's libpq password file for the standbys (archiver/src/daemon/credentials.ts).
 * The PostgreSQL container sees the superuser's only, for initdb (POSTGRES_PASSWORD_FILE).
 */
import { k8s } from 'cdk8s-plus-27';
import { CREDENTIALS_ENV, CREDENTIALS_MOUNT, PASSWORD_KEY, REPLICATION_PASSFILE } from '../contract';

/** The replication role's credentials (the standbys log in to pod 0 as `replication`). */
export interface ReplicationProps {
  /**
   * The Secret with the replication role's password under the key `password`. Create it outside
   * Git or as a SealedSecret/ExternalSecret, before the database (the pods wait for it); only its
   * name is rendered. Rotate by changing the Secret: no restart.
   * @default `${name}-replication`
   */
  readonly secretName?: string;
}

/** The volumes of the two password Secrets. */
const VOLUMES = { superuser: 'superuser-password', replication: 'replication-password' } as const;

/** The path of the `password` file of a mounted Secret. */
function passwordFile(mount: string): string {
  return `${mount}/${PASSWORD_KEY}`;
}

/** What each container of the pod gets for the credentials, and the pod's volumes. */
export interface CredentialWiring {
  readonly postgresEnv: k8s.EnvVar[];
  readonly postgresVolumeMounts: k8s.VolumeMount[];
  readonly sidecarEnv: k8s.EnvVar[];
  readonly sidecarVolumeMounts: k8s.VolumeMount[];
  readonly volumes: k8s.Volume[];
}

export function credentialWiring(secrets: { readonly authSecretName: string; readonly replicationSecretName: string }): CredentialWiring {
  // Root-owned files of group fsGroup (the postgres group), readable by it: 0440.
  const secretVolume = (name: string, secretName: string): k8s.Volume => ({
    name,
    secret: { secretName, items: [{ key: PASSWORD_KEY, path: PASSWORD_KEY }], defaultMode: 0o440 },
  });
  return {
    // The official image's entrypoint reads the superuser's password from this file for initdb.
    postgresEnv: [{ name: 'POSTGRES_PASSWORD_FILE', value: passwordFile(CREDENTIALS_MOUNT.superuser) }],
    postgresVolumeMounts: [{ name: VOLUMES.superuser, mountPath: CREDENTIALS_MOUNT.superuser, readOnly: true }],
    sidecarEnv: [
      { name: CREDENTIALS_ENV.superuserPasswordFile, value: passwordFile(CREDENTIALS_MOUNT.superuser) },
      { name: CREDENTIALS_ENV.replicationPasswordFile, value: passwordFile(CREDENTIALS_MOUNT.replication) },
      { name: CREDENTIALS_ENV.replicationPassfile, value: REPLICATION_PASSFILE },
    ],
    // No subPath: the kubelet updates a Secret volume in place only when it is mounted whole.
    sidecarVolumeMounts: [
      { name: VOLUMES.superuser, mountPath: CREDENTIALS_MOUNT.superuser, readOnly: true },
      { name: VOLUMES.replication, mountPath: CREDENTIALS_MOUNT.replication, readOnly: true },
    ],
    volumes: [secretVolume(VOLUMES.superuser, secrets.authSecretName), secretVolume(VOLUMES.replication, secrets.replicationSecretName)],
  };
}
