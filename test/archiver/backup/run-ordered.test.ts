/**
 * The job order of a restore's threads: each free lane takes the first job in list order that may
 * start; a job may wait for earlier jobs (a delta's part for the parts of its base it writes onto).
 */
import { describe, expect, it } from 'vitest';
import { runOrdered } from '../../../archiver/src/backup/run-ordered';

/** Jobs the test ends by hand, recording when each starts and ends. */
function controlledJobs(count: number) {
  const events: string[] = [];
  const finishers = new Map<number, { resolve: (value: string) => void; reject: (error: Error) => void }>();
  let running = 0;
  let mostAtOnce = 0;
  const run = (lane: string, index: number) =>
    new Promise<string>((resolve, reject) => {
      events.push(`start ${index} on ${lane}`);
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      finishers.set(index, {
        resolve: (value) => {
          running--;
          events.push(`end ${index}`);
          resolve(value);
        },
        reject: (error) => {
          running--;
          events.push(`fail ${index}`);
          reject(error);
        },
      });
    });
  /** Lets the lanes take their next jobs. */
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  const end = async (index: number) => {
    await settle();
    finishers.get(index)!.resolve(`result ${index}`);
    await settle();
  };
  const fail = async (index: number, error: Error) => {
    await settle();
    finishers.get(index)!.reject(error);
    await settle();
  };
  return { events, run, end, fail, settle, mostAtOnce: () => mostAtOnce, count };
}

describe('runOrdered', () => {
  it('runs every job once, at most one per lane at a time, and gives the results in job order', async () => {
    const jobs = controlledJobs(5);
    const all = runOrdered(5, ['a', 'b'], jobs.run);
    for (const index of [1, 0, 2, 4, 3]) await jobs.end(index);
    expect(await all).toEqual(['result 0', 'result 1', 'result 2', 'result 3', 'result 4']);
    expect(jobs.mostAtOnce()).toBe(2);
    expect(jobs.events.filter((e) => e.startsWith('start')).map((e) => Number(e.split(' ')[1])).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('starts a job only once the jobs it waits for are done; a free lane takes a later job that waits for nothing meanwhile', async () => {
    const jobs = controlledJobs(3);
    const done: number[] = [];
    const all = runOrdered(3, ['a', 'b'], jobs.run, { after: [[], [0], []], onDone: (index) => done.push(index) });
    await jobs.settle();
    expect(jobs.events).toEqual(['start 0 on a', 'start 2 on b']);
    await jobs.end(2);
    // Job 1 still waits for job 0: lane b is idle.
    expect(jobs.events).toEqual(['start 0 on a', 'start 2 on b', 'end 2']);
    await jobs.end(0);
    expect(jobs.events.slice(3)).toEqual(['end 0', expect.stringMatching(/^start 1 on [ab]$/)]);
    await jobs.end(1);
    await all;
    expect(done).toEqual([2, 0, 1]);
  });

  it('starts nothing after a failure, and rejects with it once the jobs started have settled', async () => {
    const jobs = controlledJobs(4);
    let settled = false;
    const all = runOrdered(4, ['a', 'b'], jobs.run).finally(() => (settled = true));
    await jobs.fail(0, new Error('part 1 is damaged'));
    expect(settled).toBe(false); // job 1 still runs
    const outcome = expect(all).rejects.toThrow('part 1 is damaged');
    await jobs.end(1);
    await outcome;
    expect(jobs.events).toEqual(['start 0 on a', 'start 1 on b', 'fail 0', 'end 1']);
  });

  it('refuses a job that waits for itself or a later job (it could never start)', async () => {
    await expect(runOrdered(2, ['a'], async () => 0, { after: [[1], []] })).rejects.toThrow(new RangeError('job 0 waits for a job that is not before it (1)'));
    await expect(runOrdered(2, ['a'], async () => 0, { after: [[], [1]] })).rejects.toThrow(RangeError);
  });

  it('resolves at once with no jobs', async () => {
    expect(await runOrdered(0, ['a', 'b'], async () => 0)).toEqual([]);
  });
});
