/**
 * The loop of the sidecar's watchers (archiver/src/daemon/periodic-look.ts): one look at a time,
 * the first at once, until stopped or until a look says the watch is over.
 */
import { describe, expect, it } from 'vitest';
import { PeriodicLook } from '../../../archiver/src/daemon/periodic-look';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PeriodicLook', () => {
  it('looks at once, then every interval after the previous look ended, never two at a time', async () => {
    let running = 0;
    let most = 0;
    const starts: number[] = [];
    const loop = new PeriodicLook(async () => {
      starts.push(Date.now());
      most = Math.max(most, ++running);
      await sleep(30);
      running--;
    }, 10);
    const started = Date.now();
    loop.start();
    await sleep(200);
    await loop.stop();
    expect(starts[0] - started).toBeLessThan(50);
    expect(starts.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeGreaterThanOrEqual(39);
    expect(most).toBe(1);
  });

  it('ends the watch when a look resolves to "done"', async () => {
    let looks = 0;
    const loop = new PeriodicLook(async () => (++looks === 3 ? 'done' : 'again'), 5);
    loop.start();
    await sleep(150);
    expect(looks).toBe(3);
    await loop.stop();
  });

  it('stop() waits for the look in flight and no look starts after it', async () => {
    let finished = false;
    let looks = 0;
    const loop = new PeriodicLook(async () => {
      looks++;
      await sleep(80);
      finished = true;
    }, 5);
    loop.start();
    await sleep(20);
    await loop.stop();
    expect(finished).toBe(true);
    const after = looks;
    await sleep(50);
    expect(looks).toBe(after);
  });

  it('waits as a function of the last look\'s outcome when given one (the storage probe\'s back-off)', async () => {
    const outcomes = [false, false, true];
    const asked: unknown[] = [];
    let looks = 0;
    const loop = new PeriodicLook(async () => outcomes[looks++] ?? 'done', (outcome) => {
      asked.push(outcome);
      return 5;
    });
    loop.start();
    await sleep(150);
    expect(looks).toBe(4);
    expect(asked).toStrictEqual([false, false, true]);
    await loop.stop();
  });
});
