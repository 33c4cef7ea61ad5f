/**
 * What a pull request changes in dist/, for a reviewer: a pure comparison of two synthesized trees
 * (each the YAML documents of every file by its path under dist/, as `readOutput` reads them).
 * `npm run diff` (scripts/diff.ts) does the git and synthesis work around it.
 *
 * 1. Each database file (`<environment>/<namespace>/<name>/<name>.k8s.yaml`) is summarized into the
 *    fields a reviewer cares about (replicas, version, storage, archive location, ...).
 * 2. Databases only in the head are added, only in the base removed; the others are compared field
 *    by field, and a database whose objects differ in no summarized field lists the objects.
 * 3. Every change that the API server will refuse, or that can lose data, is a danger of its own.
 */

/** The YAML documents of each file under dist/, by its path relative to dist/. */
export type DistTree = Readonly<Record<string, readonly unknown[]>>;

/** One database as rendered: what the summary compares. A field the YAML does not render is undefined. */
export interface DatabaseSummary {
  readonly key: string;
  readonly replicas?: number;
  readonly image?: string;
  readonly version?: number;
  readonly storageSize?: string;
  readonly storageClassName?: string;
  readonly terminationPolicy?: string;
  readonly repository?: string;
  readonly bootstrapSource?: string;
  readonly archiveTimeout?: string;
  readonly walLevel?: string;
  readonly archiveMode?: string;
  readonly backupSchedule?: string;
  readonly backupRetainCount?: string;
  readonly backupRetainWindow?: string;
  readonly cpuRequest?: string;
  readonly memoryRequest?: string;
  readonly memoryLimit?: string;
  readonly archiverImage?: string;
  /** The StatefulSet fields the API server refuses to update, each as canonical JSON. */
  readonly immutable: Readonly<Record<string, string>>;
}

export interface FieldChange {
  readonly field: string;
  readonly from?: string;
  readonly to?: string;
}

export interface DatabaseChange {
  readonly database: string;
  readonly fields: readonly FieldChange[];
  /** Objects that differ in fields the summary does not name (`Kind/name`). */
  readonly otherObjects: readonly string[];
  /**
   * What the change does to the running members: `rolls` (the pod template changes: the
   * StatefulSet replaces each pod, standbys first), `reloads` (only the ConfigMap's files: the
   * sidecars reload the server in place, postgres-config.ts), or `none`.
   */
  readonly pods: 'rolls' | 'reloads' | 'none';
}

export interface Danger {
  readonly database: string;
  /** A stable identifier, for machines (`--json`). */
  readonly kind: DangerKind;
  readonly message: string;
}

export type DangerKind =
  | 'immutable-field' | 'storage-shrink' | 'archive-location' | 'shared-archive' | 'wipeout-on'
  | 'database-removed' | 'major-version' | 'shorter-retention' | 'wal-level' | 'archive-mode' | 'recovery-bootstrap';

export interface DistDiff {
  readonly added: readonly string[];
  readonly removed: readonly { readonly database: string; readonly terminationPolicy?: string }[];
  readonly changed: readonly DatabaseChange[];
  /** Other files (the delivery manifests): added, removed or changed. */
  readonly otherFiles: readonly { readonly file: string; readonly change: 'added' | 'removed' | 'changed' }[];
  readonly dangers: readonly Danger[];
}

const DATABASE_FILE = /^([^/]+)\/([^/]+)\/([^/]+)\/\3\.k8s\.yaml$/;

interface K8sObject {
  kind?: string;
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

/** The database files of a tree, by `<environment>/<namespace>/<name>`. */
function databaseFiles(tree: DistTree): Map<string, K8sObject[]> {
  const out = new Map<string, K8sObject[]>();
  for (const [file, documents] of Object.entries(tree)) {
    const match = DATABASE_FILE.exec(file);
    if (match && match[1] !== 'delivery') out.set(`${match[1]}/${match[2]}/${match[3]}`, documents.filter((d): d is K8sObject => typeof d === 'object' && d !== null));
  }
  return out;
}

/** JSON with sorted keys: two equal objects give one string whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));
}

/** A `key = value` line of postgresql.conf, unquoted. */
function setting(conf: string | undefined, name: string): string | undefined {
  const match = conf && new RegExp(`^\\s*${name}\\s*=\\s*'?([^'#\\n]*?)'?\\s*(#.*)?$`, 'm').exec(conf);
  return match ? match[1] : undefined;
}

function env(container: any, name: string): string | undefined {
  const entry = (container?.env ?? []).find((e: any) => e.name === name);
  return entry?.value;
}

/** The major version of a `postgres:<version>` image reference (`postgres:16.4@sha256:...` is 16). */
function majorVersion(image: string | undefined): number | undefined {
  const tag = image && /:(\d+)(?:\.\d+)*(?:[-@][^/]*)?$/.exec(image.replace(/@sha256:[0-9a-f]+$/, ''));
  return tag ? Number(tag[1]) : undefined;
}

/** Summarizes one database's objects. */
export function summarizeDatabase(key: string, objects: readonly K8sObject[]): DatabaseSummary {
  const name = key.split('/')[2];
  const sts = objects.find((o) => o.kind === 'StatefulSet');
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === `${name}-config`);
  const claims = objects.filter((o) => o.kind === 'PersistentVolumeClaim');
  const containers: any[] = sts?.spec?.template?.spec?.containers ?? [];
  const postgres = containers.find((c) => c.name === 'postgres') ?? containers[0];
  const archiver = containers.find((c) => c.name === 'archiver');
  const conf = configMap?.data?.['postgresql.conf'];
  const claim = claims[0]?.spec ?? sts?.spec?.volumeClaimTemplates?.[0]?.spec;
  const immutable: Record<string, string> = {};
  for (const field of ['selector', 'serviceName', 'volumeClaimTemplates', 'podManagementPolicy']) {
    if (sts?.spec?.[field] !== undefined) immutable[field] = canonical(sts.spec[field]);
  }
  const str = (v: unknown) => (v === undefined || v === null ? undefined : String(v));
  return {
    key,
    replicas: sts?.spec?.replicas,
    image: postgres?.image,
    version: majorVersion(postgres?.image),
    storageSize: str(claim?.resources?.requests?.storage),
    storageClassName: str(claim?.storageClassName),
    terminationPolicy: sts?.metadata?.annotations?.['archived-postgres/termination-policy'],
    repository: env(postgres, 'ARCHIVER_REPOSITORY'),
    bootstrapSource: env(postgres, 'ARCHIVER_BOOTSTRAP_SOURCE'),
    archiveTimeout: setting(conf, 'archive_timeout'),
    walLevel: setting(conf, 'wal_level'),
    archiveMode: setting(conf, 'archive_mode'),
    backupSchedule: env(archiver, 'ARCHIVER_BACKUP_SCHEDULE'),
    backupRetainCount: env(archiver, 'ARCHIVER_BACKUP_RETAIN'),
    backupRetainWindow: env(archiver, 'ARCHIVER_BACKUP_WINDOW'),
    cpuRequest: str(postgres?.resources?.requests?.cpu),
    memoryRequest: str(postgres?.resources?.requests?.memory),
    memoryLimit: str(postgres?.resources?.limits?.memory),
    archiverImage: archiver?.image,
    immutable,
  };
}

/** The fields of the summary, in the order and the words of the report. */
const FIELDS: readonly { readonly field: string; readonly get: (s: DatabaseSummary) => string | undefined }[] = [
  { field: 'replicas', get: (s) => s.replicas?.toString() },
  { field: 'image', get: (s) => s.image },
  { field: 'storage', get: (s) => s.storageSize },
  { field: 'storageClassName', get: (s) => s.storageClassName },
  { field: 'terminationPolicy', get: (s) => s.terminationPolicy },
  { field: 'archive', get: (s) => s.repository },
  { field: 'bootstrap from', get: (s) => s.bootstrapSource },
  { field: 'archive_timeout', get: (s) => (s.archiveTimeout === undefined ? undefined : `${s.archiveTimeout} s`) },
  { field: 'wal_level', get: (s) => s.walLevel },
  { field: 'archive_mode', get: (s) => s.archiveMode },
  { field: 'backup schedule', get: (s) => s.backupSchedule },
  { field: 'backups kept', get: (s) => s.backupRetainCount },
  { field: 'backup window', get: (s) => s.backupRetainWindow },
  { field: 'cpu request', get: (s) => s.cpuRequest },
  { field: 'memory request', get: (s) => s.memoryRequest },
  { field: 'memory limit', get: (s) => s.memoryLimit },
  { field: 'archiver image', get: (s) => s.archiverImage },
];

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, '': 1 };

/** Bytes of a Kubernetes quantity (`20Gi`, `500M`); undefined for one it cannot read. */
export function quantityBytes(quantity: string | undefined): number | undefined {
  const match = quantity === undefined ? null : /^(\d+(?:\.\d+)?)([KMGTP]i|[kKMGTP])?$/.exec(quantity);
  return match ? Number(match[1]) * BINARY[match[2] ?? ''] : undefined;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds of an `ARCHIVER_BACKUP_WINDOW` (`14d`, `36h`); undefined for one it cannot read. */
function windowSeconds(window: string | undefined): number | undefined {
  const match = window === undefined ? null : /^(\d+)([smhdw])$/.exec(window);
  return match ? Number(match[1]) * UNIT_SECONDS[match[2]] : undefined;
}

/** What each termination policy does to a removed database's volumes and archive. */
function removalConsequence(policy: string | undefined): string {
  switch (policy) {
    case 'WipeOut': return 'WipeOut: its volumes are deleted, and its archive too (PostDelete hook): nothing of it remains';
    case 'Delete': return 'Delete: its volumes are deleted, its archive is kept';
    case 'Halt': return 'Halt: its volumes and its archive are kept';
    case 'DoNotTerminate': return 'DoNotTerminate: Argo CD and Flux do not delete it; its objects stay in the cluster';
    default: return `termination policy ${policy ?? 'unknown'}: check what its deletion deletes`;
  }
}

const REFUSED_UPDATE = 'the API server refuses to update it, so the sync will fail; delete the StatefulSet alone first (kubectl delete statefulset --cascade=orphan)';

/** The dangers of one database's change from `base` to `head`. */
function changeDangers(base: DatabaseSummary, head: DatabaseSummary): Danger[] {
  const dangers: Danger[] = [];
  const add = (kind: DangerKind, message: string) => dangers.push({ database: head.key, kind, message });
  for (const field of ['selector', 'serviceName', 'volumeClaimTemplates', 'podManagementPolicy']) {
    if (base.immutable[field] !== head.immutable[field]) add('immutable-field', `StatefulSet ${field} changes: ${REFUSED_UPDATE}`);
  }
  const [from, to] = [quantityBytes(base.storageSize), quantityBytes(head.storageSize)];
  if (from !== undefined && to !== undefined && to < from) add('storage-shrink', `storage shrinks ${base.storageSize} → ${head.storageSize}: a volume claim cannot shrink`);
  if (base.repository !== head.repository) add('archive-location', `archive location changes ${base.repository ?? '(none)'} → ${head.repository ?? '(none)'}: new WAL and backups go to the new location; recovery from the old one needs it named`);
  if (head.terminationPolicy === 'WipeOut' && base.terminationPolicy !== 'WipeOut') add('wipeout-on', `terminationPolicy ${base.terminationPolicy ?? '(none)'} → WipeOut: removing this database will delete its archive`);
  if (base.version !== undefined && head.version !== undefined && base.version !== head.version) add('major-version', `major version ${base.version} → ${head.version}: PostgreSQL will not start on the old data directory (a major upgrade needs pg_upgrade or a dump and restore)`);
  const [count, countTo] = [Number(base.backupRetainCount), Number(head.backupRetainCount)];
  if (base.backupRetainCount !== undefined && head.backupRetainCount !== undefined && countTo < count) add('shorter-retention', `backups kept ${count} → ${countTo}: older backups are deleted at the next backup`);
  const [window, windowTo] = [windowSeconds(base.backupRetainWindow), windowSeconds(head.backupRetainWindow)];
  if (window !== undefined && windowTo === undefined) add('shorter-retention', `backup window ${base.backupRetainWindow} → (none): only the backups kept by count, and the WAL they need, stay in the archive`);
  else if (window !== undefined && windowTo! < window) add('shorter-retention', `backup window ${base.backupRetainWindow} → ${head.backupRetainWindow}: the archive older than the new window is deleted`);
  if (base.walLevel !== head.walLevel) {
    const minimal = head.walLevel === 'minimal' ? '; minimal stops archiving and streaming to the standbys' : '';
    add('wal-level', `wal_level ${base.walLevel ?? '(default)'} → ${head.walLevel ?? '(default)'}: takes effect only when every member restarts${minimal}`);
  }
  if (base.archiveMode !== head.archiveMode) {
    const off = head.archiveMode === 'off' || head.archiveMode === undefined ? '; from then on no WAL reaches the archive: no recovery past this point' : '';
    add('archive-mode', `archive_mode ${base.archiveMode ?? '(default)'} → ${head.archiveMode ?? '(default)'}: takes effect only when every member restarts${off}`);
  }
  if (head.bootstrapSource !== undefined && base.bootstrapSource !== head.bootstrapSource) add('recovery-bootstrap', `recovery bootstrap from ${head.bootstrapSource} added to a live database: a member whose volume is empty recovers from that archive instead of its own`);
  return dangers;
}

/** Repositories of `summaries` that are one location, or one inside the other: two databases writing one archive. */
function sharedArchives(summaries: readonly DatabaseSummary[]): Danger[] {
  const dangers: Danger[] = [];
  const withRepo = summaries.filter((s) => s.repository !== undefined);
  for (const a of withRepo) {
    for (const b of withRepo) {
      if (a.key >= b.key) continue;
      const [ra, rb] = [`${a.repository!.replace(/\/+$/, '')}/`, `${b.repository!.replace(/\/+$/, '')}/`];
      if (ra.startsWith(rb) || rb.startsWith(ra)) {
        dangers.push({ database: a.key, kind: 'shared-archive', message: `archive ${a.repository} shares its location with ${b.key} (${b.repository}): two databases must never write one archive` });
      }
    }
  }
  return dangers;
}

/** Objects (`Kind/name`) whose documents differ between two renderings of one database. */
function changedObjects(base: readonly K8sObject[], head: readonly K8sObject[]): string[] {
  const id = (o: K8sObject) => `${o.kind}/${o.metadata?.name}`;
  const index = (objects: readonly K8sObject[]) => new Map(objects.map((o) => [id(o), canonical(o)]));
  const [b, h] = [index(base), index(head)];
  return [...new Set([...b.keys(), ...h.keys()])].filter((k) => b.get(k) !== h.get(k)).sort();
}

/** Whether a change of one database's objects replaces its pods, reloads their configuration, or neither. */
function podsEffect(base: readonly K8sObject[], head: readonly K8sObject[]): DatabaseChange['pods'] {
  const template = (objects: readonly K8sObject[]) => canonical(objects.find((o) => o.kind === 'StatefulSet')?.spec?.template ?? null);
  if (template(base) !== template(head)) return 'rolls';
  const configMap = (objects: readonly K8sObject[]) => {
    const name = objects.find((o) => o.kind === 'StatefulSet')?.metadata?.name;
    return canonical(objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === `${name}-config`)?.data ?? null);
  };
  return configMap(base) !== configMap(head) ? 'reloads' : 'none';
}

/** The words of a change's effect on the pods. */
const POD_EFFECT: Record<DatabaseChange['pods'], string> = {
  rolls: ' (rolls the pods, one at a time)',
  reloads: ' (reloaded in place: no pod restarts)',
  none: '',
};

/** Compares two synthesized trees. */
export function diffDist(base: DistTree, head: DistTree): DistDiff {
  const [baseDbs, headDbs] = [databaseFiles(base), databaseFiles(head)];
  const summary = (key: string, files: Map<string, K8sObject[]>) => summarizeDatabase(key, files.get(key)!);
  const added = [...headDbs.keys()].filter((k) => !baseDbs.has(k)).sort();
  const removed = [...baseDbs.keys()].filter((k) => !headDbs.has(k)).sort()
    .map((database) => ({ database, terminationPolicy: summary(database, baseDbs).terminationPolicy }));
  const changed: DatabaseChange[] = [];
  const dangers: Danger[] = [];
  for (const key of [...headDbs.keys()].filter((k) => baseDbs.has(k)).sort()) {
    const [from, to] = [summary(key, baseDbs), summary(key, headDbs)];
    const fields = FIELDS.filter((f) => f.get(from) !== f.get(to)).map((f) => ({ field: f.field, from: f.get(from), to: f.get(to) }));
    for (const field of ['selector', 'serviceName', 'volumeClaimTemplates', 'podManagementPolicy']) {
      if (from.immutable[field] !== to.immutable[field]) fields.push({ field: `StatefulSet ${field}`, from: 'old', to: 'new' });
    }
    const objects = changedObjects(baseDbs.get(key)!, headDbs.get(key)!);
    if (fields.length > 0 || objects.length > 0) {
      changed.push({ database: key, fields, otherObjects: fields.length > 0 ? [] : objects, pods: podsEffect(baseDbs.get(key)!, headDbs.get(key)!) });
    }
    dangers.push(...changeDangers(from, to));
  }
  for (const { database, terminationPolicy } of removed) {
    dangers.push({ database, kind: 'database-removed', message: `removed, with terminationPolicy ${removalConsequence(terminationPolicy)}` });
  }
  // Only a sharing that the pull request brings: one already in the base is not news.
  const sharedBefore = new Set(sharedArchives([...baseDbs.keys()].map((k) => summary(k, baseDbs))).map((d) => d.message));
  dangers.push(...sharedArchives([...headDbs.keys()].sort().map((k) => summary(k, headDbs))).filter((d) => !sharedBefore.has(d.message)));
  const otherFiles: DistDiff['otherFiles'][number][] = [];
  for (const file of [...new Set([...Object.keys(base), ...Object.keys(head)])].sort()) {
    if (DATABASE_FILE.exec(file) && !file.startsWith('delivery/')) continue;
    if (!(file in base)) otherFiles.push({ file, change: 'added' });
    else if (!(file in head)) otherFiles.push({ file, change: 'removed' });
    else if (canonical(base[file]) !== canonical(head[file])) otherFiles.push({ file, change: 'changed' });
  }
  // Grouped by database, each in the order found.
  const ordered = dangers.map((d, i) => ({ d, i })).sort((a, b) => a.d.database.localeCompare(b.d.database) || a.i - b.i).map(({ d }) => d);
  return { added, removed, changed, otherFiles, dangers: ordered };
}

/** The report a reviewer reads: one line per database, then the dangers. */
export function formatDiff(diff: DistDiff, title = 'dist/'): string {
  const lines: string[] = [];
  const nothing = diff.added.length + diff.removed.length + diff.changed.length + diff.otherFiles.length === 0;
  if (nothing) return `${title}: no changes\n`;
  lines.push(`${title}: ${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed`);
  for (const database of diff.added) lines.push(`  + ${database}: added`);
  for (const { database, terminationPolicy } of diff.removed) lines.push(`  - ${database}: removed (terminationPolicy ${terminationPolicy ?? 'unknown'})`);
  for (const change of diff.changed) {
    const words = change.fields.map((f) => (f.field.startsWith('StatefulSet ') ? `${f.field} changed` : `${f.field} ${f.from ?? '(none)'} → ${f.to ?? '(none)'}`));
    if (change.otherObjects.length > 0) words.push(`changed objects: ${change.otherObjects.join(', ')}`);
    lines.push(`  ~ ${change.database}: ${words.join('; ')}${POD_EFFECT[change.pods]}`);
  }
  for (const { file, change } of diff.otherFiles) lines.push(`  ${change === 'added' ? '+' : change === 'removed' ? '-' : '~'} ${file}: ${change}`);
  if (diff.dangers.length > 0) {
    lines.push('', `DANGEROUS (${diff.dangers.length}): review before merging`);
    for (const danger of diff.dangers) lines.push(`  ! ${danger.database}: ${danger.message}`);
  } else {
    lines.push('', 'No dangerous changes.');
  }
  return `${lines.join('\n')}\n`;
}
