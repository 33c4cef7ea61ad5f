/**
 * One database in a directory of its own, `<environment>/<namespace>/<name>/<name>.k8s.yaml`:
 * what one Argo CD Application syncs, so that removing the database from code removes its
 * directory and its Application (and, under WipeOut, runs its PostDelete hook: Argo CD runs a
 * hook when an Application is deleted, never when one object is pruned).
 *
 * It annotates its objects with Argo CD sync waves (SYNC_WAVES), and refuses a volume claim
 * smaller than the one the previous synthesis wrote to the same file (a claim cannot shrink).
 */
import { Construct } from 'constructs';
import { ArchivedPostgres, ArchivedPostgresProps } from './archived-postgres';
import { FileChart } from './gitops-app';
import { MAJOR_VERSION_ANNOTATION } from './postgres-stateful-set';
import { PreviousOutput } from './previous-output';
import { parseQuantity, show } from './validation';

/** The Argo CD hook annotation: a hook runs outside the sync waves. */
const HOOK_ANNOTATION = 'argocd.argoproj.io/hook';
export const SYNC_WAVE_ANNOTATION = 'argocd.argoproj.io/sync-wave';

/**
 * Argo CD sync waves by kind: what the pods read or are reached through (ServiceAccount, the
 * Role and RoleBinding the sidecar labels its pod with, ConfigMap, Services, disruption budget)
 * exists before the StatefulSet. The claims are in the
 * StatefulSet's wave, and Argo CD applies them before it in that wave (its kind order): in an
 * earlier wave a claim of a `WaitForFirstConsumer` StorageClass would never become healthy (it
 * binds only once a pod uses it), and Argo CD would wait for it for ever (argoproj/argo-cd#12840).
 * The monitoring (PodMonitor, PrometheusRule) comes after the database, in wave 1: its CRDs are the
 * Prometheus operator's, and a cluster without them fails the sync only once the database is up.
 * Kinds not listed are in wave 0, after the claims and the StatefulSet by kind order.
 */
export const SYNC_WAVES: Readonly<Record<string, string>> = Object.freeze({
  ServiceAccount: '-1',
  Role: '-1',
  RoleBinding: '-1',
  Secret: '-1',
  ConfigMap: '-1',
  Service: '-1',
  PodDisruptionBudget: '-1',
  PersistentVolumeClaim: '0',
  StatefulSet: '0',
  PodMonitor: '1',
  PrometheusRule: '1',
});

export interface DatabaseChartProps {
  /** The directory, relative to the output directory: `<environment>/<namespace>/<name>`. */
  readonly directory: string;
  /** The database's name: its StatefulSet, the prefix of its other objects, the file's name. */
  readonly name: string;
  readonly namespace: string;
  /** The database's props (`name` and `namespace` are the chart's). */
  readonly props: ArchivedPostgresProps;
}

/** A chart holding one database (construct id `Database`), written to its own directory. */
export class DatabaseChart extends FileChart {
  /** Whether `x` is a DatabaseChart. */
  public static isDatabaseChart(x: unknown): x is DatabaseChart {
    return FileChart.isFileChart(x) && DATABASE_CHART in x;
  }

  public readonly directory: string;
  public readonly outputFile: string;
  public readonly database: ArchivedPostgres;

  constructor(scope: Construct, id: string, props: DatabaseChartProps) {
    super(scope, id, { namespace: props.namespace, disableResourceNameHashes: true });
    Object.defineProperty(this, DATABASE_CHART, { value: true });
    this.directory = props.directory;
    this.outputFile = `${props.directory}/${props.name}.k8s.yaml`;
    this.database = new ArchivedPostgres(this, 'Database', { ...props.props, name: props.name, namespace: props.namespace });
    // Reported under the database's path: these are problems of its props.
    this.database.node.addValidation({ validate: () => [...this.checkClaimsDoNotShrink(), ...this.checkMajorVersionUnchanged(), ...this.checkDirectory()] });
  }

  protected transform(objects: any[]): any[] {
    return objects.map((object) => {
      const wave = SYNC_WAVES[object.kind];
      if (wave === undefined || object.metadata?.annotations?.[HOOK_ANNOTATION] !== undefined) return object;
      return { ...object, metadata: { ...object.metadata, annotations: { ...object.metadata.annotations, [SYNC_WAVE_ANNOTATION]: wave } } };
    });
  }

  /**
   * A claim smaller than the previous synthesis's claim of the same name in the same file: the
   * API server refuses to shrink a claim, so the sync would fail on every attempt.
   */
  private checkClaimsDoNotShrink(): string[] {
    const previous = PreviousOutput.of(this);
    const documents = previous.files[this.outputFile] ?? [];
    const errors: string[] = [];
    for (const claim of this.database.statefulSet.dataVolumeClaims) {
      const size: string = claim.toJson().spec?.resources?.requests?.storage;
      const before = documents.find((d: any) => d?.kind === 'PersistentVolumeClaim' && d.metadata?.name === claim.name && (d.metadata?.namespace ?? this.namespace) === this.database.namespace) as any;
      const beforeSize: unknown = before?.spec?.resources?.requests?.storage;
      if (typeof beforeSize !== 'string' || typeof size !== 'string') continue;
      const bytes = parseQuantity(size);
      const beforeBytes = parseQuantity(beforeSize);
      if (bytes === undefined || beforeBytes === undefined || bytes >= beforeBytes) continue;
      errors.push(`storage.size: ${show(size)} would shrink the volume claim ${claim.name}, which ${previous.directory}/${this.outputFile} (the previous synthesis) gives ${beforeSize}: a claim can only grow (the API server refuses a smaller request, and every sync would fail); keep ${show(beforeSize)} or more, or move the data to a new database with smaller volumes (Bootstrap.fromArchive from this one's archive) and remove this one`);
    }
    return errors;
  }

  /**
   * A `version` other than the one the previous synthesis's StatefulSet runs: the rollout would
   * start the standbys, then pod 0, on PostgreSQL of the new major version with data directories of
   * the old one, which it cannot read (`pg_upgrade` is an offline step no pod here runs), and stop at
   * its first pod. The major version is the StatefulSet's annotation, or, for output written before
   * it, the tag of the official image's reference (`.../postgres:15`).
   */
  private checkMajorVersionUnchanged(): string[] {
    const previous = PreviousOutput.of(this);
    const statefulSet = this.database.statefulSet.apiObject;
    const before = (previous.files[this.outputFile] ?? []).find((d: any) => d?.kind === 'StatefulSet' && d.metadata?.name === statefulSet.name) as any;
    if (!before) return [];
    const annotated: unknown = before.metadata?.annotations?.[MAJOR_VERSION_ANNOTATION];
    const image: unknown = before.spec?.template?.spec?.containers?.find((c: any) => c?.name === 'postgres')?.image;
    const fromImage = typeof image === 'string' ? /(?:^|\/)postgres:(\d+)(?:[.@-]|$)/.exec(image)?.[1] : undefined;
    const beforeVersion = Number(typeof annotated === 'string' ? annotated : fromImage);
    const version = this.database.version;
    if (!Number.isInteger(beforeVersion) || beforeVersion === version) return [];
    return [`version: ${version} would roll the members of ${previous.directory}/${this.outputFile} (the previous synthesis), whose data directories hold PostgreSQL ${beforeVersion}, onto PostgreSQL ${version}: a major version cannot start on another's data, and the rollout would stop at its first pod with that pod down; keep version: ${beforeVersion}. To move to ${version}, create a new database of version ${version} (a new name), copy the data into it logically (pg_dump and pg_restore, or logical replication), point the clients at it, then remove this one`];
  }

  /** Another DatabaseChart of the app written to the same directory: reported on the later one. */
  private checkDirectory(): string[] {
    const charts = this.node.root.node.findAll().filter((c): c is DatabaseChart => DatabaseChart.isDatabaseChart(c));
    const first = charts.find((c) => c.directory === this.directory);
    if (!first || first === this) return [];
    return [`directory: ${show(this.directory)} is also where ${first.database.node.path} is written: each database needs a directory of its own (its own Argo CD Application, whose deletion runs its PostDelete hook); give the environments different directories, or the databases different names or namespaces`];
  }
}

const DATABASE_CHART = Symbol.for('archived-postgres.DatabaseChart');
