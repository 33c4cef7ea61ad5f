/**
 * The StatefulSet controller's and the kubelet's part, for `podman kube play` (podman 4.3): a Pod
 * per ordinal from a StatefulSet's template, or the Pod of a Job, as podman can run it. Pure: it
 * reads the rendered objects and returns the Pod, the directories its volumes need, the probes the
 * rehearsal plays, and every adaptation it made, each with the field and the reason. A field it
 * does not know fails it (`RenderingError`, naming the field): a new field in the rendering must be
 * looked at here, never silently dropped.
 *
 * What podman does differently from a kubelet is in ../shared/containers/README.md; each difference
 * met here is an adaptation below.
 */

/** A rendered Kubernetes object, as read from dist/. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string>; readonly annotations?: Record<string, string> };
  readonly [field: string]: any;
}

/** One change the rendering made to get past podman (or the absence of a cluster). */
export interface Adaptation {
  /** The field, as a path in the rendered object (`spec.template.spec.containers[postgres].ports`). */
  readonly field: string;
  /** What was done instead, and why. */
  readonly what: string;
}

/** A file in a volume's directory. */
export interface VolumeFile {
  readonly content: string | Buffer;
  /** The file's mode (the volume's defaultMode). */
  readonly mode: number;
}

/** A directory the rehearsal prepares on the host for one of the Pod's volumes (hostPath). */
export interface VolumeDirectory {
  /** The volume's name in the Pod. */
  readonly volume: string;
  /** Absolute path on the host. */
  readonly path: string;
  /** `empty`: an emptyDir (mode 2777, group fsGroup); `files`: files as the kubelet projects them; `existing`: a directory someone else made (the mock API's ServiceAccount directory). */
  readonly kind: 'empty' | 'files' | 'existing';
  /** For `files`: the files, laid out as the kubelet lays them out (`..data` symlink to a timestamped directory). */
  readonly files?: Readonly<Record<string, VolumeFile>>;
  /** Group owner of the directory and its files (the pod's fsGroup). */
  readonly group?: number;
}

/** A probe of a container, for the rehearsal to play (podman runs none of them). */
export interface PlayedProbe {
  readonly container: string;
  readonly kind: 'startup' | 'readiness' | 'liveness';
  readonly command: readonly string[];
  readonly periodSeconds: number;
  readonly failureThreshold: number;
  readonly timeoutSeconds: number;
}

export interface RenderedPod {
  /** The Pod, for `podman kube play`. */
  readonly pod: KubeObject;
  /** Its persistent volume claims' names (podman makes a named volume of each). */
  readonly claims: readonly string[];
  readonly directories: readonly VolumeDirectory[];
  readonly probes: readonly PlayedProbe[];
  /** The template's terminationGracePeriodSeconds (podman ignores it: the rehearsal stops pods with it). */
  readonly terminationGracePeriodSeconds: number;
  readonly adaptations: readonly Adaptation[];
}

/** What the cluster would provide, as the rehearsal provides it. */
export interface PodEnvironment {
  /** The Secrets' data (plain, not base64), by Secret name. */
  readonly secrets: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Host names the pod resolves (pods by `<pod>.<service>`, the S3 server), with their IPs. */
  readonly hosts: Readonly<Record<string, string>>;
  /** Environment values replaced, by variable name (e.g. ARCHIVER_S3_ENDPOINT: the rehearsal's S3 server), each with why. */
  readonly envOverrides: Readonly<Record<string, { readonly value: string; readonly why: string }>>;
  /** Variables added to every container that has ARCHIVER_REPOSITORY (e.g. what s3rver needs), each with why. */
  readonly archiverEnvAdditions?: Readonly<Record<string, { readonly value: string; readonly why: string }>>;
  /** Where this pod's volume directories go on the host. */
  readonly podDirectory: string;
  /** The mock Kubernetes API a Job's token reaches, on the host network. @default - none: the pod has no API */
  readonly api?: { readonly host: string; readonly port: number; readonly serviceAccountDir: string };
  /** The timestamp directory name of the kubelet's `..data` layout. */
  readonly kubeletVersionDir?: string;
}

/** A field the rendering does not know, or a reference it cannot resolve. */
export class RenderingError extends Error {
  constructor(field: string, problem: string) {
    super(`rehearse: ${field}: ${problem}`);
    this.name = 'RenderingError';
  }
}

/** podman 4.3 rejects annotation values longer than this. */
const PODMAN_ANNOTATION_LIMIT = 63;

/** Pod `ordinal` of `statefulSet`, as the StatefulSet controller creates it, for podman. */
export function renderStatefulSetPod(statefulSet: KubeObject, ordinal: number, objects: readonly KubeObject[], env: PodEnvironment): RenderedPod {
  const field = (p: string) => `StatefulSet/${statefulSet.metadata.name} ${p}`;
  const spec = statefulSet.spec ?? {};
  const adaptations = new Adaptations();
  checkKeys(spec, ['persistentVolumeClaimRetentionPolicy', 'podManagementPolicy', 'replicas', 'selector', 'serviceName', 'template', 'updateStrategy', 'volumeClaimTemplates', 'minReadySeconds', 'revisionHistoryLimit'], field('spec'));
  const name = `${statefulSet.metadata.name}-${ordinal}`;
  const claims: string[] = [];
  const claimVolumes = (spec.volumeClaimTemplates ?? []).map((template: KubeObject) => {
    const claim = `${template.metadata.name}-${name}`;
    claims.push(claim);
    return { name: template.metadata.name, persistentVolumeClaim: { claimName: claim } };
  });
  if (claimVolumes.length > 0) adaptations.add(field('spec.volumeClaimTemplates'), 'a podman named volume per claim (data-<pod>), made empty by podman on first use: podman 4.3 does not read volumeClaimTemplates; size and storage class are not enforced');
  const rendered = renderPodTemplate(spec.template, field('spec.template'), objects, env, adaptations, {
    name,
    namespace: statefulSet.metadata.namespace,
    extraLabels: { 'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': String(ordinal) },
    hostname: name,
    subdomain: spec.serviceName,
    claimVolumes,
    defaultRestartPolicy: 'Always',
  });
  return { ...rendered, claims, adaptations: adaptations.list() };
}

/** The Pod of `job` (one attempt), for podman. */
export function renderJobPod(job: KubeObject, objects: readonly KubeObject[], env: PodEnvironment): RenderedPod {
  const field = (p: string) => `Job/${job.metadata.name} ${p}`;
  const spec = job.spec ?? {};
  const adaptations = new Adaptations();
  checkKeys(spec, ['backoffLimit', 'template', 'ttlSecondsAfterFinished', 'activeDeadlineSeconds'], field('spec'));
  adaptations.add(field('spec.backoffLimit'), 'one attempt, played once by the rehearsal (podman has no Job controller)');
  const rendered = renderPodTemplate(spec.template, field('spec.template'), objects, env, adaptations, {
    name: `${job.metadata.name}-run`,
    namespace: job.metadata.namespace,
    extraLabels: { 'job-name': job.metadata.name },
    claimVolumes: [],
    defaultRestartPolicy: 'Never',
  });
  return { ...rendered, claims: [], adaptations: adaptations.list() };
}

interface PodIdentity {
  readonly name: string;
  readonly namespace: string | undefined;
  readonly extraLabels: Record<string, string>;
  readonly hostname?: string;
  readonly subdomain?: string;
  readonly claimVolumes: readonly object[];
  readonly defaultRestartPolicy: 'Always' | 'Never';
}

function renderPodTemplate(
  template: any,
  field: string,
  objects: readonly KubeObject[],
  env: PodEnvironment,
  adaptations: Adaptations,
  identity: PodIdentity,
): Omit<RenderedPod, 'claims' | 'adaptations'> {
  if (!template) throw new RenderingError(field, 'missing');
  checkKeys(template, ['metadata', 'spec'], field);
  checkKeys(template.metadata ?? {}, ['labels', 'annotations'], `${field}.metadata`);
  const spec = template.spec ?? {};
  const specField = `${field}.spec`;
  checkKeys(spec, [
    'affinity', 'automountServiceAccountToken', 'containers', 'initContainers', 'nodeSelector', 'restartPolicy', 'securityContext',
    'serviceAccountName', 'terminationGracePeriodSeconds', 'tolerations', 'topologySpreadConstraints', 'volumes',
  ], specField);

  for (const scheduling of ['affinity', 'topologySpreadConstraints', 'nodeSelector', 'tolerations'] as const) {
    if (spec[scheduling] !== undefined) adaptations.add(`${specField}.${scheduling}`, 'not applied: one machine, no scheduler (only a real cluster shows where the pods land)');
  }
  if (spec.serviceAccountName !== undefined) adaptations.add(`${specField}.serviceAccountName`, env.api ? "its token is the mock Kubernetes API's (RBAC checked by the mock against the rendered Role)" : 'not applied: no Kubernetes API in the rehearsal');

  const annotations: Record<string, string> = {};
  for (const [key, value] of Object.entries<string>(template.metadata?.annotations ?? {})) {
    if (value.length > PODMAN_ANNOTATION_LIMIT) {
      adaptations.add(`${field}.metadata.annotations[${key}]`, `left out: podman 4.3 rejects annotation values over ${PODMAN_ANNOTATION_LIMIT} characters (this one has ${value.length})`);
    } else {
      annotations[key] = value;
    }
  }
  // Keep the init container's logs (podman removes a finished init container by default).
  annotations['io.podman.annotations.init.container.type'] = 'always';

  const securityContext = renderPodSecurityContext(spec.securityContext ?? {}, `${specField}.securityContext`, adaptations);
  const fsGroup: number | undefined = spec.securityContext?.fsGroup;

  const volumes: object[] = [...identity.claimVolumes];
  const directories: VolumeDirectory[] = [];
  for (const volume of spec.volumes ?? []) {
    const rendered = renderVolume(volume, `${specField}.volumes[${volume.name}]`, objects, env, adaptations, fsGroup, identity.namespace);
    volumes.push({ name: volume.name, hostPath: { path: rendered.path, type: 'Directory' } });
    directories.push(rendered);
  }
  // The kubelet mounts the ServiceAccount token into every container when automountServiceAccountToken is true.
  const tokenMounts: object[] = [];
  if (spec.automountServiceAccountToken === true) {
    if (!env.api) throw new RenderingError(`${specField}.automountServiceAccountToken`, 'the pod needs a Kubernetes API: give the rendering the mock API (env.api)');
    volumes.push({ name: 'kube-api-access', hostPath: { path: env.api.serviceAccountDir, type: 'Directory' } });
    directories.push({ volume: 'kube-api-access', path: env.api.serviceAccountDir, kind: 'existing' });
    tokenMounts.push({ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true });
    adaptations.add(`${specField}.automountServiceAccountToken`, "the mock Kubernetes API's ServiceAccount directory (token, ca.crt, namespace), as the kubelet mounts it");
  }

  const probes: PlayedProbe[] = [];
  const containers = (spec.containers ?? []).map((c: any) => renderContainer(c, `${specField}.containers[${c.name}]`, env, adaptations, probes, tokenMounts));
  const initContainers = (spec.initContainers ?? []).map((c: any) => renderContainer(c, `${specField}.initContainers[${c.name}]`, env, adaptations, probes, tokenMounts));

  const restartPolicy: string = spec.restartPolicy ?? identity.defaultRestartPolicy;
  let podmanRestartPolicy = restartPolicy;
  if (restartPolicy === 'Always') {
    podmanRestartPolicy = 'OnFailure';
    adaptations.add(`${specField}.restartPolicy`, 'OnFailure instead of Always: podman 4.3 applies the pod\'s policy to init containers too, restarting a finished one for ever; a killed container (exit 137) is still restarted');
  }

  const podSpec: Record<string, unknown> = {
    ...(identity.hostname ? { hostname: identity.hostname } : {}),
    restartPolicy: podmanRestartPolicy,
    securityContext,
    ...(initContainers.length > 0 ? { initContainers } : {}),
    containers,
    volumes,
  };
  if (env.api) {
    podSpec.hostNetwork = true;
    adaptations.add(`${specField}.hostNetwork`, 'true: the mock Kubernetes API listens on the host\'s 127.0.0.1 (KUBERNETES_SERVICE_HOST/PORT point there, as the kubelet sets them to the API Service)');
  } else {
    const hostAliases = Object.entries(env.hosts).map(([hostname, ip]) => ({ ip, hostnames: [hostname] }));
    if (hostAliases.length > 0) podSpec.hostAliases = hostAliases;
    if (identity.subdomain) adaptations.add(`${specField} (subdomain ${identity.subdomain})`, `hostAliases for ${Object.keys(env.hosts).join(', ')}: podman 4.3 ignores subdomain and its network has no DNS for pods`);
  }

  return {
    pod: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: identity.name,
        ...(identity.namespace ? { namespace: identity.namespace } : {}),
        labels: { ...(template.metadata?.labels ?? {}), ...identity.extraLabels },
        annotations,
      },
      spec: podSpec,
    },
    directories,
    probes,
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
  };
}

function renderPodSecurityContext(context: any, field: string, adaptations: Adaptations): Record<string, unknown> {
  checkKeys(context, ['fsGroup', 'fsGroupChangePolicy', 'runAsGroup', 'runAsNonRoot', 'runAsUser', 'seccompProfile', 'supplementalGroups'], field);
  const { fsGroup, fsGroupChangePolicy, ...kept } = context;
  if (fsGroup !== undefined) adaptations.add(`${field}.fsGroup`, `played by the rehearsal: every volume directory is group ${fsGroup} (emptyDir mode 2777), podman 4.3 ignores fsGroup`);
  if (fsGroupChangePolicy !== undefined) adaptations.add(`${field}.fsGroupChangePolicy`, 'not applied (podman 4.3 ignores it)');
  if (fsGroup !== undefined) kept.supplementalGroups = [...new Set([...(kept.supplementalGroups ?? []), fsGroup])];
  return kept;
}

function renderVolume(volume: any, field: string, objects: readonly KubeObject[], env: PodEnvironment, adaptations: Adaptations, fsGroup: number | undefined, namespace: string | undefined): VolumeDirectory {
  const path = `${env.podDirectory}/volumes/${volume.name}`;
  const sources = Object.keys(volume).filter((k) => k !== 'name');
  if (sources.length !== 1) throw new RenderingError(field, `one volume source expected, found ${sources.join(', ') || 'none'}`);
  const source = sources[0];
  const body = volume[source];
  switch (source) {
    case 'emptyDir': {
      checkKeys(body, ['sizeLimit', 'medium'], `${field}.emptyDir`);
      adaptations.add(`${anyItem(field)}.emptyDir`, 'a directory of the rehearsal (hostPath, mode 2777, group fsGroup): podman 4.3 gives an emptyDir the owner of the image\'s mount point; sizeLimit and medium: Memory are not enforced');
      return { volume: volume.name, path, kind: 'empty', group: fsGroup };
    }
    case 'configMap': {
      checkKeys(body, ['name', 'defaultMode', 'items', 'optional'], `${field}.configMap`);
      const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === body.name);
      if (!configMap) throw new RenderingError(`${field}.configMap.name`, `ConfigMap ${body.name} is not among the rendered objects`);
      const files = projectItems(configMap.data ?? {}, body.items, body.defaultMode ?? 0o644, `${field}.configMap`);
      adaptations.add(`${field}.configMap`, 'the ConfigMap\'s files written as the kubelet projects them (..data symlink, defaultMode), mounted as hostPath: so that the sidecar\'s reload watcher sees the kubelet\'s layout');
      return { volume: volume.name, path, kind: 'files', files, group: fsGroup };
    }
    case 'secret': {
      checkKeys(body, ['secretName', 'defaultMode', 'items', 'optional'], `${field}.secret`);
      const data = env.secrets[body.secretName];
      if (!data) {
        if (body.optional) return { volume: volume.name, path, kind: 'files', files: {}, group: fsGroup };
        throw new RenderingError(`${field}.secret.secretName`, `the rehearsal's fixture has no Secret ${body.secretName}: add it to rehearse/fixture.ts`);
      }
      const files = projectItems(data, body.items, body.defaultMode ?? 0o644, `${field}.secret`);
      adaptations.add(`${anyItem(field)}.secret`, 'the fixture\'s Secret written as the kubelet projects it (..data symlink, defaultMode, group fsGroup), mounted as hostPath: a Secret volume panics podman 4.3');
      return { volume: volume.name, path, kind: 'files', files, group: fsGroup };
    }
    case 'projected': {
      checkKeys(body, ['defaultMode', 'sources'], `${field}.projected`);
      const files: Record<string, VolumeFile> = {};
      const mode = body.defaultMode ?? 0o644;
      for (const [i, s] of (body.sources ?? []).entries()) {
        const sourceField = `${field}.projected.sources[${i}]`;
        checkKeys(s, ['serviceAccountToken', 'configMap', 'downwardAPI'], sourceField);
        if (s.downwardAPI) {
          for (const item of s.downwardAPI.items ?? []) {
            if (item.fieldRef?.fieldPath !== 'metadata.namespace') throw new RenderingError(`${sourceField}.downwardAPI`, `fieldPath ${item.fieldRef?.fieldPath} is not understood`);
            files[item.path] = { content: namespace ?? 'default', mode };
          }
        }
        // The token and the API's CA: there is no API for the database pods in the rehearsal.
      }
      adaptations.add(`${field}.projected`, 'the namespace only, no token nor ca.crt: no Kubernetes API for the database pods here, so the sidecar cannot label its pod with its role (it logs that and keeps working; only a real cluster shows the label)');
      return { volume: volume.name, path, kind: 'files', files, group: fsGroup };
    }
    default:
      throw new RenderingError(`${field}.${source}`, 'a volume source the rehearsal does not understand');
  }
}

function projectItems(data: Record<string, string>, items: { key: string; path: string; mode?: number }[] | undefined, mode: number, field: string): Record<string, VolumeFile> {
  const files: Record<string, VolumeFile> = {};
  if (!items) {
    for (const [key, content] of Object.entries(data)) files[key] = { content, mode };
    return files;
  }
  for (const item of items) {
    if (!(item.key in data)) throw new RenderingError(`${field}.items[${item.key}]`, 'no such key in the data');
    files[item.path] = { content: data[item.key], mode: item.mode ?? mode };
  }
  return files;
}

function renderContainer(c: any, field: string, env: PodEnvironment, adaptations: Adaptations, probes: PlayedProbe[], extraMounts: readonly object[]): Record<string, unknown> {
  checkKeys(c, [
    'name', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'ports', 'resources', 'securityContext', 'livenessProbe',
    'readinessProbe', 'startupProbe', 'terminationMessagePolicy', 'volumeMounts', 'workingDir',
  ], field);
  const generic = anyItem(field);
  const out: Record<string, unknown> = { name: c.name, image: c.image };
  if (c.imagePullPolicy !== undefined) out.imagePullPolicy = c.imagePullPolicy;
  if (c.command !== undefined) out.command = c.command;
  if (c.args !== undefined) out.args = c.args;
  if (c.workingDir !== undefined) out.workingDir = c.workingDir;
  if (c.ports !== undefined) adaptations.add(`${generic}.ports`, 'left out: podman 4.3 publishes a containerPort on the host\'s 0.0.0.0, and the second pod fails "address already in use"');
  if (c.terminationMessagePolicy !== undefined) adaptations.add(`${generic}.terminationMessagePolicy`, 'left out (podman has no termination message): the rehearsal prints the container\'s log on failure');
  if (c.resources !== undefined) {
    checkKeys(c.resources, ['limits', 'requests'], `${field}.resources`);
    const memory = c.resources.limits?.memory;
    if (memory !== undefined) out.resources = { limits: { memory } };
    adaptations.add(`${generic}.resources`, 'only limits.memory applied: podman 4.3 ignores requests, and ephemeral-storage is not enforced');
  }
  if (c.securityContext !== undefined) {
    checkKeys(c.securityContext, ['allowPrivilegeEscalation', 'capabilities', 'privileged', 'readOnlyRootFilesystem', 'runAsUser', 'runAsGroup', 'runAsNonRoot'], `${field}.securityContext`);
    out.securityContext = c.securityContext;
  }
  out.env = renderEnv(c.env ?? [], `${field}.env`, env, adaptations);
  if (env.api) {
    (out.env as object[]).push({ name: 'KUBERNETES_SERVICE_HOST', value: env.api.host }, { name: 'KUBERNETES_SERVICE_PORT', value: String(env.api.port) });
  }
  const mounts = (c.volumeMounts ?? []).map((m: any, i: number) => {
    checkKeys(m, ['name', 'mountPath', 'readOnly'], `${field}.volumeMounts[${i}]`);
    return m;
  });
  out.volumeMounts = [...mounts, ...extraMounts];
  for (const [key, kind] of [['startupProbe', 'startup'], ['readinessProbe', 'readiness'], ['livenessProbe', 'liveness']] as const) {
    const probe = c[key];
    if (probe === undefined) continue;
    checkKeys(probe, ['exec', 'periodSeconds', 'failureThreshold', 'timeoutSeconds', 'initialDelaySeconds', 'successThreshold'], `${field}.${key}`);
    if (!probe.exec?.command) throw new RenderingError(`${field}.${key}`, 'only exec probes are played');
    probes.push({ container: c.name, kind, command: probe.exec.command, periodSeconds: probe.periodSeconds ?? 10, failureThreshold: probe.failureThreshold ?? 3, timeoutSeconds: probe.timeoutSeconds ?? 1 });
    adaptations.add(`${generic}.${key}`, 'played by the rehearsal with podman exec (podman 4.3 runs no readiness or startup probe, and its liveness healthcheck needs systemd)');
  }
  return out;
}

function renderEnv(entries: any[], field: string, env: PodEnvironment, adaptations: Adaptations): object[] {
  const out: object[] = [];
  const hasRepository = entries.some((e) => e.name === 'ARCHIVER_REPOSITORY');
  for (const e of entries) {
    const entryField = `${field}[${e.name}]`;
    checkKeys(e, ['name', 'value', 'valueFrom'], entryField);
    const override = env.envOverrides[e.name];
    if (override) {
      out.push({ name: e.name, value: override.value });
      adaptations.add(`${anyContainer(field)}[${e.name}]`, `${override.value} instead of ${e.value ?? 'the rendered value'}: ${override.why}`);
      continue;
    }
    if (e.valueFrom === undefined) {
      out.push({ name: e.name, value: e.value });
      continue;
    }
    checkKeys(e.valueFrom, ['fieldRef', 'secretKeyRef'], `${entryField}.valueFrom`);
    if (e.valueFrom.fieldRef) {
      if (e.valueFrom.fieldRef.fieldPath !== 'metadata.name') throw new RenderingError(`${entryField}.valueFrom.fieldRef`, `fieldPath ${e.valueFrom.fieldRef.fieldPath} is not understood`);
      out.push(e);
      continue;
    }
    const ref = e.valueFrom.secretKeyRef;
    checkKeys(ref, ['name', 'key', 'optional'], `${entryField}.valueFrom.secretKeyRef`);
    const value = env.secrets[ref.name]?.[ref.key];
    if (value === undefined) {
      if (ref.optional) continue; // The kubelet leaves an optional missing key out.
      throw new RenderingError(`${entryField}.valueFrom.secretKeyRef`, `the rehearsal's fixture has no key ${ref.key} in Secret ${ref.name}`);
    }
    out.push({ name: e.name, value });
    adaptations.add(`${anyContainer(field)}[*].valueFrom.secretKeyRef`, "the fixture's value, written into the played Pod (a file of the rehearsal's own directory, removed afterwards): podman 4.3 resolves secretKeyRef only from its own secret store");
  }
  if (hasRepository) {
    for (const [name, addition] of Object.entries(env.archiverEnvAdditions ?? {})) {
      if (entries.some((e) => e.name === name)) continue;
      out.push({ name, value: addition.value });
      adaptations.add(`${anyContainer(field)}[${name}]`, `${addition.value} added: ${addition.why}`);
    }
  }
  return out;
}

/** `...volumes[tls]` → `...volumes[*]`: one adaptation line for every item it applies to. */
function anyItem(field: string): string {
  return field.replace(/\[[^\]]+\]$/, '[*]');
}

/** `...containers[postgres].env` → `...containers[*].env`. */
function anyContainer(field: string): string {
  return field.replace(/containers\[[^\]]+\]/, 'containers[*]');
}

function checkKeys(object: Record<string, unknown>, known: readonly string[], field: string): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key)) throw new RenderingError(`${field}.${key}`, 'a field the rehearsal does not understand: teach rehearse/pod-rendering.ts what a kubelet does with it (or how podman differs) before rehearsing');
  }
}

/** The adaptations of one rendering, each field once. */
class Adaptations {
  private readonly byField = new Map<string, string>();
  add(field: string, what: string): void {
    if (!this.byField.has(field)) this.byField.set(field, what);
  }
  list(): Adaptation[] {
    return [...this.byField].map(([field, what]) => ({ field, what }));
  }
}
