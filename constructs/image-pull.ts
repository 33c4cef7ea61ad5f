/**
 * When the kubelet pulls the images of the database's pods. Rendered on every container, so that
 * a reviewer reads the choice instead of relying on the API server's default (which is Always for
 * a `:latest` or tag-less reference and IfNotPresent otherwise).
 *
 * IfNotPresent: a node that has the image starts it; a registry outage never stops a database from
 * restarting (with Always the kubelet fails a container's start when the registry does not answer,
 * even with the image on the node). A tag can move, so two nodes may hold different images under
 * one tag: pin a digest (`...:16.4@sha256:<64 hex>`) to know exactly what runs everywhere.
 */
export const IMAGE_PULL_POLICY = 'IfNotPresent';
