/**
 * How a base backup's files are cut into parts: pure, so that it is specified by itself. Parts
 * are what run in parallel (on `concurrency` worker threads) and what a restore downloads in
 * parallel, so no part should be much larger than the others: a file larger than a part is cut
 * into ranges of exactly `partBytes`, one part each, which different threads read, compress,
 * restore and write at once. A database is mostly a few large tables (a 1 GiB relation segment
 * would otherwise be one thread's work while the others wait).
 */
import { DataEntry, PG_CONTROL } from './data-directory';

/**
 * File bytes per part. Small enough that a database of a few GiB spreads evenly over the threads
 * (the last part to finish is at most this much behind the others), large enough that a 1 TiB
 * database stays at ~16k objects.
 */
export const DEFAULT_PART_BYTES = 64 * 1024 * 1024;

/** Ranges start on a multiple of the part size, which must be whole pages (and so whole blocks). */
export const PART_ALIGNMENT = 8192;

/** A byte range of a file too large for one part. */
export interface FileRange {
  readonly offset: number;
  readonly length: number;
  /** The file's size at the walk: the ranges cover exactly [0, fileSize). */
  readonly fileSize: number;
}

/** What a part's tar holds one entry for: a directory, a whole file, or a range of a file. */
export interface PlannedPiece {
  readonly entry: DataEntry;
  /** Absent: the whole file, read up to the size it has when it is opened. */
  readonly range?: FileRange;
}

/**
 * Directories and files in parts of about `partBytes` of file data each, in path order:
 * directories go into the first part; a file of at most `partBytes` goes whole into the current
 * part, or starts the next one when it would overflow it; a larger file is cut into ranges of
 * `partBytes` (the last one shorter), each a part of its own. `global/pg_control` is left out: the
 * caller stores it after every other part, in a part of its own.
 */
export function planParts(entries: readonly DataEntry[], partBytes: number = DEFAULT_PART_BYTES): PlannedPiece[][] {
  if (!Number.isInteger(partBytes) || partBytes < PART_ALIGNMENT || partBytes % PART_ALIGNMENT !== 0) {
    throw new RangeError(`a part's size must be a positive multiple of ${PART_ALIGNMENT} bytes, got ${partBytes}`);
  }
  const parts: PlannedPiece[][] = [[]];
  let bytes = 0;
  const startPart = () => {
    if (parts[parts.length - 1].some((piece) => piece.entry.type === 'file')) {
      parts.push([]);
      bytes = 0;
    }
  };
  for (const entry of entries) {
    if (entry.type === 'directory') {
      parts[0].push({ entry });
      continue;
    }
    if (entry.path === PG_CONTROL) continue;
    if (entry.size > partBytes) {
      startPart();
      for (let offset = 0; offset < entry.size; offset += partBytes) {
        startPart();
        parts[parts.length - 1].push({ entry, range: { offset, length: Math.min(partBytes, entry.size - offset), fileSize: entry.size } });
        bytes = partBytes;
      }
      continue;
    }
    if (bytes > 0 && bytes + entry.size > partBytes) startPart();
    parts[parts.length - 1].push({ entry });
    bytes += entry.size;
  }
  return parts.filter((part) => part.length > 0);
}

/** `parts/0001.tar`: the key of part `index` (0-based) inside the backup. */
export function partKey(index: number): string {
  return `parts/${String(index + 1).padStart(4, '0')}.tar`;
}
