/**
 * The kubelet's probes, which podman 4.3 does not run: readiness waited on (a StatefulSet with
 * OrderedReady creates pod N+1 only once pod N is Ready), and liveness played with the rendered
 * period and threshold: a container that fails it `failureThreshold` times in a row is restarted,
 * as the kubelet restarts it (start.sh then rewinds or clones a standby that cannot follow pod 0).
 */
import { waitUntil } from '../testkit/doubles';
import type { PlayedProbe } from './pod-rendering';
import { containerName, PodmanCluster } from './podman-cluster';

export class Kubelet {
  private readonly watched = new Map<string, { stop: () => void }>();
  /** The containers this kubelet restarted for their liveness, by `pod/container`. */
  private readonly restartCounts = new Map<string, number>();

  constructor(
    private readonly cluster: PodmanCluster,
    private readonly log: (line: string) => void,
  ) {}

  /** Whether the pod's readiness probe passes now. */
  public async ready(pod: string, probes: readonly PlayedProbe[]): Promise<boolean> {
    const probe = probes.find((p) => p.kind === 'readiness');
    if (!probe) return this.cluster.containerState(pod, 'postgres').status === 'running';
    const result = await this.cluster.execAsync(pod, probe.container, ['timeout', String(probe.timeoutSeconds + 5), ...probe.command]);
    return result.status === 0;
  }

  /** Waits until the pod is Ready (its readiness probe, tried every 2 s). */
  public async waitReady(pod: string, probes: readonly PlayedProbe[], timeoutMs: number): Promise<void> {
    await waitUntil(() => this.ready(pod, probes), `${pod} Ready`, timeoutMs, 2000);
  }

  /** Plays the liveness probes of a pod until `forget(pod)`. */
  public watchLiveness(pod: string, probes: readonly PlayedProbe[], graceSeconds: number): void {
    const timers: NodeJS.Timeout[] = [];
    let stopped = false;
    for (const probe of probes.filter((p) => p.kind === 'liveness')) {
      let failures = 0;
      let running = false;
      const tick = async () => {
        if (stopped || running) return;
        running = true;
        try {
          const result = await this.cluster.execAsync(pod, probe.container, ['timeout', String(probe.timeoutSeconds), ...probe.command]);
          if (stopped) return;
          failures = result.status === 0 ? 0 : failures + 1;
          if (failures >= probe.failureThreshold) {
            this.log(`kubelet: ${pod} container ${probe.container} failed its liveness probe ${failures} times (${(result.stdout + result.stderr).trim().split('\n').pop()}): restarting it`);
            failures = 0;
            this.cluster.podman(['restart', '--time', String(graceSeconds), containerName(pod, probe.container)], (graceSeconds + 60) * 1000);
            const key = `${pod}/${probe.container}`;
            this.restartCounts.set(key, (this.restartCounts.get(key) ?? 0) + 1);
          }
        } finally {
          running = false;
        }
      };
      timers.push(setInterval(() => void tick(), probe.periodSeconds * 1000));
    }
    this.watched.set(pod, {
      stop: () => {
        stopped = true;
        timers.forEach(clearInterval);
      },
    });
  }

  /** How often the liveness probe had a container restarted. */
  public restarts(pod: string, container: string): number {
    return this.restartCounts.get(`${pod}/${container}`) ?? 0;
  }

  public forget(pod: string): void {
    this.watched.get(pod)?.stop();
    this.watched.delete(pod);
  }

  public forgetAll(): void {
    for (const pod of [...this.watched.keys()]) this.forget(pod);
  }
}
