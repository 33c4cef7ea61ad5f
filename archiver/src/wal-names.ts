/**
 * PostgreSQL's WAL file names: `TTTTTTTTLLLLLLLLSSSSSSSS` segments (timeline, log, segment),
 * `TTTTTTTT.history` timeline histories, `<segment>.XXXXXXXX.backup` backup labels and
 * `<segment>.partial` segments cut short by a promotion.
 */

const SEGMENT = /^[0-9A-F]{24}$/;
const HISTORY = /^[0-9A-F]{8}\.history$/;
const BACKUP = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
const PARTIAL = /^[0-9A-F]{24}\.partial$/;

import { UsageError } from './errors';

export type WalFileKind = 'segment' | 'history' | 'backup' | 'partial';

/** The kind of a WAL file name, or undefined when PostgreSQL would not archive such a name. */
export function walFileKind(name: string): WalFileKind | undefined {
  if (SEGMENT.test(name)) return 'segment';
  if (HISTORY.test(name)) return 'history';
  if (BACKUP.test(name)) return 'backup';
  if (PARTIAL.test(name)) return 'partial';
  return undefined;
}

export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;

/**
 * The segment after `name` on the same timeline. A "log" holds 4 GiB of WAL, i.e.
 * 2^32 / segmentSize segments (256 of 16 MiB).
 */
export function nextSegment(name: string, segmentSize: number = DEFAULT_WAL_SEGMENT_SIZE): string {
  if (!SEGMENT.test(name)) throw new Error(`not a WAL segment name: ${name}`);
  const segmentsPerLog = 0x1_0000_0000 / segmentSize;
  const timeline = name.slice(0, 8);
  let log = parseInt(name.slice(8, 16), 16);
  let segment = parseInt(name.slice(16, 24), 16) + 1;
  if (segment >= segmentsPerLog) {
    segment = 0;
    log += 1;
  }
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${timeline}${hex(log)}${hex(segment)}`;
}

/** The next `count` segments after `name`. */
export function followingSegments(name: string, count: number, segmentSize?: number): string[] {
  const out: string[] = [];
  let current = name;
  for (let i = 0; i < count; i++) {
    current = nextSegment(current, segmentSize);
    out.push(current);
  }
  return out;
}

/**
 * The order in which PostgreSQL archives ready files (pgarch.c): timeline history files first,
 * then the oldest name.
 */
export function archiveOrder(a: string, b: string): number {
  const ah = a.endsWith('.history');
  const bh = b.endsWith('.history');
  if (ah !== bh) return ah ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The first page of every segment starts with XLogLongPageHeaderData: magic (2 bytes), info (2),
 * timeline (4), page address (8), remaining length (4, then 4 of padding), system identifier (8,
 * at offset 24), segment size (4, at 32), block size (4, at 36). Little-endian on every platform
 * PostgreSQL images ship for.
 */
export interface SegmentHeader {
  readonly systemIdentifier: string;
  readonly segmentSize: number;
}

export function readSegmentHeader(segment: Buffer): SegmentHeader | undefined {
  if (segment.length < 40) return undefined;
  const XLP_LONG_HEADER = 0x0002;
  if ((segment.readUInt16LE(2) & XLP_LONG_HEADER) === 0) return undefined;
  const segmentSize = segment.readUInt32LE(32);
  // Valid sizes are powers of two from 1 MiB to 1 GiB.
  if (segmentSize < 1 << 20 || segmentSize > 1 << 30 || (segmentSize & (segmentSize - 1)) !== 0) return undefined;
  return { systemIdentifier: segment.readBigUInt64LE(24).toString(), segmentSize };
}

/** The page header of a segment or `.partial` named `name`, from its first bytes; undefined for other files. */
export function segmentHeaderOf(name: string, firstBytes: Buffer): SegmentHeader | undefined {
  const kind = walFileKind(name);
  return kind === 'segment' || kind === 'partial' ? readSegmentHeader(firstBytes) : undefined;
}

/** `name` when it is a WAL file's (what archive_command passes as %p), else the UsageError wal-push reports. */
export function requireWalFileName(name: string): string {
  if (!walFileKind(name)) {
    throw new UsageError(`wal-push: ${JSON.stringify(name)} is not a WAL file name (segment, .history, .backup or .partial); archive_command passes %p`);
  }
  return name;
}

/** pg_control begins with the system identifier (uint64). */
export function readControlFileIdentifier(pgControl: Buffer): string | undefined {
  if (pgControl.length < 8) return undefined;
  return pgControl.readBigUInt64LE(0).toString();
}
