/**
 * What the background archiver tells its metrics (metrics.ts, in lib/metrics.cjs with prom-client):
 * one call per event, from the pusher, the prefetcher, the request handlers and the backup
 * scheduler. This module has no dependencies, so that the WAL calls' bundle never loads
 * prom-client: without metrics (a background archiver started by a call) the recorder is
 * NO_METRICS. A recorder never throws.
 */

export type WalOperation = 'push' | 'fetch';
export type FetchSource = 'prefetch' | 'archive';

export interface MetricsRecorder {
  /** A WAL file archived by the background archiver (stored, or found archived with the same contents). */
  walPushed(event: { readonly ahead: boolean; readonly bytes: number; readonly seconds: number }): void;
  /** A push that failed; `reason` is the error's name. */
  walPushFailed(reason: string): void;
  /** An archive_command call answered by a marker: the file had been pushed ahead. */
  walPushAheadHit(): void;
  /** A call the background archiver answered, from its request to its answer. */
  walCall(operation: WalOperation, seconds: number): void;
  /** A WAL file handed to restore_command. */
  walFetched(source: FetchSource): void;
  walFetchNotFound(): void;
  walFetchFailed(reason: string): void;
  /** A WAL file downloaded ahead of restore_command. */
  walPrefetched(): void;
  /** A base backup this sidecar started ended. */
  backupEnded(reason: string, outcome: 'taken' | 'failed'): void;
  /** A look of the role label (daemon/role-label.ts) that could not read or patch the pod. */
  roleLabelFailed(): void;
  /** The sidecar reloaded the server's configuration (`pendingRestart`: parameters that wait for a restart), or failed to. */
  configReloaded(outcome: { readonly applied: true; readonly pendingRestart: number } | { readonly applied: false }): void;
  /** After a reload the TLS Secret's files took part in: whether the server presents the Secret's certificate, and when the one it presents expires (Unix seconds). */
  tlsCertificateSeen(seen: { readonly current: boolean; readonly expiresAt: number }): void;
}

export const NO_METRICS: MetricsRecorder = {
  walPushed: () => undefined,
  walPushFailed: () => undefined,
  walPushAheadHit: () => undefined,
  walCall: () => undefined,
  walFetched: () => undefined,
  walFetchNotFound: () => undefined,
  walFetchFailed: () => undefined,
  walPrefetched: () => undefined,
  backupEnded: () => undefined,
  roleLabelFailed: () => undefined,
  configReloaded: () => undefined,
  tlsCertificateSeen: () => undefined,
};

/** An error's name as a label value: a class name (`StorageError`), never a message. */
export function errorReason(error: unknown): string {
  const name = (error as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && /^[A-Za-z][A-Za-z0-9]{0,63}$/.test(name) ? name : 'Error';
}
