/**
 * The backup lease: one object in the archive, `basebackups/.lease`, that a member of the
 * database holds while its scheduler takes a base backup (and runs retention after it), so that
 * two members never do at once — also while a pod restarts, or when two members both believe
 * they are the one (backup-duty.ts decides who should; the lease makes sure only one does).
 *
 * The object is JSON (LEASE_FORMAT 1):
 *
 *   { "format": 1, "member": "db-0", "token": "<random hex>", "purpose": "schedule",
 *     "acquiredAt": "<ISO>", "renewedAt": "<ISO>", "expiresAt": "<ISO>" }
 *
 * 1. Read it. None: take it. One that expired, or that an earlier run of this very member left
 *    (a StatefulSet runs one pod per name: it was acquired before this process started), or one
 *    that cannot be read and was last written over LEASE_TTL_MS ago: replace it — read it again,
 *    delete it only if unchanged, then take it. Any other: held, skip.
 * 2. Take it: put with `ifAbsent` (S3 If-None-Match, GCS ifGenerationMatch=0, local link()), so
 *    that of two members taking it at once one gets ObjectExistsError; then read it back and
 *    go on only if it holds our token (a server that ignores the precondition, as s3rver and the
 *    GCS emulator do, lets the last writer win: the others see its token and skip).
 * 3. While the backup runs, renew it every LEASE_RENEW_MS (expiresAt = now + LEASE_TTL_MS), after
 *    checking it is still ours: a holder that dies leaves a lease that expires within LEASE_TTL_MS.
 * 4. Release: delete it if it still holds our token.
 *
 * `backup-list`, `delete` (an object outside any `<name>/` directory: kept, not an unfinished
 * backup) and `wal-verify` ignore it. A `backup-push` run by hand does not take it.
 */
import { randomBytes } from 'node:crypto';
import { ARCHIVE_LAYOUT } from '../../../contract';
import { ObjectExistsError, ObjectNotFoundError } from '../errors';
import type { Logger } from '../logger';
import type { Storage } from '../storage/storage';

export const LEASE_KEY = `${ARCHIVE_LAYOUT.basebackups}.lease`;
export const LEASE_FORMAT = 1;
/** A lease not renewed for this long is free: a holder that died holds others back at most this long. */
export const LEASE_TTL_MS = 10 * 60_000;
/** How often a holder renews its lease: a few renewals may fail (storage down) before it expires. */
export const LEASE_RENEW_MS = 2 * 60_000;

export interface Lease {
  readonly format: typeof LEASE_FORMAT;
  /** The holder: its POD_NAME. */
  readonly member: string;
  /** Random, one per acquisition: tells this holding from any other, the same member's included. */
  readonly token: string;
  /** What it is held for: `at-ready` or `schedule`. */
  readonly purpose: string;
  readonly acquiredAt: string;
  readonly renewedAt: string;
  readonly expiresAt: string;
}

/** The lease as read from the archive: `lease` undefined when the object is not a lease this archiver can read. */
export interface FoundLease {
  readonly lease: Lease | undefined;
  readonly lastModified: Date;
  readonly body: Buffer;
}

export interface LeaseCandidate {
  /** Its POD_NAME. */
  readonly member: string;
  /** When its process (scheduler) started: a lease of the same member acquired before is an earlier run's. */
  readonly since: Date;
}

export type LeaseDecision =
  | { readonly kind: 'take' }
  | { readonly kind: 'replace'; readonly why: string }
  | { readonly kind: 'held'; readonly by: string; readonly until: Date };

export function encodeLease(lease: Lease): Buffer {
  return Buffer.from(`${JSON.stringify(lease, null, 2)}\n`);
}

/** The lease in `body`, or undefined when it is not one (another format, damaged). */
export function decodeLease(body: Buffer): Lease | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as Partial<Lease>;
    const times = [value.acquiredAt, value.renewedAt, value.expiresAt];
    if (value.format !== LEASE_FORMAT || typeof value.member !== 'string' || typeof value.token !== 'string' || times.some((t) => typeof t !== 'string' || Number.isNaN(Date.parse(t)))) return undefined;
    return value as Lease;
  } catch {
    return undefined;
  }
}

/** Whether `candidate` may take the lease now (see the module's comment, step 1). */
export function decideLease(found: FoundLease | undefined, candidate: LeaseCandidate, now: Date, ttlMs: number = LEASE_TTL_MS): LeaseDecision {
  if (found === undefined) return { kind: 'take' };
  const { lease } = found;
  if (lease === undefined) {
    const until = new Date(found.lastModified.getTime() + ttlMs);
    return until.getTime() <= now.getTime() ? { kind: 'replace', why: `unreadable, last written ${found.lastModified.toISOString()}` } : { kind: 'held', by: 'an unreadable lease', until };
  }
  if (lease.member === candidate.member && Date.parse(lease.acquiredAt) < candidate.since.getTime()) {
    return { kind: 'replace', why: `left by an earlier run of ${lease.member} (acquired ${lease.acquiredAt})` };
  }
  const until = new Date(lease.expiresAt);
  if (until.getTime() <= now.getTime()) return { kind: 'replace', why: `held by ${lease.member}, expired at ${lease.expiresAt}` };
  return { kind: 'held', by: lease.member, until };
}

/** The lease object, or undefined when there is none. */
export async function readLease(storage: Storage): Promise<FoundLease | undefined> {
  const info = await storage.stat(LEASE_KEY);
  if (info === undefined) return undefined;
  try {
    const body = await storage.get(LEASE_KEY);
    return { lease: decodeLease(body), lastModified: info.lastModified, body };
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined;
    throw error;
  }
}

export interface LeaseOptions {
  readonly purpose: string;
  /** @default () => new Date() */
  readonly clock?: () => Date;
  /** @default LEASE_TTL_MS */
  readonly ttlMs?: number;
  /** @default LEASE_RENEW_MS */
  readonly renewMs?: number;
  readonly log: Logger;
}

export type Acquired = { readonly acquired: true; readonly lease: BackupLease; readonly replaced?: string } | { readonly acquired: false; readonly holder: string; readonly why: string };

/** A lease this process holds: renewed until released. */
export class BackupLease {
  /** Takes the lease for `candidate` if it is free (steps 1 and 2); starts renewing it. */
  static async acquire(storage: Storage, candidate: LeaseCandidate, options: LeaseOptions): Promise<Acquired> {
    const clock = options.clock ?? (() => new Date());
    const ttlMs = options.ttlMs ?? LEASE_TTL_MS;
    const found = await readLease(storage);
    const decision = decideLease(found, candidate, clock(), ttlMs);
    if (decision.kind === 'held') return { acquired: false, holder: decision.by, why: `the backup lease is held by ${decision.by} until ${decision.until.toISOString()}` };
    if (decision.kind === 'replace') {
      // Delete only what was judged: a lease taken meanwhile by another member stays.
      const again = await readLease(storage);
      if (again === undefined || !again.body.equals(found!.body)) return { acquired: false, holder: again?.lease?.member ?? 'another member', why: 'the backup lease changed while it was being replaced' };
      await storage.delete([LEASE_KEY]);
    }
    const now = clock();
    const lease: Lease = {
      format: LEASE_FORMAT,
      member: candidate.member,
      token: randomBytes(16).toString('hex'),
      purpose: options.purpose,
      acquiredAt: now.toISOString(),
      renewedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
    };
    try {
      await storage.put(LEASE_KEY, encodeLease(lease), { ifAbsent: true });
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error;
      const holder = (await readLease(storage).catch(() => undefined))?.lease?.member ?? 'another member';
      return { acquired: false, holder, why: `the backup lease was taken by ${holder} at the same moment` };
    }
    const written = await readLease(storage);
    if (written?.lease?.token !== lease.token) {
      const holder = written?.lease?.member ?? 'another member';
      return { acquired: false, holder, why: `the backup lease was taken by ${holder} at the same moment` };
    }
    const held = new BackupLease(storage, lease, clock, ttlMs, options.log);
    held.keepAlive(options.renewMs ?? LEASE_RENEW_MS);
    return { acquired: true, lease: held, ...(decision.kind === 'replace' ? { replaced: decision.why } : {}) };
  }

  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private lost = false;

  private constructor(
    private readonly storage: Storage,
    private current: Lease,
    private readonly clock: () => Date,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  get member(): string {
    return this.current.member;
  }

  get token(): string {
    return this.current.token;
  }

  /** Step 3: pushes the expiry back, if the lease is still ours. False once it is not. */
  async renew(): Promise<boolean> {
    if (this.lost) return false;
    const found = await readLease(this.storage);
    if (found?.lease?.token !== this.current.token) {
      this.lost = true;
      this.log.warn('the backup lease is no longer held by this member: another may start a backup', { lease_holder: found?.lease?.member ?? 'none' });
      return false;
    }
    const now = this.clock();
    const renewed: Lease = { ...this.current, renewedAt: now.toISOString(), expiresAt: new Date(now.getTime() + this.ttlMs).toISOString() };
    await this.storage.put(LEASE_KEY, encodeLease(renewed));
    this.current = renewed;
    return true;
  }

  /** Step 4: stops renewing and deletes the lease if it is still ours. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.renewing;
    if (this.lost) return;
    const found = await readLease(this.storage);
    if (found?.lease?.token === this.current.token) await this.storage.delete([LEASE_KEY]);
    this.lost = true;
  }

  private keepAlive(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.renewing) return;
      this.renewing = this.renew()
        .then(
          (held) => {
            if (!held && this.timer) clearInterval(this.timer);
          },
          (error: unknown) => this.log.warn('could not renew the backup lease; trying again', { error: (error as Error).message }),
        )
        .finally(() => (this.renewing = undefined));
    }, intervalMs);
    this.timer.unref();
  }
}
