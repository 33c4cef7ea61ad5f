/**
 * The machine the rehearsal plays a cluster on: podman 4.3 in a storage root of the rehearsal's
 * own (testkit/containers.ts), a bridge network with a static IP per pod (podman's network has no
 * DNS for pods: names come from hostAliases), and a directory for the pods' volumes. Everything
 * it makes is removed by `remove()`: containers, images, the network, the directories.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { ROOT } from '../testkit/archiver';
import { CONTAINERS_ENV, ContainerStorage } from '../testkit/containers';
import { processAlive } from '../testkit/processes';
import type { RenderedPod, VolumeDirectory } from './pod-rendering';

export interface CommandResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A pod the cluster runs. */
export interface PlayedPod {
  readonly name: string;
  readonly ip: string;
  readonly rendered: RenderedPod;
}

export class PodmanCluster {
  public static create(directory: string): PodmanCluster {
    PodmanCluster.removeRehearsalsOfDeadProcesses();
    const storage = ContainerStorage.own();
    const network = `rehearse-${process.pid}`;
    // `kube play` writes podman's default kube network machine-wide (CNI) the first time: gone again at removal.
    const defaultKubeNetwork = '/etc/cni/net.d/podman-default-kube-network.conflist';
    const madeDefaultKubeNetwork = fs.existsSync(defaultKubeNetwork) ? undefined : defaultKubeNetwork;
    fs.mkdirSync(RUNS, { recursive: true });
    // A /24 of its own, so that two rehearsals on one machine do not meet: podman refuses a subnet
    // another network has ("already used"), which makes it the arbiter between rehearsals that
    // start at once; the first octet tried comes from the pid, the next ones follow it.
    for (let attempt = 0; attempt < SUBNET_OCTETS; attempt++) {
      const record: RunRecord = { storage: storage.dir!, network, subnet: `10.89.${100 + ((process.pid + attempt) % SUBNET_OCTETS)}`, directory, defaultKubeNetwork: madeDefaultKubeNetwork };
      // Recorded first: a rehearsal killed with SIGKILL (no handler runs) leaves running pods, a
      // machine-wide network and a storage root; the next rehearsal removes them by this record.
      fs.writeFileSync(path.join(RUNS, `${process.pid}.json.tmp`), JSON.stringify(record));
      fs.renameSync(path.join(RUNS, `${process.pid}.json.tmp`), path.join(RUNS, `${process.pid}.json`));
      const cluster = PodmanCluster.of(record);
      const created = storage.podman(['network', 'create', '--subnet', `${record.subnet}.0/24`, network]);
      if (created.status !== 0 && /already used/.test(created.stderr ?? '')) continue;
      cluster.check(created, `podman network create ${network}`);
      return cluster;
    }
    PodmanCluster.of({ storage: storage.dir!, network, subnet: '', directory, defaultKubeNetwork: madeDefaultKubeNetwork }).remove();
    throw new Error(`podman network create ${network}: every subnet 10.89.100.0/24 to 10.89.${99 + SUBNET_OCTETS}.0/24 is used by another network (podman network ls): remove those of rehearsals that are gone`);
  }

  /**
   * What rehearsals killed with SIGKILL left (their pods still run, their network is machine-wide
   * under CNI and its subnet would refuse a later one's): removed by their records, whose pid is gone.
   */
  private static removeRehearsalsOfDeadProcesses(): void {
    for (const file of fs.existsSync(RUNS) ? fs.readdirSync(RUNS) : []) {
      const pid = Number(file.replace(/\.json(\.tmp)?$/, ''));
      if (!(pid > 0) || processAlive(pid)) continue;
      let record: RunRecord;
      try {
        record = JSON.parse(fs.readFileSync(path.join(RUNS, file), 'utf8')) as RunRecord;
        if (typeof record.storage !== 'string' || typeof record.network !== 'string') throw new Error('a field is missing');
      } catch (error) {
        // Killed before its record was whole (only a .tmp is ever partial): nothing was made yet.
        console.log(`rehearse: an earlier rehearsal's record ${path.join(RUNS, file)} is unreadable (${(error as Error).message}): removed`);
        fs.rmSync(path.join(RUNS, file), { force: true });
        continue;
      }
      console.log(`rehearse: removing what an earlier rehearsal (pid ${pid}, killed) left: its pods, network ${record.network}, ${record.storage}, ${record.directory}`);
      PodmanCluster.of(record).remove();
    }
  }

  private static of(record: RunRecord): PodmanCluster {
    return new PodmanCluster(ContainerStorage.reopen(record.storage), record.network, record.subnet, record.directory, record.defaultKubeNetwork);
  }

  private nextHost = 10;
  private readonly pods = new Map<string, PlayedPod>();

  private constructor(
    public readonly storage: ContainerStorage,
    public readonly network: string,
    private readonly subnet: string,
    public readonly directory: string,
    private readonly madeDefaultKubeNetwork: string | undefined,
  ) {}

  /** The next free IP of the network: each pod keeps its IP for the whole rehearsal (a Service's stable name). */
  public allocateIp(): string {
    return `${this.subnet}.${this.nextHost++}`;
  }

  /** The network's gateway: the host, as the pods see it. */
  public get gateway(): string {
    return `${this.subnet}.1`;
  }

  /** Writes the pod's volume directories and plays it (`podman kube play`), at `ip` or on the host network. */
  public play(rendered: RenderedPod, ip: string | undefined): PlayedPod {
    const name = rendered.pod.metadata.name;
    for (const dir of rendered.directories) writeVolumeDirectory(dir);
    const file = path.join(this.directory, 'pods', `${name}.yaml`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, stringify(rendered.pod), { mode: 0o600 });
    // A fixed MAC per IP: with podman's random one, a pod played again on its IP stays unreachable
    // for tens of seconds from peers that cached the old address.
    const args = ['kube', 'play', '--quiet', ...(ip ? ['--network', this.network, '--ip', ip, '--mac-address', macFor(ip)] : []), file];
    this.check(this.storage.podman(args, 180_000), `podman kube play ${name}`);
    const played: PlayedPod = { name, ip: ip ?? '127.0.0.1', rendered };
    this.pods.set(name, played);
    return played;
  }

  /** `podman exec` in a container of a pod (as the container's user unless `user`). */
  public exec(pod: string, container: string, command: readonly string[], options: { readonly user?: string; readonly timeoutMs?: number; readonly input?: string } = {}): CommandResult {
    const result = spawnSync('podman', [...this.podmanFlags(), 'exec', '-i', ...(options.user ? ['--user', options.user] : []), containerName(pod, container), ...command], {
      env: CONTAINERS_ENV,
      encoding: 'utf8',
      timeout: options.timeoutMs ?? 60_000,
      input: options.input ?? '',
      maxBuffer: 64 << 20,
    });
    return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error ?? '') };
  }

  /** The same, asynchronously (probes played while the steps go on). */
  public execAsync(pod: string, container: string, command: readonly string[]): Promise<CommandResult> {
    return runCommand('podman', [...this.podmanFlags(), 'exec', containerName(pod, container), ...command], CONTAINERS_ENV);
  }

  public podman(args: readonly string[], timeoutMs = 120_000): CommandResult {
    const result = this.storage.podman(args, timeoutMs);
    return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  }

  /** A container's state: running, exited, ... and its restart count. */
  public containerState(pod: string, container: string): { status: string; restarts: number; exitCode: number } {
    const result = this.podman(['inspect', '--format', '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}', containerName(pod, container)]);
    const [status, restarts, exitCode] = result.stdout.trim().split(' ');
    return { status: status ?? 'missing', restarts: Number(restarts ?? 0), exitCode: Number(exitCode ?? -1) };
  }

  public logs(pod: string, container: string, tail = 40): string {
    const result = this.podman(['logs', '--tail', String(tail), containerName(pod, container)]);
    return `${result.stdout}${result.stderr}`;
  }

  /**
   * SIGKILL to a container's main process from the host, as the OOM killer or a crash would.
   * Not `podman kill`: podman counts that as stopped by the user and never restarts it.
   */
  public kill(pod: string, container: string): void {
    const pid = Number(this.podman(['inspect', '--format', '{{.State.Pid}}', containerName(pod, container)]).stdout.trim());
    if (!(pid > 0)) throw new Error(`${containerName(pod, container)} is not running: no process to kill`);
    process.kill(pid, 'SIGKILL');
  }

  /** Stops a pod's containers (SIGTERM, SIGKILL after `graceSeconds`), keeping them and their volumes. */
  public stopPod(pod: string, graceSeconds: number): void {
    this.check(this.podman(['pod', 'stop', '--time', String(graceSeconds), pod], (graceSeconds + 60) * 1000), `podman pod stop ${pod}`);
  }

  public startPod(pod: string): void {
    this.check(this.podman(['pod', 'start', pod]), `podman pod start ${pod}`);
  }

  /** Deletes a pod, as `kubectl delete pod` does, and with `withClaims` its volumes too (a lost disk). */
  public deletePod(pod: string, options: { readonly withClaims?: boolean } = {}): void {
    const played = this.pods.get(pod);
    const grace = played?.rendered.terminationGracePeriodSeconds ?? 30;
    this.check(this.podman(['pod', 'rm', '--force', '--time', String(grace), pod], (grace + 60) * 1000), `podman pod rm ${pod}`);
    for (const dir of played?.rendered.directories ?? []) if (dir.kind !== 'existing') fs.rmSync(dir.path, { recursive: true, force: true });
    if (options.withClaims) {
      for (const claim of played?.rendered.claims ?? []) this.check(this.podman(['volume', 'rm', '--force', claim]), `podman volume rm ${claim}`);
    }
    this.pods.delete(pod);
  }

  /** Everything: pods, volumes, the network, images, the storage root, the directory. */
  public remove(): void {
    // Killed, not stopped: nothing of theirs is kept.
    this.podman(['pod', 'rm', '--all', '--force', '--time', '0'], 300_000);
    this.podman(['volume', 'prune', '--force']);
    this.podman(['network', 'rm', '--force', this.network]);
    // CNI keeps a network's IP reservations machine-wide, whatever the storage root, after rm.
    fs.rmSync(path.join('/var/lib/cni/networks', this.network), { recursive: true, force: true });
    if (this.madeDefaultKubeNetwork) fs.rmSync(this.madeDefaultKubeNetwork, { force: true });
    fs.rmSync(path.join(RUNS, `${this.network.slice('rehearse-'.length)}.json`), { force: true });
    this.storage.remove();
    fs.rmSync(this.directory, { recursive: true, force: true });
  }

  public check(result: { status: number | null; stdout?: string | null; stderr?: string | null; error?: Error }, what: string): void {
    if (result.status !== 0) throw new Error(`${what} failed (exit ${result.status}): ${(result.stderr || result.stdout || String(result.error ?? '')).trim().slice(-2000)}`);
  }

  private podmanFlags(): readonly string[] {
    return this.storage.podmanFlags;
  }
}

/** Where each running rehearsal records what it made (by pid), for removal if it dies unhandled. */
const RUNS = '/run/pg-wal-rehearse';

/** The third octets a rehearsal's subnet may take: 10.89.100.0/24 to 10.89.249.0/24. */
const SUBNET_OCTETS = 150;

interface RunRecord {
  readonly storage: string;
  readonly network: string;
  readonly subnet: string;
  readonly directory: string;
  readonly defaultKubeNetwork: string | undefined;
}

/** Runs a command to its end, asynchronously (two image builds at once, probes), collecting its output. */
export function runCommand(command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', (error) => resolve({ status: null, stdout, stderr: `${stderr}${error.message}` }));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A locally administered MAC address made of the IP: stable for a pod played again on its IP. */
function macFor(ip: string): string {
  return ['02', '42', ...ip.split('.').map((octet) => Number(octet).toString(16).padStart(2, '0'))].join(':');
}

/** The name podman gives a kube-played pod's container. */
export function containerName(pod: string, container: string): string {
  return `${pod}-${container}`;
}

/** A volume's directory, as the kubelet would make it (fsGroup ownership, the `..data` layout). */
function writeVolumeDirectory(dir: VolumeDirectory): void {
  if (dir.kind === 'existing') return;
  const group = dir.group ?? 0;
  fs.rmSync(dir.path, { recursive: true, force: true });
  fs.mkdirSync(dir.path, { recursive: true });
  if (dir.kind === 'empty') {
    fs.chownSync(dir.path, 0, group);
    fs.chmodSync(dir.path, 0o2777);
    return;
  }
  // The kubelet's atomic writer: files in a timestamped directory, `..data` pointing at it, and a
  // symlink per file through `..data`.
  const version = '..2026_01_01_00_00_00.000000001';
  const versionDir = path.join(dir.path, version);
  fs.mkdirSync(versionDir);
  for (const [name, file] of Object.entries(dir.files ?? {})) {
    const target = path.join(versionDir, name);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, file.content);
    fs.chownSync(target, 0, group);
    fs.chmodSync(target, file.mode);
  }
  fs.symlinkSync(version, path.join(dir.path, '..data'));
  for (const name of Object.keys(dir.files ?? {})) {
    const top = name.split('/')[0];
    if (!fs.existsSync(path.join(dir.path, top))) fs.symlinkSync(path.join('..data', top), path.join(dir.path, top));
  }
  for (const d of [dir.path, versionDir]) {
    fs.chownSync(d, 0, group);
    fs.chmodSync(d, 0o755);
  }
}
