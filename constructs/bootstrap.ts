/**
 * What pod 0 does when it starts on an empty data volume (`archiver bootstrap`, run by the start
 * script): restore from the database's own archive, initdb, or initialise from another
 * database's archive to a point in time. Rendered as the PostgreSQL container's environment
 * (ARCHIVER_BOOTSTRAP, and for another archive ARCHIVER_BOOTSTRAP_SOURCE and the target); a data
 * directory that already holds a database is never touched.
 */
import { k8s } from 'cdk8s-plus-27';
import { ARCHIVER_ENV, BootstrapMode, archivePath, repositoryUrl } from '../contract';
import { ArchiveStorage } from './archive-storage';
import { RecoveryTarget } from './recovery-target';
import { checkDatabaseName, checkNamespace, show } from './validation';

/** recovery_target_timeline: the newest timeline, the backup's own, or a timeline's number. */
export type RecoveryTimeline = 'latest' | 'current' | number;

/** Another database's archive, in the same archive storage (bucket, prefix, Secret), to a point in time. */
export interface FromArchiveOptions {
  /** The namespace of the database whose archive is read. */
  readonly namespace: string;
  /** The name of the database whose archive is read. */
  readonly name: string;
  /**
   * Where recovery stops.
   * @default RecoveryTarget.latest() - every archived segment
   */
  readonly target?: RecoveryTarget;
  /**
   * Whether recovery stops just after the target (true) or just before it (false); for a time,
   * LSN or transaction target only.
   * @default true - PostgreSQL's default
   */
  readonly inclusive?: boolean;
  /**
   * The timeline to recover along.
   * @default "latest" - PostgreSQL's default: the newest timeline in the archive
   */
  readonly timeline?: RecoveryTimeline;
}

/** What a bootstrap needs to know about the database it starts. */
export interface BootstrapBindOptions {
  /** The database's archive storage: another database's archive is read from the same bucket and prefix, with the same Secret. */
  readonly storage: ArchiveStorage;
  /** The database's own namespace and name (its own archive location). */
  readonly namespace: string;
  readonly name: string;
}

/** One problem of a bootstrap definition: the field (relative to `bootstrap`) and what is wrong. */
export interface BootstrapProblem {
  readonly field: string;
  readonly message: string;
}

/**
 * What pod 0 does with an empty data volume. Applies only then: a database that has started once
 * has its own archive and its own backups, and a later loss of its volume restores from them
 * (a source left in Git never rolls a live database back).
 *
 * - `Bootstrap.restore()` (the default): the newest complete backup of the database's own archive,
 *   and every archived WAL segment; initdb when the archive is empty; refuse to start when it
 *   holds WAL but no complete backup (never initdb over an archive).
 * - `Bootstrap.initdb()`: initdb on an empty archive; refuse to start over a non-empty one (the
 *   user restores by hand).
 * - `Bootstrap.fromArchive({ namespace, name, target })`: a new database from another database's
 *   archive to a point in time (KubeDB's `init.postgresWAL`, CloudNativePG's
 *   `bootstrap.recovery`); refused at run time when the database's own archive is not empty.
 */
export class Bootstrap {
  /** Restore from the database's own archive when it holds a backup, initdb when it is empty. */
  public static restore(): Bootstrap {
    return new Bootstrap('restore');
  }

  /** initdb on an empty archive; refuse to start over a non-empty one instead of restoring. */
  public static initdb(): Bootstrap {
    return new Bootstrap('initdb');
  }

  /** Initialise from another database's archive in the same archive storage, to `target`. */
  public static fromArchive(options: FromArchiveOptions): Bootstrap {
    return new Bootstrap('restore', options);
  }

  private constructor(
    /** The value of ARCHIVER_BOOTSTRAP. */
    public readonly mode: BootstrapMode,
    /** The source archive of `fromArchive`; undefined for `restore()` and `initdb()`. */
    public readonly source?: FromArchiveOptions,
  ) {}

  /** The source archive's path inside the bucket, or undefined when the bootstrap has no source. */
  public sourceArchivePath(storage: ArchiveStorage): string | undefined {
    return this.source ? archivePath(storage.prefix, this.source.namespace, this.source.name) : undefined;
  }

  /** The PostgreSQL container's environment: the mode, and for another archive its location and target (only what is set). */
  public bind(options: BootstrapBindOptions): k8s.EnvVar[] {
    const env: k8s.EnvVar[] = [{ name: ARCHIVER_ENV.bootstrapMode, value: this.mode }];
    const source = this.source;
    const backend = options.storage?.backend;
    if (!source || !backend) return env;
    env.push({ name: ARCHIVER_ENV.bootstrapSource, value: repositoryUrl(backend, options.storage.bucket, this.sourceArchivePath(options.storage)!) });
    if (source.target !== undefined) env.push({ name: ARCHIVER_ENV.bootstrapTarget, value: source.target.render() });
    if (source.inclusive !== undefined) env.push({ name: ARCHIVER_ENV.bootstrapTargetInclusive, value: String(source.inclusive) });
    if (source.timeline !== undefined) env.push({ name: ARCHIVER_ENV.bootstrapTargetTimeline, value: String(source.timeline) });
    return env;
  }

  /** Every problem of this bootstrap for the database of `options`; empty when it is usable. */
  public validate(options: BootstrapBindOptions): BootstrapProblem[] {
    const source = this.source;
    if (!source) return [];
    const problems: BootstrapProblem[] = [];
    const add = (field: string, message: string | undefined) => {
      if (message) problems.push({ field, message });
    };
    add('fromArchive.namespace', checkNamespace(String(source.namespace)));
    add('fromArchive.name', checkDatabaseName(String(source.name)));
    if (source.namespace === options.namespace && source.name === options.name) {
      const own = options.storage?.backend ? repositoryUrl(options.storage.backend, options.storage.bucket, this.sourceArchivePath(options.storage)!) : `${options.namespace}/${options.name}`;
      add('fromArchive', `the source ${own} is this database's own archive: name another database's namespace and name, or use Bootstrap.restore() (the default) to restore from the own archive`);
    }
    if (source.target !== undefined && !(source.target instanceof RecoveryTarget)) {
      add('fromArchive.target', `${show(source.target)} is not a RecoveryTarget: use RecoveryTarget.latest(), .immediate(), .time("2026-11-30T10:00:00Z"), .lsn("0/3000028"), .xid(1234) or .restorePoint("name")`);
    } else {
      add('fromArchive.target', source.target?.validate());
    }
    if (source.inclusive !== undefined) {
      if (typeof source.inclusive !== 'boolean') {
        add('fromArchive.inclusive', `${show(source.inclusive)} is not true or false`);
      } else if (!(source.target instanceof RecoveryTarget && source.target.takesInclusive)) {
        add('fromArchive.inclusive', `applies to a time, LSN or transaction target only, and the target is ${source.target instanceof RecoveryTarget ? source.target.kind : 'latest'}: remove inclusive, or give RecoveryTarget.time(...), .lsn(...) or .xid(...)`);
      }
    }
    const timeline = source.timeline;
    if (timeline !== undefined && timeline !== 'latest' && timeline !== 'current' && !(typeof timeline === 'number' && Number.isSafeInteger(timeline) && timeline >= 1)) {
      add('fromArchive.timeline', `${show(timeline)} is not a timeline: use "latest" (the default), "current" (the backup's own) or a timeline's number of at least 1, e.g. 2`);
    }
    return problems;
  }
}
