/** The memory a worker reuses for encoded objects once the main thread gives it back. */
import { describe, expect, it } from 'vitest';
import { ScratchBuffer, SpareBuffers } from '../../archiver/src/spare-buffers';

const MiB = 1 << 20;

describe('SpareBuffers', () => {
  it('hands out a Buffer of the size asked, at offset 0 of memory of its own rounded up to the granule', () => {
    const spares = new SpareBuffers(2, MiB);
    const small = spares.take(41);
    expect(small.length).toBe(41);
    expect(small.byteOffset).toBe(0);
    expect(small.buffer.byteLength).toBe(MiB);
    const large = spares.take(3 * MiB + 1);
    expect(large.length).toBe(3 * MiB + 1);
    expect(large.buffer.byteLength).toBe(4 * MiB);
    expect(large.buffer).not.toBe(small.buffer);
  });

  it('reuses memory given back, the smallest spare that holds the size', () => {
    const spares = new SpareBuffers(3, MiB);
    const four = new ArrayBuffer(4 * MiB);
    const two = new ArrayBuffer(2 * MiB);
    spares.give(four);
    spares.give(two);
    const taken = spares.take(MiB + 5);
    expect(taken.buffer).toBe(two);
    expect(taken.length).toBe(MiB + 5);
    expect(spares.take(3 * MiB).buffer).toBe(four);
    expect(spares.size).toBe(0);
  });

  it('allocates anew when no spare is large enough, and keeps the small spare', () => {
    const spares = new SpareBuffers(3, MiB);
    const one = new ArrayBuffer(MiB);
    spares.give(one);
    const taken = spares.take(MiB + 1);
    expect(taken.buffer).not.toBe(one);
    expect(taken.buffer.byteLength).toBe(2 * MiB);
    expect(spares.size).toBe(1);
  });

  it('keeps at most `keep` spares, ignores empty (detached) memory, and lets them all go on clear', () => {
    const spares = new SpareBuffers(2, MiB);
    spares.give(new ArrayBuffer(0));
    expect(spares.size).toBe(0);
    for (let i = 0; i < 5; i++) spares.give(new ArrayBuffer(MiB));
    expect(spares.size).toBe(2);
    spares.clear();
    expect(spares.size).toBe(0);
  });
});

describe('ScratchBuffer', () => {
  it('lends the same memory to one loan after another, grown to the largest size asked', async () => {
    const scratch = new ScratchBuffer();
    const first = await scratch.lend(async (allocate) => allocate(MiB));
    const second = await scratch.lend(async (allocate) => allocate(MiB / 2));
    expect(second.buffer).toBe(first.buffer);
    expect(second.length).toBe(MiB / 2);
    const larger = await scratch.lend(async (allocate) => allocate(2 * MiB));
    expect(larger.length).toBe(2 * MiB);
    expect(scratch.size).toBe(2 * MiB);
    expect((await scratch.lend(async (allocate) => allocate(MiB))).buffer).toBe(larger.buffer);
  });

  it('gives memory of their own to a loan taken while another is out, and to a second allocation within one loan', async () => {
    const scratch = new ScratchBuffer();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let outer: Buffer | undefined;
    const first = scratch.lend(async (allocate) => {
      outer = allocate(MiB);
      outer.fill(1);
      await held;
      return outer;
    });
    const inner = await scratch.lend(async (allocate) => allocate(MiB).fill(2));
    expect(inner.buffer).not.toBe(outer!.buffer);
    release();
    expect((await first).every((byte) => byte === 1)).toBe(true);
    const [a, b] = await scratch.lend(async (allocate) => [allocate(16), allocate(16)]);
    expect(a.buffer).not.toBe(b.buffer);
  });

  it('lets its memory go on clear, but not while lent', async () => {
    const scratch = new ScratchBuffer();
    await scratch.lend(async (allocate) => allocate(MiB));
    scratch.clear();
    expect(scratch.size).toBe(0);
    await scratch.lend(async (allocate) => {
      allocate(MiB);
      scratch.clear();
      expect(scratch.size).toBe(MiB);
    });
  });
});
