/**
 * A database's NetworkPolicy (optional, `networkPolicy`): its pods accept and open only the
 * connections the database needs.
 *
 * Ingress:
 * - PostgreSQL (5432) from the client namespaces' pods (optionally only those a label selector
 *   picks) and from the database's own members (streaming replication, pg_basebackup, the
 *   standbys' checks of pod 0);
 * - the sidecar's metrics port from the monitoring namespace, when monitoring is on.
 * Egress:
 * - DNS (53, UDP and TCP) to the cluster DNS (kube-system, `k8s-app: kube-dns`);
 * - PostgreSQL (5432) to the database's own members;
 * - the archive's storage: the given CIDRs and/or namespaces, on 443 and the S3 endpoint's port.
 *
 * What Kubernetes NetworkPolicy cannot express, and what that means here:
 * - no host names: a bucket is reached by name (s3.amazonaws.com, storage.googleapis.com), whose
 *   addresses change; the policy can only say "any address" (the default, 0.0.0.0/0 and ::/0 on
 *   the storage ports) or the CIDRs given (a MinIO's, a provider's published ranges). FQDN rules
 *   need a CNI's own resource (Cilium's toFQDNs, Calico's domains).
 * - no containers: a policy selects pods, so the `postgres` container may reach the storage ports
 *   just as the `archiver` sidecar does (it holds no credentials while PostgreSQL runs: README,
 *   Who holds the storage credentials);
 * - ipBlock matches addresses outside the cluster reliably, pod addresses not at all on some CNIs:
 *   storage that runs in the cluster (MinIO) is allowed by its namespace (`archiveEgress.namespaces`);
 * - no ordering, logging or "deny" rules: anything not allowed is dropped, silently.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { METRICS_PORT } from '../contract';
import { POSTGRES_PORT } from './pod-layout';
import { checkNamespace, show } from './validation';

/** Which pods may connect to the database, and where its archiver may connect to. */
export interface NetworkPolicyProps {
  /**
   * Namespaces whose pods may connect to PostgreSQL (5432).
   * @default - the database's own namespace
   */
  readonly clientNamespaces?: string[];
  /**
   * Of the pods in `clientNamespaces`, only those with these labels may connect.
   * @default - every pod of those namespaces
   */
  readonly clientPodSelector?: Record<string, string>;
  /**
   * The namespace of the Prometheus that scrapes the sidecars' metrics port; allowed only when
   * `monitoring` is on.
   * @default 'monitoring'
   */
  readonly monitoringNamespace?: string;
  /** Where the `archiver` sidecar reaches the archive's storage. @default - any address, on 443 and the S3 endpoint's port */
  readonly archiveEgress?: ArchiveEgressProps;
}

/** The storage the archive is kept in, as NetworkPolicy can name it: addresses or namespaces, and ports. */
export interface ArchiveEgressProps {
  /**
   * Address ranges of the storage, e.g. `['10.20.0.0/16']` for a MinIO outside the cluster.
   * @default - any address ('0.0.0.0/0', '::/0') unless `namespaces` is given
   */
  readonly cidrs?: string[];
  /**
   * Namespaces of storage that runs in the cluster (a MinIO), reached at its pods' addresses.
   * @default - none
   */
  readonly namespaces?: string[];
  /**
   * TCP ports of the storage.
   * @default - 443, and the port of the S3 endpoint when it names one
   */
  readonly ports?: number[];
}

/** What the database passes on. */
export interface DatabaseNetworkPolicyProps {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly selectorLabels: Readonly<Record<string, string>>;
  /** Whether the sidecars' metrics are scraped (monitoring on). */
  readonly monitoring: boolean;
  /** The S3 endpoint, when the archive has one: its port is allowed. */
  readonly storageEndpoint?: string;
  readonly networkPolicy: NetworkPolicyProps;
}

/** The namespace label every namespace carries (Kubernetes 1.21 and later). */
const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** The port of an http(s) URL: explicit, else the scheme's. */
function endpointPort(endpoint: string | undefined): number | undefined {
  if (endpoint === undefined) return undefined;
  try {
    const url = new URL(endpoint);
    return url.port ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
  } catch {
    return undefined; // reported by the storage's own validation
  }
}

const inNamespace = (namespace: string) => ({ matchLabels: { [NAMESPACE_NAME_LABEL]: namespace } });
const tcp = (port: number): k8s.NetworkPolicyPort => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) });

/** The NetworkPolicy `{name}` of one database, selecting its pods. */
export class DatabaseNetworkPolicy extends Construct {
  public readonly apiObject: k8s.KubeNetworkPolicy;

  constructor(scope: Construct, id: string, props: DatabaseNetworkPolicyProps) {
    super(scope, id);
    const policy = props.networkPolicy;
    this.node.addValidation({ validate: () => checkNetworkPolicy('networkPolicy', policy) });
    const members: k8s.NetworkPolicyPeer = { podSelector: { matchLabels: { ...props.selectorLabels } } };
    const clientPods = policy.clientPodSelector ? { matchLabels: { ...policy.clientPodSelector } } : {};
    const clients: k8s.NetworkPolicyPeer[] = (policy.clientNamespaces ?? [props.namespace]).map((namespace) => ({ namespaceSelector: inNamespace(namespace), podSelector: clientPods }));

    const ingress: k8s.NetworkPolicyIngressRule[] = [{ from: [...clients, members], ports: [tcp(POSTGRES_PORT)] }];
    if (props.monitoring) ingress.push({ from: [{ namespaceSelector: inNamespace(policy.monitoringNamespace ?? 'monitoring') }], ports: [tcp(METRICS_PORT)] });

    const egress = policy.archiveEgress ?? {};
    const storagePorts = egress.ports ?? [...new Set([443, endpointPort(props.storageEndpoint) ?? 443])];
    const storagePeers: k8s.NetworkPolicyPeer[] = [
      ...(egress.cidrs ?? (egress.namespaces ? [] : ['0.0.0.0/0', '::/0'])).map((cidr) => ({ ipBlock: { cidr } })),
      ...(egress.namespaces ?? []).map((namespace) => ({ namespaceSelector: inNamespace(namespace) })),
    ];

    this.apiObject = new k8s.KubeNetworkPolicy(this, 'Resource', {
      metadata: { name: props.name, namespace: props.namespace, labels: { ...props.labels } },
      spec: {
        podSelector: { matchLabels: { ...props.selectorLabels } },
        policyTypes: ['Ingress', 'Egress'],
        ingress,
        egress: [
          {
            to: [{ namespaceSelector: inNamespace('kube-system'), podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
            ports: [{ protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) }, tcp(53)],
          },
          { to: [members], ports: [tcp(POSTGRES_PORT)] },
          { to: storagePeers, ports: storagePorts.map(tcp) },
        ],
      },
    });
  }
}

/** A list as written in the props (show() writes an empty array as nothing), shortened. */
function showList(value: unknown): string {
  if (!Array.isArray(value)) return show(value);
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Every problem of the `networkPolicy` prop, as `field.x: message`. */
export function checkNetworkPolicy(field: string, policy: NetworkPolicyProps): string[] {
  const errors: string[] = [];
  const namespaces = (name: string, value: unknown) => {
    if (value === undefined) return;
    if (!Array.isArray(value) || value.length === 0) return void errors.push(`${field}.${name}: ${showList(value)} is not a non-empty list of namespaces: leave it out for the default, or list them, e.g. ["team-a"]`);
    value.forEach((namespace, i) => {
      const problem = typeof namespace === 'string' ? checkNamespace(namespace) : `${show(namespace)} is not a namespace name`;
      if (problem) errors.push(`${field}.${name}[${i}]: ${problem}`);
    });
  };
  namespaces('clientNamespaces', policy.clientNamespaces);
  for (const [key, value] of Object.entries(policy.clientPodSelector ?? {})) {
    if (!LABEL_KEY.test(key) || typeof value !== 'string' || !LABEL_VALUE.test(value)) {
      errors.push(`${field}.clientPodSelector: ${show(key)}: ${show(value)} is not a Kubernetes label: keys and values of letters, digits, '-', '_' and '.' (values at most 63), e.g. { app: "orders-api" }`);
    }
  }
  if (policy.monitoringNamespace !== undefined) {
    const problem = checkNamespace(policy.monitoringNamespace);
    if (problem) errors.push(`${field}.monitoringNamespace: ${problem}`);
  }
  const egress = policy.archiveEgress;
  if (egress !== undefined) {
    namespaces('archiveEgress.namespaces', egress.namespaces);
    if (egress.cidrs !== undefined) {
      if (!Array.isArray(egress.cidrs) || egress.cidrs.length === 0) errors.push(`${field}.archiveEgress.cidrs: ${showList(egress.cidrs)} is not a non-empty list of CIDRs: leave it out for any address, or list them, e.g. ["10.20.0.0/16"]`);
      else egress.cidrs.forEach((cidr, i) => {
        if (!isCidr(cidr)) errors.push(`${field}.archiveEgress.cidrs[${i}]: ${show(cidr)} is not a CIDR: an address and a prefix length, e.g. "10.20.0.0/16" or "2001:db8::/32" (NetworkPolicy takes no host names)`);
      });
    }
    if (egress.ports !== undefined) {
      if (!Array.isArray(egress.ports) || egress.ports.length === 0) errors.push(`${field}.archiveEgress.ports: ${showList(egress.ports)} is not a non-empty list of TCP ports: leave it out for 443 and the endpoint's port, or list them, e.g. [443, 9000]`);
      else egress.ports.forEach((port, i) => {
        if (!Number.isInteger(port) || port < 1 || port > 65535) errors.push(`${field}.archiveEgress.ports[${i}]: ${show(port)} is not a TCP port from 1 to 65535, e.g. 443`);
      });
    }
  }
  return errors;
}

/** An IPv4 or IPv6 CIDR as NetworkPolicy's ipBlock takes it. */
function isCidr(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length > 0 || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const length = Number(prefix);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return address.split('.').every((octet) => Number(octet) <= 255) && length <= 32;
  return /^[0-9a-fA-F:]+$/.test(address) && address.includes(':') && (address.match(/::/g)?.length ?? 0) <= 1 && length <= 128;
}
