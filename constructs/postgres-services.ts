/**
 * The Services of one database: the headless Service that governs the StatefulSet (a stable DNS
 * name per pod), the read-write Service (pod 0) and the read-only Service (the ready members
 * whose sidecar labelled them `archived-postgres/role: standby`, pod-role.ts).
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ROLE_LABEL } from '../contract';
import { POSTGRES_PORT } from './pod-layout';

export interface PostgresServicesProps {
  /** The StatefulSet's name: pod 0, the primary, is `{statefulSetName}-0`. */
  readonly statefulSetName: string;
  /** The headless Service's name. */
  readonly governingServiceName: string;
  /** The read-write Service's name. */
  readonly primaryServiceName: string;
  /** The read-only Service's name. */
  readonly standbyServiceName: string;
  readonly namespace: string;
  /** The labels of every object of the database. */
  readonly labels: Record<string, string>;
  /** The labels that select the database's pods. */
  readonly selectorLabels: Record<string, string>;
}

/**
 * Renders the three Services into `scope` (the database) with construct ids `GoverningService`,
 * `PrimaryService` and `StandbyService`.
 */
export class PostgresServices {
  /** Headless: gives each pod a stable DNS name, `{statefulSetName}-0.{governingServiceName}` for the primary. */
  public readonly governing: k8s.KubeService;
  /** Read-write: pod 0 only. */
  public readonly primary: k8s.KubeService;
  /** Read-only: the ready members labelled `standby` (in recovery); none when replicas is 1. */
  public readonly standby: k8s.KubeService;

  constructor(scope: Construct, props: PostgresServicesProps) {
    const metadata = (name: string) => ({ name, namespace: props.namespace, labels: props.labels });
    const port = { name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres'), protocol: 'TCP' };
    this.governing = new k8s.KubeService(scope, 'GoverningService', {
      metadata: metadata(props.governingServiceName),
      spec: {
        clusterIp: 'None',
        // Standbys resolve the primary by its pod name while it is still starting.
        publishNotReadyAddresses: true,
        selector: props.selectorLabels,
        ports: [port],
      },
    });
    this.primary = new k8s.KubeService(scope, 'PrimaryService', {
      metadata: metadata(props.primaryServiceName),
      spec: {
        type: 'ClusterIP',
        // Pod 0 is always the primary; its name label is set by the StatefulSet controller. Not the
        // role label: writes must never wait for a sidecar, a token or the API server, and a
        // standby that a bug labelled `primary` must never receive them.
        selector: { ...props.selectorLabels, 'statefulset.kubernetes.io/pod-name': `${props.statefulSetName}-0` },
        ports: [port],
      },
    });
    this.standby = new k8s.KubeService(scope, 'StandbyService', {
      metadata: metadata(props.standbyServiceName),
      spec: {
        type: 'ClusterIP',
        // Only the members whose sidecar found their server in recovery: a client of the
        // read-only Service can never write. A pod not yet labelled (starting, or its sidecar
        // cannot reach the API) is left out rather than guessed. With one member there is no
        // standby, and the Service has no endpoints.
        selector: { ...props.selectorLabels, [ROLE_LABEL]: 'standby' },
        ports: [port],
      },
    });
  }
}
