/**
 * The sidecar applies an updated ConfigMap without a restart. The pod template's checksum covers
 * only what needs a restart (constructs/postgres-config.ts, restart-settings.ts), so a change to a
 * reloadable setting (archive_timeout, max_wal_size, primary_conninfo, ...) or to pg_hba.conf
 * reaches the pod only through the kubelet, which updates the mounted ConfigMap in place (within a
 * minute or so, its sync period). PostgreSQL does not notice files that change under it; this
 * watcher does, and reloads it:
 *
 * 1. Every `intervalMs` (5 s), hash the mount's files (ARCHIVER_ENV.configDir). The kubelet writes
 *    each version into a new hidden directory and swaps the symlink `..data` to it at once
 *    (contract/config-mount.ts); the files are read through `..data`'s target, so that one look
 *    sees one version. Polling, not fs.watch: a watch of the directory does not reliably report
 *    the rename of a symlink, and the files themselves are never written.
 * 2. When the hash differs from the one last applied — or nothing is applied yet: this sidecar may
 *    have restarted after an update the server never reloaded — connect over the Unix socket
 *    (postgres-session.ts), note pg_settings, `SELECT pg_reload_conf()`, wait until this session
 *    has read the files again (pg_conf_load_time() moves), and note pg_settings again.
 * 3. Log one line naming the files that changed, the parameters whose value changed, those that
 *    wait for a restart (pg_settings.pending_restart: the pods roll for them, the checksum
 *    changed too) and the lines the server refused (pg_file_settings, pg_hba_file_rules: it keeps
 *    the values it had).
 * 4. Count it (archiver_config_reloads_total{outcome}) and set
 *    archiver_postgres_pending_restart_settings.
 * 5. A failure (the server not up yet, down, in a recovery without connections) is logged once
 *    until a look works again, and tried again at the next look. Nothing here throws into the
 *    background archiver: its WAL work goes on whatever happens.
 *
 * The mounted TLS Secret (ARCHIVER_ENV.tlsDir), when there is one, is watched with the ConfigMap:
 * PostgreSQL reads its certificate and key again only at a reload, so without one a certificate
 * that cert-manager renewed in place would be served until it expired. Its files count as
 * `tls/<name>` in the report; their contents are hashed, never logged. PostgreSQL keeps serving its
 * previous certificate when it cannot use the renewed pair (a key of another certificate, say) and
 * the reload still succeeds; so after a reload the TLS files took part in, the certificate the
 * server presents is compared with the Secret's (served-certificate.ts), and a renewal it did not
 * take is a warning that says why, not "configuration reloaded".
 */
import { createHash, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KUBELET_DATA_LINK, KUBELET_HIDDEN_PREFIX, TLS_SECRET_FILES } from '../../../contract';
import type { Logger } from '../logger';
import { MetricsRecorder, NO_METRICS } from '../metrics/recorder';
import { ConnectionSettings, PostgresSession } from '../backup/postgres-session';
import { PeriodicLook } from './periodic-look';
import { certificatePairProblem, firstCertificateDer, servedCertificateDer } from './served-certificate';

export interface ConfigReloadWatcherProps {
  readonly log: Logger;
  /** The mounted ConfigMap (CONFIG_DIR in the pod). */
  readonly configDir: string;
  /** The mounted TLS Secret (TLS_DIR in the pod). @default - none watched */
  readonly tlsDir?: string;
  /** @default - libpq's environment (PGHOST: the socket directory the sidecar shares) */
  readonly connection?: ConnectionSettings;
  /** How often the files are hashed. @default 5000 */
  readonly intervalMs?: number;
  /** How long a reload may take to reach this session before the look counts as failed. @default 10000 */
  readonly reloadTimeoutMs?: number;
  /** archiver_config_reloads_total and archiver_postgres_pending_restart_settings. @default NO_METRICS */
  readonly metrics?: MetricsRecorder;
  /**
   * Where the server takes TLS connections, to see which certificate it presents after a reload
   * the TLS files took part in. @default 127.0.0.1 and the server's port setting
   */
  readonly tlsAddress?: { readonly host: string; readonly port: number };
}

/** One version of the mount: each file's contents, by name. */
export type ConfigFiles = ReadonlyMap<string, string>;

/** What a reload did, as the server reports it. */
export interface ReloadReport {
  /** The files whose contents differ from the version applied before (all of them at the first reload). */
  readonly files: readonly string[];
  /** Parameters whose value in effect changed. */
  readonly changed: readonly string[];
  /** Parameters whose new value waits for a restart (pg_settings.pending_restart). */
  readonly pendingRestart: readonly string[];
  /** Lines the server refused, `file:line: error`: it keeps the values it had. */
  readonly errors: readonly string[];
}

/**
 * The files of a mounted ConfigMap, read from the version `..data` points to (or from the
 * directory itself when it is no kubelet mount); the kubelet's own entries are left out.
 */
export function readConfigFiles(configDir: string): ConfigFiles {
  // The kubelet removes the previous version right after the swap: a look that followed `..data`
  // just before it reads the new version instead.
  for (let attempt = 1; ; attempt++) {
    try {
      return readConfigVersion(configDir);
    } catch (error) {
      if (attempt >= 3 || (error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

function readConfigVersion(configDir: string): ConfigFiles {
  const data = path.join(configDir, KUBELET_DATA_LINK);
  const dir = fs.existsSync(data) ? fs.realpathSync(data) : configDir;
  const files = new Map<string, string>();
  for (const name of fs.readdirSync(dir).sort()) {
    if (name.startsWith(KUBELET_HIDDEN_PREFIX)) continue;
    const file = path.join(dir, name);
    if (fs.statSync(file).isFile()) files.set(name, fs.readFileSync(file, 'utf8'));
  }
  return files;
}

/**
 * The ConfigMap's files, and the TLS Secret's as `tls/<name>` when `tlsDir` is given: what one look
 * hashes. A TLS directory it cannot read does not cost the ConfigMap its watch: its files are left
 * out, and `tlsError` says why (the ConfigMap's own failure throws, as readConfigFiles does).
 */
export function readWatchedFiles(configDir: string, tlsDir?: string): { files: ConfigFiles; tlsError?: Error } {
  const files = new Map(readConfigFiles(configDir));
  if (tlsDir === undefined) return { files };
  try {
    for (const [name, text] of readConfigFiles(tlsDir)) files.set(`${TLS_FILES_PREFIX}${name}`, text);
    return { files };
  } catch (error) {
    return { files, tlsError: error as Error };
  }
}

/** How the TLS Secret's files are named among the ConfigMap's in a reload's report. */
const TLS_FILES_PREFIX = 'tls/';

/** The SHA-256 of a version's names and contents. */
export function hashConfigFiles(files: ConfigFiles): string {
  return createHash('sha256').update(JSON.stringify([...files])).digest('hex');
}

interface SettingRow {
  name: string;
  setting: string | null;
  pending_restart: boolean;
}

const SETTINGS_SQL = 'SELECT name, setting, pending_restart FROM pg_settings ORDER BY name';
// A parameter waiting for a restart is an error of pg_file_settings too ("setting could not be
// applied"): it is reported as pending, not as refused.
const ERRORS_SQL = `SELECT f.sourcefile || ':' || f.sourceline || ': ' || f.error AS line FROM pg_file_settings f
    WHERE f.error IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_settings s WHERE lower(s.name) = lower(f.name) AND s.pending_restart)
  UNION ALL SELECT current_setting('hba_file') || ':' || line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL`;

/**
 * Reloads the server's configuration on an open session and reports what the reload did: see
 * steps 2 and 3 of the module's comment. `files`: the names of the files that changed.
 */
export async function reloadConfiguration(session: PostgresSession, files: readonly string[], timeoutMs = 10_000): Promise<ReloadReport> {
  const before = new Map((await session.rows<SettingRow>(SETTINGS_SQL)).map((row) => [row.name, row.setting]));
  const [{ loaded }] = await session.rows<{ loaded: string }>("SELECT pg_conf_load_time()::text AS loaded");
  await session.rows('SELECT pg_reload_conf()');
  // pg_reload_conf() only signals the postmaster, which reads the files and signals every
  // backend, this one too; a backend reads them again before its next statement.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ now }] = await session.rows<{ now: string }>('SELECT pg_conf_load_time()::text AS now');
    if (now !== loaded) break;
    if (Date.now() > deadline) throw new Error(`the server did not reload its configuration within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const after = await session.rows<SettingRow>(SETTINGS_SQL);
  return {
    files,
    changed: after.filter((row) => before.has(row.name) && before.get(row.name) !== row.setting).map((row) => row.name),
    pendingRestart: after.filter((row) => row.pending_restart).map((row) => row.name),
    errors: (await session.rows<{ line: string }>(ERRORS_SQL)).map((row) => row.line),
  };
}

/** Watches the mounted ConfigMap and reloads the server when it changes: see the module's comment. */
export class ConfigReloadWatcher {
  private readonly loop: PeriodicLook;
  /** The version the server last reloaded (or started with, as far as this sidecar knows). */
  private applied: { hash: string; files: ConfigFiles } | undefined;
  /** The failure logged last, so that a failing look is logged once, not every few seconds. */
  private failing: string | undefined;

  constructor(private readonly props: ConfigReloadWatcherProps) {
    this.loop = new PeriodicLook(() => this.look(), props.intervalMs ?? 5000);
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One look: hash the files and, when they changed, reload. Never throws. Returns the report of a reload, if one was done. */
  async look(): Promise<ReloadReport | undefined> {
    const { log } = this.props;
    let files: ConfigFiles;
    try {
      const read = readWatchedFiles(this.props.configDir, this.props.tlsDir);
      files = read.files;
      this.tlsFailed(read.tlsError);
    } catch (error) {
      this.failed('cannot read the configuration files (trying again)', error);
      return undefined;
    }
    const hash = hashConfigFiles(files);
    if (this.applied?.hash === hash) return undefined;
    const changedFiles = [...new Set([...files.keys(), ...(this.applied?.files.keys() ?? [])])].filter((name) => this.applied?.files.get(name) !== files.get(name)).sort();
    let session: PostgresSession | undefined;
    try {
      session = await PostgresSession.open({ ...this.props.connection, applicationName: 'archiver config-reload' });
      const report = await reloadConfiguration(session, changedFiles, this.props.reloadTimeoutMs);
      const tlsRefused = await this.renewalRefused(files, changedFiles, session);
      const first = this.applied === undefined;
      this.applied = { hash, files };
      this.failing = undefined;
      (this.props.metrics ?? NO_METRICS).configReloaded({ applied: true, pendingRestart: report.pendingRestart.length });
      const fields = {
        files: report.files.join(','),
        changed: report.changed.join(',') || undefined,
        pending_restart: report.pendingRestart.join(',') || undefined,
        errors: report.errors.join('; ') || undefined,
      };
      if (tlsRefused !== undefined) {
        log.warn("configuration reloaded, but the server still presents its previous TLS certificate: it could not use the TLS Secret's new files, and serves the previous certificate until the Secret holds a certificate with its own key", { ...fields, why: tlsRefused });
      } else if (report.errors.length > 0) {
        log.warn('configuration reloaded; the server refused some lines and keeps their previous values', fields);
      } else if (report.pendingRestart.length > 0) {
        log.warn('configuration reloaded; some settings take effect only at the next restart', fields);
      } else if (!first || report.changed.length > 0) {
        log.info('configuration reloaded', fields);
      } else {
        // The sidecar's first look, with nothing new for the server: the usual start of a pod.
        log.debug('configuration reloaded', fields);
      }
      return report;
    } catch (error) {
      // Before the first reload the server is usually starting: only a change it misses counts.
      if (this.applied !== undefined) (this.props.metrics ?? NO_METRICS).configReloaded({ applied: false });
      this.failed(this.applied === undefined ? 'cannot reload the configuration yet (trying again)' : 'the configuration changed and cannot be reloaded (trying again)', error);
      return undefined;
    } finally {
      await session?.close();
    }
  }

  /**
   * After a reload in which the TLS Secret's certificate or key changed: undefined when the server
   * presents the Secret's certificate (or the look cannot tell: no TLS listener answered, which is
   * logged at debug), else why it does not. Tells the metrics what it saw
   * (archiver_tls_certificate_current, archiver_tls_certificate_expiry_timestamp_seconds).
   */
  private async renewalRefused(files: ConfigFiles, changed: readonly string[], session: PostgresSession): Promise<string | undefined> {
    const certificateName = `${TLS_FILES_PREFIX}${TLS_SECRET_FILES.certificate}`;
    const keyName = `${TLS_FILES_PREFIX}${TLS_SECRET_FILES.key}`;
    const certificate = files.get(certificateName);
    const key = files.get(keyName);
    if (certificate === undefined || key === undefined || !(changed.includes(certificateName) || changed.includes(keyName))) return undefined;
    // The reload is done: nothing here may count the look as failed (it would reload again).
    let served: { der: Buffer; expiresAt: number };
    try {
      const address = this.props.tlsAddress ?? { host: '127.0.0.1', port: Number((await session.rows<{ port: string }>("SELECT current_setting('port') AS port"))[0].port) };
      const der = await servedCertificateDer(address.host, address.port);
      served = { der, expiresAt: Math.round(Date.parse(new X509Certificate(der).validTo) / 1000) };
    } catch (error) {
      this.props.log.debug('cannot see which TLS certificate the server presents after the reload', { error: (error as Error).message });
      return undefined;
    }
    const expected = firstCertificateDer(certificate);
    const current = expected !== undefined && served.der.equals(expected);
    (this.props.metrics ?? NO_METRICS).tlsCertificateSeen({ current, expiresAt: served.expiresAt });
    if (current) return undefined;
    return certificatePairProblem(certificate, key) ?? "the server could not load the Secret's certificate and key (its log says why)";
  }

  /** The TLS files' read failure, logged once until it changes or they read again. */
  private tlsFailing: string | undefined;

  private tlsFailed(error: Error | undefined): void {
    const message = error?.message;
    if (message !== undefined && message !== this.tlsFailing) {
      this.props.log.warn('cannot read the TLS Secret\'s files: a renewed certificate is not reloaded until they read again; the ConfigMap is still watched', { error: message, directory: this.props.tlsDir });
    }
    this.tlsFailing = message;
  }

  private failed(msg: string, error: unknown): void {
    const message = (error as Error)?.message ?? String(error);
    if (this.failing === message) return;
    this.failing = message;
    // A server that does not answer yet is how every pod starts.
    this.props.log.log(this.applied === undefined ? 'debug' : 'warn', msg, { error: message });
  }
}

/** The entry point the background archiver starts (from lib/scheduler.cjs, which has pg). */
export function startConfigReloadWatcher(props: ConfigReloadWatcherProps): ConfigReloadWatcher {
  const watcher = new ConfigReloadWatcher(props);
  watcher.start();
  return watcher;
}
