/**
 * Where the members of a database may run: spread over nodes and zones, so that one node drain or
 * one zone outage never takes pod 0 and its standbys together. A PodDisruptionBudget of one member
 * at a time protects nothing when both members sit on the drained node.
 */
import { k8s } from 'cdk8s-plus-27';
import { show } from './validation';

/** How strictly the members of one database are kept on different nodes. */
export enum MemberSpread {
  /**
   * The scheduler puts each member on a node without another member of the database when one has
   * room, and on a shared node otherwise (CloudNativePG's default): a database of three members
   * still starts on a cluster of two nodes, or of one (a laptop), where a required rule would leave
   * a member Pending for ever.
   */
  PREFERRED = 'preferred',
  /**
   * Never two members on one node: a member that finds no free node stays Pending (and a rolling
   * update waits for it). For production clusters with at least `replicas` schedulable nodes.
   */
  REQUIRED = 'required',
  /** No rule: the scheduler's defaults alone. */
  NONE = 'none',
}

export const MEMBER_SPREADS: readonly string[] = Object.values(MemberSpread);

/** The node label of the zone, set by cloud providers (and absent on most single-zone clusters). */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** The node label of the host, set on every node by the kubelet. */
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';

/** Where the members run (`placement`). */
export interface PlacementProps {
  /**
   * Members on different nodes; with PREFERRED or REQUIRED the members are also spread evenly over
   * the zones of nodes labelled `topology.kubernetes.io/zone` (a preference: a cluster without
   * zone labels, or with one zone, schedules as before).
   * @default MemberSpread.PREFERRED
   */
  readonly spread?: MemberSpread;
  /**
   * Nodes the members may run on only, e.g. `{ "node-role.example.com/database": "true" }`.
   * @default - any node
   */
  readonly nodeSelector?: Record<string, string>;
  /**
   * Taints the members tolerate, e.g. nodes tainted for databases only.
   * @default - none
   */
  readonly tolerations?: k8s.Toleration[];
}

/** The pod spec fields of the placement: affinity, topology spread, node selector and tolerations. */
export function renderPlacement(placement: PlacementProps | undefined, selectorLabels: Record<string, string>): Partial<k8s.PodSpec> {
  const spread = placement?.spread ?? MemberSpread.PREFERRED;
  const members: k8s.LabelSelector = { matchLabels: selectorLabels };
  const onAnotherNode: k8s.PodAffinityTerm = { labelSelector: members, topologyKey: HOSTNAME_LABEL };
  const antiAffinity: k8s.PodAntiAffinity | undefined = spread === MemberSpread.REQUIRED
    ? { requiredDuringSchedulingIgnoredDuringExecution: [onAnotherNode] }
    : spread === MemberSpread.PREFERRED
      ? { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: onAnotherNode }] }
      : undefined;
  return {
    affinity: antiAffinity ? { podAntiAffinity: antiAffinity } : undefined,
    // Zones as a preference only: a zone outage must not leave a member unschedulable in the others.
    topologySpreadConstraints: spread === MemberSpread.NONE ? undefined : [
      { maxSkew: 1, topologyKey: ZONE_LABEL, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: members },
    ],
    nodeSelector: placement?.nodeSelector,
    tolerations: placement?.tolerations,
  };
}

const LABEL_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Every problem of a placement, as `field.spread: message`. */
export function checkPlacement(field: string, placement: PlacementProps | undefined): string[] {
  const errors: string[] = [];
  if (placement?.spread !== undefined && !MEMBER_SPREADS.includes(placement.spread)) {
    errors.push(`${field}.spread: ${show(placement.spread)} is not a spread: use MemberSpread.PREFERRED (the default), MemberSpread.REQUIRED or MemberSpread.NONE`);
  }
  for (const [key, value] of Object.entries(placement?.nodeSelector ?? {})) {
    if (!LABEL_NAME.test(key)) errors.push(`${field}.nodeSelector: ${show(key)} is not a label key: write [prefix/]name, e.g. "node-role.example.com/database"`);
    if (typeof value !== 'string' || !LABEL_VALUE.test(value)) errors.push(`${field}.nodeSelector[${show(key)}]: ${show(value)} is not a label value: at most 63 letters, digits, '-', '_' and '.', e.g. "true"`);
  }
  return errors;
}
