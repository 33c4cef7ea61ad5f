/**
 * writeFileAtomically (archiver/src/write-file-atomically.ts): a file appears whole or not at all,
 * and the temporary files of writers that were killed mid-write do not stay beside it for ever.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeStaleTemporaries, temporaryName, writeFileAtomically } from '../../archiver/src/write-file-atomically';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'write-atomically-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const freshDir = () => fs.mkdtempSync(path.join(scratch, 'dir-'));

/** The pid of a process that has ended (its number not yet given to another). */
function endedPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$']);
  return Number(child.stdout.toString().trim());
}

describe('writeFileAtomically', () => {
  it('writes the whole file under its name, and leaves no temporary file', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'RECOVERYXLOG');
    const data = Buffer.alloc(1 << 20, 7);
    await writeFileAtomically(file, data, true);
    expect(fs.readFileSync(file).equals(data)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['RECOVERYXLOG']);
  });

  it('replaces an existing file whole', async () => {
    const dir = freshDir();
    const file = path.join(dir, 'marker');
    fs.writeFileSync(file, 'old contents, longer than the new');
    await writeFileAtomically(file, Buffer.from('new'), false);
    expect(fs.readFileSync(file, 'utf8')).toBe('new');
  });

  it('leaves nothing when the write fails', async () => {
    const dir = freshDir();
    // A directory under the file's name: the rename fails after the temporary was written.
    fs.mkdirSync(path.join(dir, 'taken'));
    fs.writeFileSync(path.join(dir, 'taken', 'inside'), '');
    await expect(writeFileAtomically(path.join(dir, 'taken'), Buffer.from('data'), false)).rejects.toThrow();
    expect(fs.readdirSync(dir)).toEqual(['taken']);
  });

  it("removes, at its first write into a directory, the temporaries of writers that no longer run; keeps a running writer's and other files", async () => {
    const dir = freshDir();
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const stale = path.basename(temporaryName(path.join(dir, 'RECOVERYXLOG'), endedPid()));
      const staleOther = path.basename(temporaryName(path.join(dir, '000000010000000000000003'), endedPid()));
      const running = path.basename(temporaryName(path.join(dir, 'RECOVERYXLOG'), live.pid!));
      for (const name of [stale, staleOther, running, '000000010000000000000002', 'notes.tmp']) fs.writeFileSync(path.join(dir, name), 'x');
      await writeFileAtomically(path.join(dir, 'RECOVERYXLOG'), Buffer.from('segment'), false);
      expect(fs.readdirSync(dir).sort()).toEqual(['000000010000000000000002', 'RECOVERYXLOG', 'notes.tmp', running].sort());
    } finally {
      live.kill();
    }
  });

  it('removeStaleTemporaries names what it removed, and keeps its own process’s temporaries', async () => {
    const dir = freshDir();
    const stale = path.basename(temporaryName(path.join(dir, 'a'), endedPid()));
    const own = path.basename(temporaryName(path.join(dir, 'a'), process.pid));
    fs.writeFileSync(path.join(dir, stale), '');
    fs.writeFileSync(path.join(dir, own), '');
    expect(await removeStaleTemporaries(dir)).toEqual([stale]);
    expect(fs.readdirSync(dir)).toEqual([own]);
  });
});
