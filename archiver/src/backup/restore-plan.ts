/**
 * What a restore writes, part by part: pure, over the manifests of the backup and, for a delta,
 * of its chain (delta-chain.ts, the full backup first). Every file of the backup restored comes
 * from one backup of the chain stored whole — the newest that holds it whole — then the page
 * deltas of the later backups, in chain order; a file that none of them holds whole starts empty
 * (its first delta was taken against a base without it and holds every page). Everything else in
 * the chain's parts is skipped, and a part with nothing to restore is not downloaded.
 *
 * The layers run one after the other (the chain's order is the order of the writes to a file);
 * the parts of a layer run in parallel.
 */
import { CorruptObjectError } from '../errors';
import { PG_CONTROL } from './data-directory';
import { BackupManifest, ManifestDelta, ManifestFile, combinedRanges } from './manifest';

/** One tar entry a part holds: a whole file, a range of one, or a page delta of either. */
export interface ExpectedPiece {
  readonly path: string;
  /** Bytes of the entry (a delta: of its blob). */
  readonly size: number;
  readonly mode: number;
  readonly mtime: number;
  /** CRC-32 of the entry's bytes. */
  readonly checksum: string;
  /** A range: where it goes in the file, and the whole file's size. */
  readonly offset?: number;
  readonly fileSize?: number;
  /** A page-delta blob (page-delta.ts), not the file's bytes. */
  readonly delta?: boolean;
  /** write: lay the file (or range) down; apply: apply the blob onto it; skip: not needed. */
  readonly action: 'write' | 'apply' | 'skip';
  /**
   * The last write to this file in the chain: it gets its mode and time now (a range: once every
   * range is written), and its fsync, which also syncs what earlier layers wrote to it.
   */
  readonly final?: boolean;
}

export interface RestoreLayer {
  readonly backup: BackupManifest;
  /** Per part of `backup` (index into its `parts`): what it holds; absent: nothing to restore from it. */
  readonly parts: ReadonlyMap<number, readonly ExpectedPiece[]>;
  /** Bytes written or applied from this layer. */
  readonly bytes: number;
}

export interface RestorePlan {
  readonly layers: readonly RestoreLayer[];
  /** Files restored as ranges: their time is set once every layer is done. */
  readonly rangedFiles: readonly { readonly path: string; readonly mtime: number }[];
  readonly bytes: number;
}

type Entry = { readonly kind: 'file'; readonly file: ManifestFile } | { readonly kind: 'delta'; readonly file: ManifestDelta };

/** `chain`: the full backup first, the one restored last (a full backup: a chain of one). */
export function planRestore(chain: readonly BackupManifest[]): RestorePlan {
  const last = chain.length - 1;
  const entriesOf = chain.map((backup) => {
    const map = new Map<string, Entry>();
    for (const file of backup.files) map.set(file.path, { kind: 'file', file });
    for (const file of backup.deltas ?? []) map.set(file.path, { kind: 'delta', file });
    return map;
  });
  // For each file of the backup restored: which layer writes it whole (-1: none), which apply,
  // and which of those writes it last (its mode, time and fsync then).
  const source = new Map<string, number>();
  const applies = new Map<string, Set<number>>();
  const finalLayer = new Map<string, number>();
  for (const path of entriesOf[last].keys()) {
    const layers = new Set<number>();
    let k = last;
    let from = -1;
    for (; k >= 0; k--) {
      const entry = entriesOf[k].get(path);
      if (!entry) break;
      if (entry.kind === 'file') {
        from = k;
        break;
      }
      if (!unchangedDelta(entry.file, k > 0 ? entriesOf[k - 1].get(path) : undefined)) layers.add(k);
    }
    source.set(path, from);
    applies.set(path, layers);
    finalLayer.set(path, Math.max(from, ...layers));
  }
  let total = 0;
  const layers = chain.map((backup, k): RestoreLayer => {
    const parts = new Map<number, ExpectedPiece[]>();
    let bytes = 0;
    const add = (part: number, piece: ExpectedPiece) => {
      if (!backup.parts[part]) throw new CorruptObjectError(`the manifest of ${backup.name} puts ${piece.path} in part ${part}, which it does not list`);
      const list = parts.get(part) ?? [];
      parts.set(part, list);
      list.push(piece);
      if (piece.action !== 'skip') bytes += piece.size;
    };
    for (const entry of entriesOf[k].values()) {
      const { file } = entry;
      const action = entry.kind === 'file' ? (source.get(file.path) === k ? 'write' : 'skip') : applies.get(file.path)?.has(k) ? 'apply' : 'skip';
      const final = action !== 'skip' && k === finalLayer.get(file.path);
      // The last write to a file gives it the mode and time of the backup restored.
      const { mode, mtime } = final ? entriesOf[last].get(file.path)!.file : file;
      const common = { path: file.path, mode, mtime, action, ...(final ? { final } : {}), ...(entry.kind === 'delta' ? { delta: true } : {}) } as const;
      if (!file.ranges) {
        add(file.part, { ...common, size: entry.kind === 'delta' ? entry.file.blobSize : file.size, checksum: file.checksum });
        continue;
      }
      checkRanges(backup, entry);
      for (const range of file.ranges) add(range.part, { ...common, size: range.size, checksum: range.checksum, offset: range.offset, fileSize: file.size });
    }
    // A part that holds only what is skipped is not downloaded.
    for (const [part, pieces] of parts) if (pieces.every((piece) => piece.action === 'skip')) parts.delete(part);
    total += bytes;
    return { backup, parts, bytes };
  });
  const rangedFiles = [...entriesOf[last].values()].filter(({ file }) => file.ranges).map(({ file }) => ({ path: file.path, mtime: file.mtime }));
  return { layers, rangedFiles, bytes: total };
}

/**
 * A page delta that changes nothing: no page stored, and the file's size what the backup before
 * it recorded. Applying it would only open the file, set the size it has and close it; the
 * restore skips it, and the write before it becomes the file's last. In a delta of a database
 * where little changed, most files are such deltas: the ~650 small files of a pgbench database's
 * catalog, each opened, set, synced and closed once more per backup of the chain.
 */
function unchangedDelta(delta: ManifestDelta, before: Entry | undefined): boolean {
  return delta.pages === 0 && before !== undefined && before.file.size === delta.size;
}

/**
 * The ranges of a file must cover it in order and combine into its CRC-32 (a delta's: into its
 * blobs'): a manifest that says otherwise is refused before anything is written.
 */
function checkRanges(backup: BackupManifest, entry: Entry): void {
  const what = `the manifest of ${backup.name}`;
  const { file } = entry;
  const ranges = file.ranges!;
  for (let i = 0; i < ranges.length; i++) {
    const range = ranges[i];
    const expectedOffset = i === 0 ? 0 : undefined;
    if ((expectedOffset !== undefined && range.offset !== expectedOffset) || (i > 0 && range.offset <= ranges[i - 1].offset) || range.offset >= Math.max(1, file.size)) {
      throw new CorruptObjectError(`${what} lists ranges of ${file.path} that do not make the file (a range at ${range.offset})`);
    }
    if (entry.kind === 'file') {
      const end = i + 1 < ranges.length ? ranges[i + 1].offset : file.size;
      if (range.size !== end - range.offset) throw new CorruptObjectError(`${what} lists ranges of ${file.path} that do not make the file (a range of ${range.size} bytes at ${range.offset}, the next at ${end})`);
    }
  }
  const { size: stored, checksum } = combinedRanges(ranges);
  const expectedStored = entry.kind === 'delta' ? entry.file.blobSize : file.size;
  if (stored !== expectedStored || checksum !== file.checksum) {
    throw new CorruptObjectError(`${what} lists ranges of ${file.path} that do not make the file (${stored} bytes, CRC-32 ${checksum}; the manifest's whole: ${expectedStored} bytes, CRC-32 ${file.checksum})`);
  }
}

/**
 * What a file costs a restore beyond its bytes, in bytes of a large file's: its open, its fsync
 * (an ext4 journal commit) and its close. On the development machine a thread wrote a 64 MiB range
 * in ~250 ms and restored the catalog's small files at ~0.7 ms each: about 256 KiB (2026-12-02).
 */
export const FILE_COST_BYTES = 256 * 1024;

/**
 * The order in which a layer's parts are restored: the costliest first, so that the threads
 * finish close together (the last part runs alone). A part's cost is its bytes plus a fixed cost
 * per file: the part of the catalog's ~1,000 small files holds a quarter of a large part's bytes
 * but took longer than one, and ordered by size alone it ran last, on one thread, while the other
 * idled (~1 s of a 1.1 GB restore's ~2.8 s). The ranges of a file cut into parts go one after the
 * other, at the place of its costliest range: a delta of the chain waits for every range of the
 * file it applies onto, and ordered by their own costs the file's last, shorter range ran behind
 * every other large part (a chain's restore: the delta of pgbench_accounts waited 3 s for it).
 */
export function restoreOrder(layer: RestoreLayer): number[] {
  const cost = new Map([...layer.parts].map(([index, pieces]) => [index, layer.backup.parts[index].size + pieces.length * FILE_COST_BYTES]));
  // A part holding a range holds that range alone (parts-plan.ts).
  const rangedFile = new Map([...layer.parts].map(([index, pieces]) => [index, pieces.find((piece) => piece.offset !== undefined)?.path ?? '']));
  const fileCost = new Map<string, number>();
  for (const [index, file] of rangedFile) if (file !== '') fileCost.set(file, Math.max(fileCost.get(file) ?? 0, cost.get(index)!));
  const rank = (index: number) => fileCost.get(rangedFile.get(index)!) ?? cost.get(index)!;
  return [...layer.parts.keys()].sort((a, b) => rank(b) - rank(a) || rangedFile.get(a)!.localeCompare(rangedFile.get(b)!) || cost.get(b)! - cost.get(a)! || a - b);
}

/**
 * The parts of `layer` that write global/pg_control (backup-push stores it alone, in its last
 * part): a restore writes them after everything else, backup_label and the recovery settings
 * included (pgBackRest's rule). Until then the directory has no pg_control, and PostgreSQL refuses
 * to start on it. A restore cut short (killed) after its data files but before its backup_label
 * would otherwise leave a directory that starts crash recovery from the checkpoint pg_control
 * holds (the newest when it was copied, at the backup's end) instead of the backup's starting
 * one, and opens with pages from different points in time.
 */
export function controlFileParts(layer: RestoreLayer): number[] {
  return [...layer.parts].filter(([, pieces]) => pieces.some((piece) => piece.path === PG_CONTROL && piece.action !== 'skip')).map(([index]) => index);
}

/** One part of one layer to restore, and the steps it must wait for. */
export interface RestoreStep {
  /** Index into the plan's layers. */
  readonly layer: number;
  /** Index into that layer's backup's parts. */
  readonly part: number;
  /** Indexes into the steps (all earlier in the list) that must be done before this one starts. */
  readonly after: readonly number[];
}

/**
 * Every layer's parts as one list of steps, less the parts `held(layer)` names (the pg_control
 * parts, restored at the very end). A step waits only for the steps of the newest earlier layer
 * that write to a file it writes to: the chain's order is the order of the writes to each file, and
 * nothing else needs an order. So a delta's part starts as soon as the parts of its base holding
 * its files are written, on a thread the base's last parts leave idle, instead of after the whole
 * base (section runs of the delta benchmark: the delta's layer took 0.8-0.95 s after a base layer
 * of 1.2-1.5 s).
 *
 * The threads take the first step in the list that may start, so the list says what goes first:
 * the layers in chain order, each in restoreOrder, and a part that waits moved up to right after
 * the last part it waits for, so that a thread takes it as soon as it may start rather than after
 * the rest of the base. Put after the whole base instead, the delta of a 1 GiB pgbench_accounts
 * started 1.7 s after the file's last range was written; moved up, 0.13 s.
 */
export function restoreSteps(plan: RestorePlan, held: (layer: number) => readonly number[] = () => []): RestoreStep[] {
  const { layers } = plan;
  const written = (pieces: readonly ExpectedPiece[]) => pieces.filter((piece) => piece.action !== 'skip').map((piece) => piece.path);
  const planned = layers.flatMap((layer, k) => {
    const excluded = held(k);
    return restoreOrder(layer)
      .filter((index) => !excluded.includes(index))
      .map((part) => ({ layer: k, part }));
  });
  const key = (step: { layer: number; part: number }) => `${step.layer}/${step.part}`;
  const included = new Set(planned.map(key));
  // For each layer: each file's writers among its parts.
  const writers = layers.map((layer, k) => {
    const map = new Map<string, string[]>();
    for (const [part, pieces] of layer.parts) {
      if (!included.has(`${k}/${part}`)) continue;
      for (const path of written(pieces)) {
        const list = map.get(path);
        if (list) list.push(`${k}/${part}`);
        else map.set(path, [`${k}/${part}`]);
      }
    }
    return map;
  });
  // What each part waits for: the parts of the newest earlier layer that write its files.
  const waits = new Map<string, Set<string>>();
  for (const step of planned) {
    const on = new Set<string>();
    for (const path of written(layers[step.layer].parts.get(step.part)!)) {
      for (let j = step.layer - 1; j >= 0; j--) {
        const list = writers[j].get(path);
        if (!list) continue;
        for (const writer of list) on.add(writer);
        break;
      }
    }
    waits.set(key(step), on);
  }
  // The planned order, each part that waits moved up to right after the last part it waits for
  // (a count of what it still waits for, and who waits for whom: linear in the parts and waits).
  const rank = new Map(planned.map((step, index) => [key(step), index]));
  const left = new Map<string, number>();
  const waitedOnBy = new Map<string, { layer: number; part: number }[]>();
  for (const step of planned) {
    const on = waits.get(key(step))!;
    if (on.size === 0) continue;
    left.set(key(step), on.size);
    for (const writer of on) {
      const list = waitedOnBy.get(writer);
      if (list) list.push(step);
      else waitedOnBy.set(writer, [step]);
    }
  }
  const order: { layer: number; part: number }[] = [];
  const place = (step: { layer: number; part: number }) => {
    order.push(step);
    const ready = (waitedOnBy.get(key(step)) ?? []).filter((other) => {
      const count = left.get(key(other))! - 1;
      left.set(key(other), count);
      return count === 0;
    });
    for (const other of ready.sort((a, b) => rank.get(key(a))! - rank.get(key(b))!)) place(other);
  };
  for (const step of planned) if (waits.get(key(step))!.size === 0) place(step);
  if (order.length !== planned.length) throw new Error(`restoreSteps placed ${order.length} of ${planned.length} parts`);
  const indexOf = new Map(order.map((step, index) => [key(step), index]));
  return order.map((step) => ({ ...step, after: [...waits.get(key(step))!].map((on) => indexOf.get(on)!).sort((a, b) => a - b) }));
}
