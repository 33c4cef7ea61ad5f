/**
 * Jobs on a fixed set of lanes (PartRunner's threads), each lane taking the first job in list
 * order that may start: a job may wait for jobs earlier in the list (`after`). A restore of a
 * delta chain uses it to start a delta's part as soon as the parts of its base that it writes
 * onto are written (restore-plan.ts restoreSteps). Pure of I/O: the lanes and the work are the
 * caller's.
 */

/** In what order jobs may start. */
export interface RunOrder {
  /** `after[i]`: the jobs, each earlier in the list, that must be done before job i starts. @default none */
  readonly after?: readonly (readonly number[])[];
  /** Called as a job succeeds, with its index. */
  readonly onDone?: (index: number) => void;
}

/**
 * Runs jobs 0..count-1 on `lanes`, one job per lane at a time; resolves with the results in job
 * order, or rejects with the first failure once the jobs already started have settled (no job
 * starts after a failure).
 */
export async function runOrdered<L, T>(count: number, lanes: readonly L[], run: (lane: L, index: number) => Promise<T>, order: RunOrder = {}): Promise<T[]> {
  const after = order.after ?? [];
  after.forEach((list, index) => {
    if (list.some((other) => !Number.isInteger(other) || other < 0 || other >= index)) throw new RangeError(`job ${index} waits for a job that is not before it (${list.join(', ')})`);
  });
  const results: T[] = new Array(count);
  const started: boolean[] = new Array(count).fill(false);
  const done: boolean[] = new Array(count).fill(false);
  // Every job before it has started: the scan for the next job starts here, so that a list without
  // waits (a backup's parts: up to ~16k of them) costs one step per job, not a scan of the list.
  let firstNotStarted = 0;
  let failure: { error: unknown } | undefined;
  // Settled when any job ends: a lane with no job that may start waits for it.
  let jobEnded!: () => void;
  let anyJobEnds = new Promise<void>((resolve) => (jobEnded = resolve));
  const signalJobEnded = () => {
    const wake = jobEnded;
    anyJobEnds = new Promise<void>((resolve) => (jobEnded = resolve));
    wake();
  };
  const nextReady = () => {
    while (firstNotStarted < count && started[firstNotStarted]) firstNotStarted++;
    for (let index = firstNotStarted; index < count; index++) if (!started[index] && (after[index] ?? []).every((other) => done[other])) return index;
    return -1;
  };
  const drive = async (lane: L) => {
    while (!failure) {
      const index = nextReady();
      if (index < 0) {
        // Every job started, or the next ones wait for jobs still running: each job waits only for
        // earlier ones, so the earliest job not started can start once those end.
        if (firstNotStarted === count) return;
        await anyJobEnds;
        continue;
      }
      started[index] = true;
      try {
        results[index] = await run(lane, index);
        done[index] = true;
        order.onDone?.(index);
      } catch (error) {
        failure ??= { error };
      } finally {
        signalJobEnded();
      }
    }
  };
  await Promise.all(lanes.map(drive));
  if (failure) throw failure.error;
  return results;
}
