/**
 * TLS from a Secret of type kubernetes.io/tls (`tls.crt`, `tls.key`, optionally `ca.crt`): the
 * server encrypts every network connection (`ssl = on`, `hostssl` in pg_hba.conf), and the
 * standbys connect to pod 0 with `sslmode=verify-ca` against the Secret's `ca.crt`, or
 * `sslmode=require` (encrypted, not verified) when it has none. Whether it has one is known in the
 * pod only, so the standbys' mode is set by the scripts (PGSSLMODE, PGSSLROOTCERT, which libpq
 * reads for every connection without its own: psql, pg_basebackup, pg_rewind, and the walreceiver
 * that primary_conninfo starts, a child of the postmaster that start.sh execs).
 *
 * A certificate renewed in place (cert-manager updates the Secret before it expires, the kubelet
 * swaps the mounted files) is loaded by PostgreSQL only at a reload: the sidecar mounts the same
 * volume and reloads the server when its files change (archiver/src/daemon/config-reload.ts).
 */
import { k8s } from 'cdk8s-plus-27';
import { TLS_SECRET_FILES } from '../contract';
import { TLS_DIR } from './pod-layout';

/** TLS for the database's network connections. */
export interface TlsProps {
  /**
   * A Secret of type kubernetes.io/tls in the database's namespace: `tls.crt` (the server's
   * certificate, with its chain), `tls.key`, and optionally `ca.crt` (the CA the standbys verify
   * pod 0's certificate with). Only its name is rendered.
   */
  readonly secretName: string;
}

/** The TLS volume's name. */
export const TLS_VOLUME = 'tls';

/**
 * The Secret mounted in the postgres container. PostgreSQL accepts a key file owned by root only
 * when it is readable by its owner and group at most (0640); a Secret volume's files are root's,
 * of the pod's fsGroup (the postgres group, 999): 0440 lets the server read them and no one else.
 */
export function tlsVolume(secretName: string): { volume: k8s.Volume; mount: k8s.VolumeMount } {
  return {
    volume: { name: TLS_VOLUME, secret: { secretName, defaultMode: 0o440 } },
    mount: { name: TLS_VOLUME, mountPath: TLS_DIR, readOnly: true },
  };
}

/** The postgresql.conf lines of TLS. */
export function renderTlsSettings(): string {
  return `# TLS from the Secret mounted at ${TLS_DIR} (tls): every network connection is encrypted (pg_hba.conf: hostssl).
ssl = on
ssl_cert_file = '${TLS_DIR}/${TLS_SECRET_FILES.certificate}'
ssl_key_file = '${TLS_DIR}/${TLS_SECRET_FILES.key}'
`;
}

/** The bash lines that make every later libpq connection to pod 0 use TLS (see the module's comment). */
export function renderClientTls(): string {
  return `# TLS to pod 0: its certificate verified against the Secret's ${TLS_SECRET_FILES.ca}, or, without one, encrypted only.
if [ -s ${TLS_DIR}/${TLS_SECRET_FILES.ca} ]; then
  export PGSSLMODE=verify-ca PGSSLROOTCERT=${TLS_DIR}/${TLS_SECRET_FILES.ca}
else
  export PGSSLMODE=require
fi
`;
}
