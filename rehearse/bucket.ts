/**
 * The rehearsal's bucket as the checks read it: s3rver's filesystem store (one file
 * `<last key part>._S3rver_object` per object, in directories of the key's other parts), read from
 * the host. Reading the store, not asking the archiver, keeps the archiver out of its own checks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nextSegment } from '../archiver/src/wal-names';

const OBJECT_SUFFIX = '._S3rver_object';

/** The keys of the objects under `prefix` (no leading or trailing slash) in `bucket`, sorted. */
export function objectKeys(dataDirectory: string, bucket: string, prefix: string): string[] {
  const root = path.join(dataDirectory, bucket, prefix);
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(OBJECT_SUFFIX))
    .map((f) => `${prefix}/${f.slice(0, -OBJECT_SUFFIX.length)}`)
    .sort();
}

/** `s3://bucket/path` → its bucket and path. */
export function parseRepository(repository: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/(.+?)\/*$/.exec(repository);
  if (!match) throw new Error(`rehearse: ARCHIVER_REPOSITORY ${repository}: the rehearsal plays an S3 archive only (s3://bucket/path)`);
  return { bucket: match[1], prefix: match[2] };
}

/** The WAL segment names of one timeline from `first` to `last`, both included (16 MiB segments). */
export function segmentRange(first: string, last: string): string[] {
  if (last.slice(0, 8) !== first.slice(0, 8)) throw new Error(`segmentRange: ${first} and ${last} are on different timelines`);
  if (last < first) return [];
  const names = [first];
  while (names[names.length - 1] !== last) names.push(nextSegment(names[names.length - 1]));
  return names;
}
