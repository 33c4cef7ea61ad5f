/**
 * CPU and memory of a container: the props structs, the defaults merged under what the user gave,
 * the rendering into Kubernetes quantities and the check of every value.
 */
import { k8s } from 'cdk8s-plus-27';
import { checkResourceQuantity } from './validation';

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

/** `given` over `defaults`, quantity by quantity. */
export function resourcesWithDefaults(defaults: ContainerResources, given: ContainerResources | undefined): ContainerResources {
  return {
    requests: { ...defaults.requests, ...given?.requests },
    limits: { ...defaults.limits, ...given?.limits },
  };
}

/** The Kubernetes form; quantities that are not set are left out, and so are empty requests or limits. */
export function renderResources(resources: ContainerResources): k8s.ResourceRequirements {
  const quantities = (values: ResourceQuantities | undefined) => {
    const set = Object.entries(values ?? {}).filter(([, v]) => v !== undefined);
    return set.length === 0 ? undefined : Object.fromEntries(set.map(([k, v]) => [k, k8s.Quantity.fromString(v as string)]));
  };
  return { requests: quantities(resources.requests), limits: quantities(resources.limits) };
}

/** Every invalid quantity, as `field.requests.cpu: message`. */
export function checkContainerResources(field: string, resources: ContainerResources | undefined): string[] {
  const errors: string[] = [];
  for (const kind of ['requests', 'limits'] as const) {
    for (const resource of ['cpu', 'memory'] as const) {
      const value = resources?.[kind]?.[resource];
      const message = value === undefined ? undefined : checkResourceQuantity(value);
      if (message) errors.push(`${field}.${kind}.${resource}: ${message}`);
    }
  }
  return errors;
}
