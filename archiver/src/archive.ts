/**
 * The archive: WAL files as self-describing objects (envelope.ts) under `wal/`, and the identity
 * of the database cluster that owns the archive in `archive.json`. This is where the
 * archive_command contract is kept:
 *
 * - `push` resolves only once the object is durably stored (the storage's put resolves then);
 * - pushing a file whose identical content is already archived succeeds (a retry after a crash);
 * - pushing a different file under an archived name fails with ArchiveConflictError, checked here
 *   by comparing the bytes — never left to the server, since S3 clones ignore If-None-Match;
 * - an object under the name that fails its own verification (truncated, wrong size or CRC-32, a
 *   frame that does not decompress) is a copy of nothing — an upload cut short by a crash — and
 *   is replaced from the local file, with a warning; an object this archiver cannot read but
 *   which may be intact (a newer format, another tool's file) is never replaced;
 * - pushing into an archive that another cluster (system identifier) started fails with
 *   ForeignArchiveError;
 * - `fetch` verifies the checksum and size of the original bytes before anything is handed to
 *   PostgreSQL, and a missing file is WalNotFoundError.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ARCHIVE_LAYOUT, walKey } from '../../contract';
import { WorkerPool } from './worker-pool';
import { Codecs, EncodedFile, decodeObject, encodeWalFile } from './wal-object';
import { CompressionName } from './compression';
import { checksum } from './envelope';
import { ArchiveConflictError, CorruptObjectError, ForeignArchiveError, ObjectExistsError, ObjectNotFoundError, WalNotFoundError } from './errors';
import { Logger } from './logger';
import { writeFileAtomically } from './write-file-atomically';
import type { TimelineSurvey } from './recovery';
import { OperationOptions, Storage } from './storage/storage';
import { DEFAULT_WAL_SEGMENT_SIZE, SegmentHeader, readControlFileIdentifier, requireWalFileName, segmentHeaderOf, walFileKind } from './wal-names';

export { walKey };
export const IDENTITY_KEY = ARCHIVE_LAYOUT.identity;
export const WAL_PREFIX = ARCHIVE_LAYOUT.wal;

/** How long a listing of WAL names stands in for HEAD requests. */
export const LISTING_TTL_MS = 2000;

/** Names sharing their first 16 characters (timeline, log) are listed together. */
function listingGroup(name: string): string {
  return name.slice(0, 16);
}

/** What `archive.json` records. */
export interface ArchiveIdentity {
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
  readonly createdAt?: string;
}

export interface PushResult {
  readonly name: string;
  /** `stored`: written now; `already-archived`: identical content was there. */
  readonly status: 'stored' | 'already-archived';
  readonly bytes: number;
  readonly storedBytes: number;
}

export interface FetchResult {
  readonly name: string;
  readonly bytes: number;
  readonly storedBytes: number;
}

export interface ArchiveOptions {
  readonly storage: Storage;
  readonly compression: CompressionName;
  readonly compressionLevel?: number;
  /**
   * Worker threads for hashing and (de)compression.
   * @default - the work runs on the calling thread
   */
  readonly pool?: WorkerPool;
  /** Where repairs are reported. @default - stderr at level info */
  readonly log?: Logger;
}

export class Archive {
  public readonly storage: Storage;
  private readonly compression: CompressionName;
  private readonly compressionLevel: number | undefined;
  private readonly codecs = new Codecs();
  private readonly pool: WorkerPool | undefined;
  private readonly log: Logger;
  /** The identity once read or written; the archive's identity never changes. */
  private identity: Promise<ArchiveIdentity | undefined> | undefined;
  /** Recent listings of WAL names, per 16-character name prefix (timeline and log: 256 segments). */
  private readonly listings = new Map<string, { readonly at: number; readonly names: Set<string> }>();

  constructor(options: ArchiveOptions) {
    this.storage = options.storage;
    this.compression = options.compression;
    this.compressionLevel = options.compressionLevel;
    this.pool = options.pool;
    this.log = options.log ?? new Logger();
    // Fail now on a codec that cannot load, not at the first push.
    this.codecs.get(this.compression, this.compressionLevel);
  }

  private encode(file: string): Promise<EncodedFile> {
    return this.pool ? this.pool.encode(file) : encodeWalFile(file, this.codecs.get(this.compression, this.compressionLevel));
  }

  /** Releases the storage client and the worker threads. */
  async close(): Promise<void> {
    await this.pool?.close();
    await this.storage.close();
  }

  get location(): string {
    return this.storage.location;
  }

  /** Archives the WAL file at `file` (absolute, or relative to the working directory). */
  async push(file: string): Promise<PushResult> {
    const name = requireWalFileName(path.basename(file));
    // Already there (a retry, or a background archiver restarted mid-backlog)? Compare instead
    // of compressing it again for nothing.
    if (await this.exists(name)) return this.compareExisting(name, file);
    const encoded = await this.encode(file);
    const storedBytes = encoded.body.length;
    try {
      await this.checkIdentity(encoded.segmentHeader, file);
      await this.storage.put(walKey(name), encoded.body, { ifAbsent: true });
    } catch (error) {
      if (error instanceof ObjectExistsError) return this.compareExisting(name, file);
      throw error;
    } finally {
      // The put has settled (the storage wrapper waits for each attempt to end): nothing reads
      // the body any more, and its memory goes back to the workers for the next segment.
      this.pool?.recycle(encoded.body);
    }
    this.listings.get(listingGroup(name))?.names.add(name);
    return { name, status: 'stored', bytes: encoded.size, storedBytes };
  }

  /**
   * `name` is archived already: succeed when the archived file is byte for byte this one (a
   * retry after a crash), refuse otherwise; replace it when it is damaged (see above). Rare, so
   * it pays for a download and a full compare.
   */
  private async compareExisting(name: string, file: string): Promise<PushResult> {
    const local = await fs.readFile(file);
    // A file of another cluster is refused as such, not as a mere conflict.
    await this.checkIdentity(segmentHeaderOf(name, local), file);
    let archived: Buffer;
    let storedBytes: number;
    try {
      ({ data: archived, storedBytes } = await this.fetchData(name));
    } catch (error) {
      if (!(error instanceof CorruptObjectError)) throw error;
      return this.replaceDamaged(name, file, error);
    }
    if (!archived.equals(local)) {
      throw new ArchiveConflictError(
        `${name} is already archived at ${this.location} with different contents (archived: ${archived.length} bytes, CRC-32 ${checksum(archived)}; this file: ${local.length} bytes, CRC-32 ${checksum(local)}); refusing to overwrite. ` +
          'Another cluster may be archiving into the same location, or this cluster was restored without a new timeline.',
      );
    }
    return { name, status: 'already-archived', bytes: local.length, storedBytes };
  }

  /** Overwrites the damaged object under `name` with the local file, whose identity was checked. */
  private async replaceDamaged(name: string, file: string, damage: CorruptObjectError): Promise<PushResult> {
    const encoded = await this.encode(file);
    const storedBytes = encoded.body.length;
    try {
      await this.storage.put(walKey(name), encoded.body);
    } finally {
      this.pool?.recycle(encoded.body);
    }
    this.log.warn('replaced a damaged object with the local file', { wal: name, location: this.location, damage: damage.message });
    return { name, status: 'stored', bytes: encoded.size, storedBytes };
  }

  /**
   * Lists, in one request per 256 segments, which of `names` the archive holds, so that a
   * backlog's pushes skip their HEAD request each (on a single-threaded S3 server such as
   * s3rver, a tenth of the work). A listing is trusted for LISTING_TTL_MS; like HEAD-then-PUT,
   * it cannot stop a writer that creates the same name in between, which servers that honour
   * If-None-Match refuse anyway.
   */
  async preloadExistence(names: readonly string[]): Promise<void> {
    const groups = new Set(names.filter((n) => walFileKind(n) !== 'history').map(listingGroup));
    await Promise.all(
      [...groups].map(async (group) => {
        const listing = this.listings.get(group);
        if (listing && Date.now() - listing.at < LISTING_TTL_MS) return;
        const at = Date.now();
        const objects = await this.storage.list(walKey(group));
        this.listings.set(group, { at, names: new Set(objects.map((o) => o.key.slice(WAL_PREFIX.length))) });
      }),
    );
  }

  private async exists(name: string): Promise<boolean> {
    const listing = this.listings.get(listingGroup(name));
    if (listing && Date.now() - listing.at < LISTING_TTL_MS) return listing.names.has(name);
    return (await this.storage.stat(walKey(name))) !== undefined;
  }

  /** Restores `name` from the archive, verified, as a Buffer. */
  async fetchData(name: string, options: OperationOptions = {}): Promise<{ data: Buffer; storedBytes: number }> {
    const object = await this.getWalObject(name, options);
    const storedBytes = object.length;
    // The object is not used again: the worker pool may take its memory instead of a copy.
    return { data: await this.decode(object, `${walKey(name)} at ${this.location}`, true), storedBytes };
  }

  /**
   * Restores `name` to `destination`, written under a temporary name and renamed when complete
   * (not fsync'd: PostgreSQL's recovery and the spool's boot id cover a crash, see spool.ts). With
   * worker threads, the worker that decodes also writes: the 16 MiB never cross to the main
   * thread, whose collector would otherwise run for each of them.
   */
  async fetch(name: string, destination: string, options: OperationOptions = {}): Promise<FetchResult> {
    const object = await this.getWalObject(name, options);
    const storedBytes = object.length;
    const what = `${walKey(name)} at ${this.location}`;
    if (this.pool) return { name, bytes: await this.pool.decodeToFile(object, what, destination, true), storedBytes };
    const data = await decodeObject(object, what, this.codecs);
    await writeFileAtomically(destination, data, false);
    return { name, bytes: data.length, storedBytes };
  }

  /** The archived object of WAL file `name`; WalNotFoundError when there is none. */
  private async getWalObject(name: string, options: OperationOptions): Promise<Buffer> {
    try {
      return await this.storage.get(walKey(name), options);
    } catch (error) {
      if (error instanceof ObjectNotFoundError) throw new WalNotFoundError(name, this.location);
      throw error;
    }
  }

  /**
   * What the archive holds of segment `name`'s timeline from `name` on, for telling a gap from the
   * end of the archive (recovery.ts): whether `name` is listed, and the first later WAL file of
   * the timeline (segment, .partial or .backup: each means WAL of the timeline went past `name`).
   * One listing of the timeline's WAL; a failure is a StorageError, never "nothing later".
   */
  async surveyTimeline(name: string, options: OperationOptions = {}): Promise<TimelineSurvey> {
    const timeline = name.slice(0, 8);
    let listed = false;
    for (const { key } of await this.storage.list(walKey(timeline), options)) {
      const other = key.slice(WAL_PREFIX.length);
      const kind = walFileKind(other);
      // TTTTTTTT.history shares the prefix but is not WAL of the timeline.
      if (kind === undefined || kind === 'history') continue;
      if (other === name) listed = true;
      // Listed in key order: the first whose segment is past `name` is the first later file.
      else if (other.slice(0, 24) > name) return { listed, later: other };
    }
    return { listed, later: undefined };
  }

  /** Decodes an archived object and verifies the original's size and checksum. `consume`: the caller is done with `object` (WorkerPool.decode). */
  decode(object: Buffer, what: string, consume = false): Promise<Buffer> {
    return this.pool ? this.pool.decode(object, what, consume) : decodeObject(object, what, this.codecs);
  }

  /** The archive's identity, or undefined for an archive nobody has pushed to yet. */
  readIdentity(): Promise<ArchiveIdentity | undefined> {
    this.identity ??= this.storage.get(IDENTITY_KEY).then(
      (buffer) => JSON.parse(buffer.toString('utf8')) as ArchiveIdentity,
      (error) => {
        this.identity = undefined; // not cached: the first push creates it
        if (error instanceof ObjectNotFoundError) return undefined;
        throw error;
      },
    );
    return this.identity;
  }

  /** The WAL segment size of the archived cluster (for prefetch), or PostgreSQL's default. */
  async segmentSize(): Promise<number> {
    return (await this.readIdentity())?.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
  }

  /**
   * Records the cluster's system identifier on the first push; afterwards refuses files of
   * another cluster. The identifier comes from the segment's page header, or for other files
   * from pg_control next to pg_wal.
   */
  private async checkIdentity(header: SegmentHeader | undefined, file: string): Promise<void> {
    let systemIdentifier = header?.systemIdentifier;
    if (!systemIdentifier) {
      const control = await fs.readFile(path.join(path.dirname(path.resolve(file)), '..', 'global', 'pg_control')).catch(() => undefined);
      systemIdentifier = control && readControlFileIdentifier(control);
    }
    if (!systemIdentifier) return; // not a cluster's file (e.g. a hand-made history file): nothing to compare
    await this.claimIdentity(systemIdentifier, header?.segmentSize ?? DEFAULT_WAL_SEGMENT_SIZE);
  }

  /**
   * Makes the archive this cluster's: records its identity when the archive has none yet (the
   * first push or base backup), and refuses a cluster other than the one recorded with
   * ForeignArchiveError.
   */
  async claimIdentity(systemIdentifier: string, walSegmentSize: number): Promise<void> {
    let identity = await this.readIdentity();
    if (!identity) {
      const created: ArchiveIdentity = { systemIdentifier, walSegmentSize, createdAt: new Date().toISOString() };
      try {
        await this.storage.put(IDENTITY_KEY, Buffer.from(`${JSON.stringify(created, null, 2)}\n`), { ifAbsent: true });
        this.identity = Promise.resolve(created);
        return;
      } catch (error) {
        if (!(error instanceof ObjectExistsError)) throw error;
        identity = await this.readIdentity();
      }
    }
    if (identity && identity.systemIdentifier !== systemIdentifier) {
      throw new ForeignArchiveError(
        `the archive at ${this.location} belongs to another database cluster (system identifier ${identity.systemIdentifier}); this cluster is ${systemIdentifier}. ` +
          'This happens when a database name, prefix or bucket is reused, or a database was re-initialised on an empty volume. Archive it elsewhere (another prefix) or, if the old archive is no longer needed, remove it.',
      );
    }
  }
}

