/**
 * The database's ConfigMap (postgresql.conf, pg_hba.conf, start.sh, probe.sh) as both containers
 * of the pod see it: the postgres container starts from it; the `archiver` sidecar watches it and
 * reloads the server when the kubelet updates it in place (archiver/src/daemon/config-reload.ts).
 * The constructs render the mount and ARCHIVER_ENV.configDir from these names.
 */

/** Where the ConfigMap is mounted, read-only, in the postgres container and in the sidecar. */
export const CONFIG_DIR = '/etc/postgresql-archived';

/**
 * How the kubelet updates a ConfigMap volume in place (its AtomicWriter): each version of the
 * files is written into a new hidden directory, then the symlink `..data` is swapped to it at once;
 * every file of the mount is a symlink `name -> ..data/name`. Entries whose name starts with this
 * are the kubelet's bookkeeping, not files of the ConfigMap.
 */
export const KUBELET_HIDDEN_PREFIX = '..';

/** The symlink to the current version's directory, swapped by the kubelet at each update. */
export const KUBELET_DATA_LINK = `${KUBELET_HIDDEN_PREFIX}data`;

/**
 * The files of a kubernetes.io/tls Secret (cert-manager writes the same keys), mounted at TLS_DIR:
 * postgresql.conf names the certificate and key (constructs/postgres-tls.ts), the standbys verify
 * pod 0 with the CA, and the sidecar checks after a reload that the server took a renewed pair
 * (archiver/src/daemon/config-reload.ts).
 */
export const TLS_SECRET_FILES = {
  /** The server's certificate, with its chain after it. */
  certificate: 'tls.crt',
  key: 'tls.key',
  /** The CA the standbys verify pod 0's certificate with; optional. */
  ca: 'ca.crt',
} as const;
