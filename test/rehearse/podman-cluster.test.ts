/**
 * The rehearsal's network (rehearse/podman-cluster.ts): a /24 of its own, whatever else holds the
 * subnet its pid points to. Podman refuses a subnet another network has, machine-wide (CNI), and
 * rehearsals started at once used to meet there when their pids agreed modulo 150.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PodmanCluster } from '../../rehearse/podman-cluster';

const podman = (...args: string[]) => spawnSync('podman', args, { encoding: 'utf8' });
const blocker = `rehearse-test-blocker-${process.pid}`;
afterAll(() => {
  podman('network', 'rm', '--force', blocker);
});

describe('a rehearsal\'s network', () => {
  it('takes the next free subnet when the one its pid points to is another network\'s', () => {
    // GIVEN another network on the subnet this process would try first
    const first = `10.89.${100 + (process.pid % 150)}`;
    const made = podman('network', 'create', '--subnet', `${first}.0/24`, blocker);
    expect(made.stderr).toBe('');
    // WHEN a rehearsal's cluster is made
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'rehearse-network-'));
    const cluster = PodmanCluster.create(directory);
    try {
      // THEN its network has a subnet of its own, the next one
      const subnet = cluster.podman(['network', 'inspect', '--format', '{{range .Subnets}}{{.Subnet}}{{end}}', `rehearse-${process.pid}`]);
      expect(subnet.stderr).toBe('');
      expect(subnet.stdout.trim()).toBe(`10.89.${100 + ((process.pid + 1) % 150)}.0/24`);
      expect(cluster.gateway).toBe(`10.89.${100 + ((process.pid + 1) % 150)}.1`);
    } finally {
      cluster.remove();
    }
    expect(fs.existsSync(directory)).toBe(false);
  }, 120_000);
});
