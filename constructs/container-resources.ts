/**
 * CPU and memory of a container: the props structs, the defaults merged under what the user gave,
 * the rendering into Kubernetes quantities and the check of every value.
 */
import { k8s } from 'cdk8s-plus-27';
import { checkResourceQuantity, parseQuantity, show } from './validation';

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

/** A container's default requests and limits. */
export interface ResourceDefaults extends ContainerResources {
  /**
   * The resources whose limit is, unless given, the request as resolved (the memory of a database,
   * which must never be killed for memory it was promised).
   * @default - none
   */
  readonly limitsEqualRequests?: readonly (keyof ResourceQuantities)[];
}

const RESOURCES = ['cpu', 'memory'] as const;

/**
 * `given` over `defaults`, quantity by quantity, as Kubernetes users expect: a limit given without
 * its request is the request too (what Kubernetes does for a container without a request, so
 * `limits.memory: "512Mi"` alone never leaves a default request of 1Gi above it), and a default
 * limit never falls below the request (it is raised to it). Only a request and a limit both given
 * can then be in the wrong order; `checkContainerResources` reports that.
 */
export function resourcesWithDefaults(defaults: ResourceDefaults, given: ContainerResources | undefined): ContainerResources {
  const requests: Record<string, string | undefined> = {};
  const limits: Record<string, string | undefined> = {};
  for (const resource of RESOURCES) {
    const request = given?.requests?.[resource] ?? given?.limits?.[resource] ?? defaults.requests?.[resource];
    requests[resource] = request;
    let limit = given?.limits?.[resource];
    if (limit === undefined && defaults.limitsEqualRequests?.includes(resource)) limit = request;
    if (limit === undefined) {
      limit = defaults.limits?.[resource];
      const [l, r] = [parseQuantity(limit ?? ''), parseQuantity(request ?? '')];
      if (l !== undefined && r !== undefined && l < r) limit = request;
    }
    limits[resource] = limit;
  }
  const defined = (values: Record<string, string | undefined>): ResourceQuantities =>
    Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
  return { requests: defined(requests), limits: defined(limits) };
}

/** The Kubernetes form; quantities that are not set are left out, and so are empty requests or limits. */
export function renderResources(resources: ContainerResources): k8s.ResourceRequirements {
  const quantities = (values: ResourceQuantities | undefined) => {
    const set = Object.entries(values ?? {}).filter(([, v]) => v !== undefined);
    return set.length === 0 ? undefined : Object.fromEntries(set.map(([k, v]) => [k, k8s.Quantity.fromString(v as string)]));
  };
  return { requests: quantities(resources.requests), limits: quantities(resources.limits) };
}

/**
 * Every invalid quantity, as `field.requests.cpu: message`, and every limit given below the request
 * given beside it (the API server rejects such a container: the whole StatefulSet would not sync).
 */
export function checkContainerResources(field: string, resources: ContainerResources | undefined): string[] {
  const errors: string[] = [];
  for (const kind of ['requests', 'limits'] as const) {
    for (const resource of RESOURCES) {
      const value = resources?.[kind]?.[resource];
      const message = value === undefined ? undefined : checkResourceQuantity(value);
      if (message) errors.push(`${field}.${kind}.${resource}: ${message}`);
    }
  }
  for (const resource of RESOURCES) {
    const [request, limit] = [resources?.requests?.[resource], resources?.limits?.[resource]];
    const [r, l] = [parseQuantity(request ?? ''), parseQuantity(limit ?? '')];
    if (r !== undefined && l !== undefined && r > 0 && l > 0 && l < r) {
      errors.push(`${field}.limits.${resource}: ${show(limit)} is below requests.${resource} ${show(request)}: the API server rejects a container whose limit is below its request (the StatefulSet would not sync); raise the limit to at least ${show(request)}, or lower the request (a limit given alone is the request too)`);
    }
  }
  return errors;
}
