/**
 * How a base backup's files are cut into parts: pure, so that it is specified by itself. Parts
 * are what run in parallel (one worker thread each) and what a restore downloads in parallel.
 */
import { DataEntry, PG_CONTROL } from './data-directory';

export const DEFAULT_PART_BYTES = 256 * 1024 * 1024;

/**
 * Directories and files in parts of about `partBytes` of file data each (a larger file has a part
 * to itself), in path order; directories go into the first part. `global/pg_control` is left out:
 * the caller stores it after every other part, in a part of its own.
 */
export function planParts(entries: readonly DataEntry[], partBytes: number = DEFAULT_PART_BYTES): DataEntry[][] {
  const parts: DataEntry[][] = [[]];
  let bytes = 0;
  for (const entry of entries) {
    if (entry.type === 'directory') {
      parts[0].push(entry);
      continue;
    }
    if (entry.path === PG_CONTROL) continue;
    const current = parts[parts.length - 1];
    if (bytes > 0 && bytes + entry.size > partBytes) {
      parts.push([entry]);
      bytes = entry.size;
    } else {
      current.push(entry);
      bytes += entry.size;
    }
  }
  return parts.filter((part) => part.length > 0);
}

/** `parts/0001.tar`: the key of part `index` (0-based) inside the backup. */
export function partKey(index: number): string {
  return `parts/${String(index + 1).padStart(4, '0')}.tar`;
}
