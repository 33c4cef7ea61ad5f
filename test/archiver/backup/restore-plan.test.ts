import { describe, expect, it } from 'vitest';
import { decodeManifest, BackupManifest, ManifestDelta, ManifestFile } from '../../../archiver/src/backup/manifest';
import { FILE_COST_BYTES, controlFileParts, planRestore, restoreOrder, restoreSteps } from '../../../archiver/src/backup/restore-plan';
import { deltaChain, withBases } from '../../../archiver/src/backup/delta-chain';
import { CorruptObjectError, BackupNotFoundError, UnsupportedObjectError } from '../../../archiver/src/errors';
import { crc32 } from 'node:zlib';

const file = (path: string, part = 0, size = 100): ManifestFile => ({ path, size, mode: 0o600, mtime: 1, checksum: '0000abcd', part });
const delta = (path: string, part = 0, size = 8192 * 4): ManifestDelta => ({ path, size, mode: 0o600, mtime: 2, blobSize: 50, pages: 1, checksum: '0000beef', part });

function backup(name: string, files: ManifestFile[], deltas?: ManifestDelta[], base?: string, parts = 2): BackupManifest {
  return {
    format: 2, name, label: name, startLsn: '0/1000000', stopLsn: '0/2000000', startWal: '', stopWal: '', timeline: 1,
    startTime: '2026-11-30T06:00:00Z', stopTime: '2026-11-30T06:01:00Z', systemIdentifier: '1', pgVersion: 150000, walSegmentSize: 16 << 20,
    fromStandby: false, dataDirectory: '/d', compression: 'zstd', size: 0, storedSize: 0, hasTablespaceMap: false, stopSnapshot: undefined,
    parts: Array.from({ length: parts }, (_, i) => ({ key: `parts/000${i + 1}.tar`, size: 10 * (parts - i), storedSize: 1 })),
    directories: [], files, ...(deltas ? { deltas } : {}), ...(base ? { base } : {}),
  };
}

/** `path:action` of every piece of a layer's part, sorted. */
const actions = (plan: ReturnType<typeof planRestore>, layer: number) =>
  [...plan.layers[layer].parts.entries()].flatMap(([part, pieces]) => pieces.map((p) => `${part}:${p.path}:${p.action}${p.final ? ':final' : ''}`)).sort();

describe('planning the restore of a full backup', () => {
  it('writes every file, each in its part, all final', () => {
    const plan = planRestore([backup('A', [file('PG_VERSION', 0), file('base/1/1', 1)])]);
    expect(plan.layers).toHaveLength(1);
    expect(actions(plan, 0)).toEqual(['0:PG_VERSION:write:final', '1:base/1/1:write:final']);
    expect(plan.bytes).toBe(200);
  });
});

describe('the order of a restore\'s parts', () => {
  const MiB = 1 << 20;
  /** A full backup whose part i holds `files[i]` files of `bytes[i]` bytes in all. */
  const layerOf = (spec: readonly { files: number; bytes: number }[]) => {
    const files = spec.flatMap((part, index) => Array.from({ length: part.files }, (_, n) => file(`base/${index}/${n}`, index, Math.floor(part.bytes / part.files))));
    const manifest = backup('A', files, undefined, undefined, spec.length);
    const parts = manifest.parts.map((part, index) => ({ ...part, size: spec[index].bytes }));
    return planRestore([{ ...manifest, parts }]).layers[0];
  };

  it('puts a part of many small files before a larger part of few: its fsyncs, not its bytes, make it long', () => {
    // The catalog's part (1,000 files, 17 MB) and two 64 MiB ranges of a table.
    const layer = layerOf([
      { files: 1000, bytes: 17 * MiB },
      { files: 1, bytes: 64 * MiB },
      { files: 1, bytes: 64 * MiB },
    ]);
    expect(restoreOrder(layer)).toEqual([0, 1, 2]);
  });

  it('otherwise goes by bytes, the largest first, parts of equal cost in their own order', () => {
    const layer = layerOf([
      { files: 2, bytes: 10 * MiB },
      { files: 1, bytes: 64 * MiB },
      { files: 3, bytes: 10 * MiB },
      { files: 1, bytes: 64 * MiB },
    ]);
    expect(restoreOrder(layer)).toEqual([1, 3, 2, 0]);
  });

  it('counts each file at FILE_COST_BYTES', () => {
    // Part 0: 10 MiB in 11 files. Part 1: one file of 10 MiB and ten files' cost, give or take a byte.
    const against = (extra: number) => restoreOrder(layerOf([{ files: 11, bytes: 10 * MiB }, { files: 1, bytes: 10 * MiB + 10 * FILE_COST_BYTES + extra }]));
    expect(against(1)).toEqual([1, 0]);
    expect(against(-1)).toEqual([0, 1]);
  });
});

describe('the parts restored last of all', () => {
  it('are the ones that write global/pg_control (backup-push stores it alone, in its last part)', () => {
    const plan = planRestore([backup('A', [file('PG_VERSION', 0), file('base/1/1', 1), file('global/pg_control', 2)], undefined, undefined, 3)]);
    expect(controlFileParts(plan.layers[0])).toEqual([2]);
  });

  it('in a delta chain, only in the backup restored: its pg_control is the one written', () => {
    const a = backup('A', [file('PG_VERSION', 0), file('global/pg_control', 1)]);
    const b = backup('B', [file('PG_VERSION', 0), file('global/pg_control', 1)], [], 'A');
    const plan = planRestore([a, b]);
    expect(plan.layers.map(controlFileParts)).toEqual([[], [1]]);
  });

  it('are none when a backup holds no pg_control', () => {
    expect(controlFileParts(planRestore([backup('A', [file('PG_VERSION', 0), file('base/1/1', 1)])]).layers[0])).toEqual([]);
  });
});

describe('planning the restore of a delta chain', () => {
  const full = backup('A', [file('PG_VERSION', 0), file('base/1/10', 1, 1000), file('base/1/11', 1), file('base/1/12_vm', 0), file('base/1/gone', 0)]);
  const d1 = backup('B', [file('PG_VERSION', 0), file('base/1/12_vm', 0)], [delta('base/1/10', 1), delta('base/1/11', 0), delta('base/1/13', 1)], 'A');
  const d2 = backup('C', [file('PG_VERSION', 0), file('base/1/12_vm', 1)], [delta('base/1/10', 0), delta('base/1/13', 1)], 'B');

  it('writes each file once, from the newest backup that holds it whole, then applies the later deltas in order', () => {
    const plan = planRestore([full, d1, d2]);
    expect(plan.layers.map((l) => l.backup.name)).toEqual(['A', 'B', 'C']);
    // base/1/10: whole in A, deltas in B and C. base/1/11 is not in C: dropped. base/1/13: new in B.
    // (A part of only skipped pieces is left out altogether: see the next test.)
    expect(actions(plan, 0)).toEqual(['1:base/1/10:write', '1:base/1/11:skip']);
    expect(actions(plan, 1)).toEqual(['1:base/1/10:apply', '1:base/1/13:apply']);
    expect(actions(plan, 2)).toEqual(['0:PG_VERSION:write:final', '0:base/1/10:apply:final', '1:base/1/12_vm:write:final', '1:base/1/13:apply:final']);
  });

  it('does not download a part with nothing needed in it', () => {
    const plan = planRestore([full, d1, d2]);
    // A's part 0 holds only files C has whole or dropped.
    expect([...plan.layers[0].parts.keys()]).toEqual([1]);
    expect([...plan.layers[1].parts.keys()]).toEqual([1]);
  });

  it('a delta restored alone (its chain A, B) applies B onto A', () => {
    const plan = planRestore([full, d1]);
    expect(actions(plan, 0)).toContain('1:base/1/10:write');
    expect(actions(plan, 0)).toContain('1:base/1/11:write');
    expect(actions(plan, 1)).toContain('0:base/1/11:apply:final');
  });

  it('orders the parts of every layer as one list: a part waits only for the earlier parts that write its files', () => {
    // C's part 0 and part 1 both apply onto base/1/10 or base/1/13, which B's part 1 wrote; B's part
    // 1 applies onto base/1/10, which A's part 1 wrote.
    expect(restoreSteps(planRestore([full, d1, d2]))).toEqual([
      { layer: 0, part: 1, after: [] },
      { layer: 1, part: 1, after: [0] },
      { layer: 2, part: 0, after: [1] },
      { layer: 2, part: 1, after: [1] },
    ]);
  });

  it('lets a part of a delta whose files its base does not write start at once, and leaves out the parts held back', () => {
    const base = backup('X', [file('f1', 0), file('f2', 1)]);
    const next = backup('Y', [file('f3', 1)], [delta('f1', 0)], 'X');
    const plan = planRestore([base, next]);
    expect(restoreSteps(plan)).toEqual([
      { layer: 0, part: 0, after: [] },
      { layer: 1, part: 0, after: [0] },
      { layer: 1, part: 1, after: [] },
    ]);
    expect(restoreSteps(plan, (layer) => (layer === 1 ? [1] : []))).toEqual([
      { layer: 0, part: 0, after: [] },
      { layer: 1, part: 0, after: [0] },
    ]);
  });

  describe('a delta that changes nothing (no page, the size the backup before it recorded)', () => {
    const unchanged = (path: string, part: number, size: number, mtime = 3, mode = 0o600): ManifestDelta => ({ ...delta(path, part, size), pages: 0, blobSize: 24, mtime, mode });
    const base = backup('A', [file('base/1/20', 0, 8192), file('base/1/21', 1, 8192)]);

    it('is skipped, and the write before it is the file\'s last: synced there, with the mode and time of the backup restored', () => {
      const next = backup('B', [], [unchanged('base/1/20', 0, 8192, 7, 0o640), delta('base/1/21', 1, 8192)], 'A');
      const plan = planRestore([base, next]);
      expect(actions(plan, 0)).toEqual(['0:base/1/20:write:final', '1:base/1/21:write']);
      expect(actions(plan, 1)).toEqual(['1:base/1/21:apply:final']);
      const written = plan.layers[0].parts.get(0)![0];
      expect({ mode: written.mode, mtime: written.mtime }).toEqual({ mode: 0o640, mtime: 7 });
      // Nothing else of B's part 0 is needed: it is not downloaded, and no step waits on A for it.
      expect([...plan.layers[1].parts.keys()]).toEqual([1]);
      expect(restoreSteps(plan)).toEqual([
        { layer: 0, part: 0, after: [] },
        { layer: 0, part: 1, after: [] },
        { layer: 1, part: 1, after: [1] },
      ]);
    });

    it('over a delta that changed pages: that delta is the last write', () => {
      const middle = backup('B', [], [delta('base/1/20', 0, 8192), delta('base/1/21', 1, 8192)], 'A');
      const last = backup('C', [], [unchanged('base/1/20', 0, 8192, 9), unchanged('base/1/21', 0, 8192, 9)], 'B');
      const plan = planRestore([base, middle, last]);
      expect(actions(plan, 1)).toEqual(['0:base/1/20:apply:final', '1:base/1/21:apply:final']);
      expect(plan.layers[2].parts.size).toBe(0);
      expect(plan.layers[1].parts.get(0)![0].mtime).toBe(9);
    });

    it('is applied when the file\'s size changed (it truncates or extends the file)', () => {
      const next = backup('B', [], [unchanged('base/1/20', 0, 16384), unchanged('base/1/21', 1, 0)], 'A');
      expect(actions(planRestore([base, next]), 1)).toEqual(['0:base/1/20:apply:final', '1:base/1/21:apply:final']);
    });

    it('is applied when no backup before it holds the file (it creates the file)', () => {
      const next = backup('B', [], [unchanged('base/1/30', 0, 0)], 'A');
      expect(actions(planRestore([base, next]), 1)).toEqual(['0:base/1/30:apply:final']);
    });
  });

  it('refuses a piece in a part the manifest does not list', () => {
    expect(() => planRestore([backup('A', [file('x', 5)])])).toThrow(new CorruptObjectError('the manifest of A puts x in part 5, which it does not list'));
  });

  it('refuses ranges that do not make the file', () => {
    const a = new Uint8Array(100).fill(1);
    const b = new Uint8Array(60).fill(2);
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const whole = { ...file('big', 0, 160), checksum: hex(crc32(Buffer.concat([a, b]))), ranges: [{ part: 0, offset: 0, size: 100, checksum: hex(crc32(a)) }, { part: 1, offset: 100, size: 60, checksum: hex(crc32(b)) }] };
    expect(() => planRestore([backup('A', [whole])])).not.toThrow();
    expect(() => planRestore([backup('A', [{ ...whole, checksum: '00000000' }])])).toThrow(/lists ranges of big that do not make the file/);
    expect(() => planRestore([backup('A', [{ ...whole, ranges: [whole.ranges[0], { ...whole.ranges[1], offset: 90 }] }])])).toThrow(/lists ranges of big that do not make the file/);
  });
});

describe('the chain of a delta', () => {
  const a = backup('A', []);
  const b = backup('B', [], [], 'A');
  const c = backup('C', [], [], 'B');

  it('goes back to the full backup, oldest first', () => {
    expect(deltaChain(c, [a, b, c], 'file:///x').map((m) => m.name)).toEqual(['A', 'B', 'C']);
    expect(deltaChain(a, [a, b, c], 'file:///x').map((m) => m.name)).toEqual(['A']);
  });

  it('fails naming the missing base', () => {
    expect(() => deltaChain(c, [b, c], 'file:///x')).toThrow(new BackupNotFoundError('backup B is a delta of A, which is not a complete backup at file:///x: C cannot be restored (restore an older full backup, or take a new one)'));
  });

  it('refuses a base of another database, and a loop', () => {
    expect(() => deltaChain(b, [{ ...a, systemIdentifier: '2' }, b], 'x')).toThrow(CorruptObjectError);
    expect(() => deltaChain(backup('L', [], [], 'M'), [backup('L', [], [], 'M'), backup('M', [], [], 'L')], 'x')).toThrow(/loop/);
  });

  it('withBases closes a set of names over their bases', () => {
    expect([...withBases(['C'], [a, b, c])].sort()).toEqual(['A', 'B', 'C']);
    expect([...withBases(['A'], [a, b, c])]).toEqual(['A']);
  });
});

describe('manifest formats', () => {
  const encoded = (format: number) => Buffer.from(JSON.stringify({ ...backup('A', []), format }));
  it('reads format 1 (before ranges and deltas) and 2', () => {
    expect(decodeManifest(encoded(1), 'm').format).toBe(1);
    expect(decodeManifest(encoded(2), 'm').format).toBe(2);
  });
  it('refuses a newer format: upgrade the archiver', () => {
    expect(() => decodeManifest(encoded(3), 'm')).toThrow(new UnsupportedObjectError('m has manifest format 3; this archiver reads formats up to 2: upgrade the archiver'));
  });
});

describe('the order of the parts', () => {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  /** `rel` in two ranges, the second (shorter) one in the smallest part; other files in the parts between. */
  function rangedBackup(name: string): BackupManifest {
    const a = new Uint8Array(100).fill(1);
    const b = new Uint8Array(60).fill(2);
    const rel = { ...file('rel', 0, 160), checksum: hex(crc32(Buffer.concat([a, b]))), ranges: [{ part: 0, offset: 0, size: 100, checksum: hex(crc32(a)) }, { part: 3, offset: 100, size: 60, checksum: hex(crc32(b)) }] };
    return backup(name, [rel, file('other', 1), file('small', 2)], undefined, undefined, 4);
  }

  it('restores the ranges of a file one after the other, at the place of its costliest range, not each at its own', () => {
    // Parts' sizes 40, 30, 20, 10: by their own costs alone the file's last range (part 3) would come last.
    expect(restoreOrder(planRestore([rangedBackup('A')]).layers[0])).toEqual([0, 3, 1, 2]);
  });

  it('puts a delta\'s part that waits right after the last part it waits for, before the base\'s parts it does not wait for', () => {
    // X: big, f1 and f2 in parts of 30, 20 and 10 bytes; Y applies onto f2 in its part 0, onto big
    // and f1 in its part 1 (the costlier: two files).
    const full = backup('X', [file('big', 0), file('f1', 1), file('f2', 2)], undefined, undefined, 3);
    const next = backup('Y', [], [delta('f2', 0), delta('big', 1), delta('f1', 1)], 'X', 2);
    expect(restoreSteps(planRestore([full, next]))).toEqual([
      { layer: 0, part: 0, after: [] },
      { layer: 0, part: 1, after: [] },
      // Right after the parts it waits for, ahead of X's part 2, which a thread would take first.
      { layer: 1, part: 1, after: [0, 1] },
      { layer: 0, part: 2, after: [] },
      { layer: 1, part: 0, after: [3] },
    ]);
  });
});
