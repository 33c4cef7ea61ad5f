/**
 * A container of a pod that is rendered later: what the construct sets up front, plus what
 * `add*()` calls bring after construction (environment, ports, volume mounts). The model is
 * cdk8s-plus's `Container`, for a pod rendered with the plain Kubernetes types.
 */
import { k8s } from 'cdk8s-plus-27';

export class PodContainer {
  private readonly base: k8s.Container;
  private readonly env: k8s.EnvVar[] = [];
  private readonly ports: k8s.ContainerPort[] = [];
  private readonly volumeMounts: k8s.VolumeMount[] = [];

  constructor(container: k8s.Container) {
    this.base = container;
  }

  /** The container's name, unique in its pod. */
  public get name(): string {
    return this.base.name;
  }

  /** Adds variables after the container's own. */
  public addEnv(...variables: k8s.EnvVar[]): void {
    this.env.push(...variables);
  }

  /** Adds ports, e.g. `{ name: 'metrics', containerPort: 9187 }`. */
  public addPort(...ports: k8s.ContainerPort[]): void {
    this.ports.push(...ports);
  }

  /** Adds mounts of the pod's volumes after the container's own. */
  public addVolumeMount(...mounts: k8s.VolumeMount[]): void {
    this.volumeMounts.push(...mounts);
  }

  /** The container as rendered: its own settings followed by everything added. */
  public toKube(): k8s.Container {
    const append = <T>(own: T[] | undefined, added: T[]): T[] | undefined => (added.length === 0 ? own : [...(own ?? []), ...added]);
    return {
      ...this.base,
      env: append(this.base.env, this.env),
      ports: append(this.base.ports, this.ports),
      volumeMounts: append(this.base.volumeMounts, this.volumeMounts),
    };
  }
}
