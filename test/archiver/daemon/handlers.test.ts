/**
 * The background archiver's dispatch table (archiver/src/daemon/handlers.ts): one handler per
 * operation of the contract, each doing its part with the running archiver's parts. The parts are
 * test doubles that record what they are asked.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_CODES, REQUEST_OPS } from '../../../contract';
import { DaemonContext, HANDLERS, dispatch } from '../../../archiver/src/daemon/handlers';
import { failure } from '../../../archiver/src/daemon/protocol';
import { CorruptObjectError, StorageError, WalNotFoundError } from '../../../archiver/src/errors';
import { Logger } from '../../../archiver/src/logger';
import type { Prefetcher } from '../../../archiver/src/prefetcher';
import type { Pusher } from '../../../archiver/src/pusher';
import type { TimelineSurvey } from '../../../archiver/src/recovery';

/** A DaemonContext of test doubles: each records its calls. */
function fakeContext(prefetcherFetch?: () => Promise<{ source: 'prefetch' | 'archive' }>, survey: TimelineSurvey = { listed: false, later: undefined }) {
  const calls: unknown[][] = [];
  const pusher = {
    pending: 3,
    push: async (file: string) => {
      calls.push(['pusher.push', file]);
      return { name: 'X', status: 'stored' as const, bytes: 1, storedBytes: 1 };
    },
  };
  const prefetcher = {
    watch: () => void calls.push(['prefetcher.watch']),
    location: 's3://kubedb/archive',
    fetch: async (name: string, destination: string) => {
      calls.push(['prefetcher.fetch', name, destination]);
      return prefetcherFetch ? prefetcherFetch() : { source: 'prefetch' as const };
    },
    surveyTimeline: async (name: string) => {
      calls.push(['prefetcher.surveyTimeline', name]);
      return survey;
    },
  };
  const context: DaemonContext = {
    pusher: pusher as unknown as Pusher,
    prefetcher: prefetcher as unknown as Prefetcher,
    recoveryDeadlineSeconds: 0,
    log: new Logger('warn', () => undefined),
    watchWalDirectory: (walDirectory) => void calls.push(['watchWalDirectory', walDirectory]),
    stop: () => void calls.push(['stop']),
  };
  return { context, calls };
}

describe('the dispatch table', () => {
  it('has a handler for every operation of the contract, and for no other', () => {
    expect(Object.keys(HANDLERS).sort()).toEqual(Object.values(REQUEST_OPS).sort());
    for (const handler of Object.values(HANDLERS)) expect(typeof handler).toBe('function');
  });

  it('push: watches the file\'s pg_wal for ready files, pushes the file, answers its status', async () => {
    const { context, calls } = fakeContext();
    expect(await dispatch(context, { op: 'push', file: '/data/pg_wal/000000010000000000000001' })).toBe('{"status":"stored"}');
    expect(calls).toEqual([
      ['watchWalDirectory', '/data/pg_wal'],
      ['pusher.push', '/data/pg_wal/000000010000000000000001'],
    ]);
  });

  it('fetch: watches the spool for taken files, fetches the name to the destination, answers the source', async () => {
    const { context, calls } = fakeContext();
    expect(await dispatch(context, { op: 'fetch', name: '000000010000000000000001', destination: '/data/pg_wal/RECOVERYXLOG', mode: 'none' })).toBe('{"source":"prefetch"}');
    expect(calls).toEqual([['prefetcher.watch'], ['prefetcher.fetch', '000000010000000000000001', '/data/pg_wal/RECOVERYXLOG']]);
  });

  describe('fetch answers a failure by the mode the call sends', () => {
    const NAME = '000000010000000000000005';
    const storageDown = async (): Promise<never> => {
      throw new StorageError({ operation: 'get', location: 's3://kubedb/archive', key: `wal/${NAME}`, cause: new Error('connect ECONNREFUSED 127.0.0.1:9') });
    };
    const damaged = async (): Promise<never> => {
      throw new CorruptObjectError(`wal/${NAME} at s3://kubedb/archive is corrupted: CRC-32 mismatch`);
    };
    const missing = async (): Promise<never> => {
      throw new WalNotFoundError(NAME, 's3://kubedb/archive');
    };
    const answer = async (context: DaemonContext, mode: 'archive-recovery' | 'standby' | 'none') =>
      failure(await dispatch(context, { op: 'fetch', name: NAME, destination: '/data/pg_wal/RECOVERYXLOG', mode }).then(() => new Error('answered ok'), (error: unknown) => error)) as {
        kind: 'exit';
        code: number;
        name: string;
        message: string;
      };

    it.each([
      ['a storage failure past the deadline', EXIT_CODES.stopRecovery, EXIT_CODES.error, storageDown],
      ['a damaged object', EXIT_CODES.stopRecovery, EXIT_CODES.error, damaged],
      ['a missing segment with nothing later (the end of the archive)', EXIT_CODES.notFound, EXIT_CODES.notFound, missing],
    ])('%s: archive recovery %i, standby mode and outside recovery %i', async (_case, inArchiveRecovery, otherwise, fetch) => {
      expect((await answer(fakeContext(fetch).context, 'archive-recovery')).code).toBe(inArchiveRecovery);
      expect((await answer(fakeContext(fetch).context, 'standby')).code).toBe(otherwise);
      expect((await answer(fakeContext(fetch).context, 'none')).code).toBe(otherwise);
    });

    it('a missing segment with a later one archived: a gap in archive recovery (128, named), a plain miss (74) in standby mode', async () => {
      const later = { listed: false, later: '000000010000000000000006' };
      const gap = await answer(fakeContext(missing, later).context, 'archive-recovery');
      expect(gap).toMatchObject({ code: EXIT_CODES.stopRecovery, name: 'WalGapError' });
      expect(gap.message).toContain(`${NAME} is missing from the archive but 000000010000000000000006 is there: a gap`);
      const { context, calls } = fakeContext(missing, later);
      expect(await answer(context, 'standby')).toMatchObject({ code: EXIT_CODES.notFound, name: 'WalNotFoundError' });
      // A standby asks ahead of the primary all the time: no listing for it.
      expect(calls.some(([what]) => what === 'prefetcher.surveyTimeline')).toBe(false);
    });
  });

  it('ping: answers the pid and the pushes pending, doing nothing', async () => {
    const { context, calls } = fakeContext();
    expect(JSON.parse((await dispatch(context, { op: 'ping' }))!)).toEqual({ pid: process.pid, pending: 3 });
    expect(calls).toEqual([]);
  });

  it('stop: asks the background archiver to stop, answering its pid', async () => {
    const { context, calls } = fakeContext();
    expect(JSON.parse((await dispatch(context, { op: 'stop' }))!)).toEqual({ pid: process.pid });
    expect(calls).toEqual([['stop']]);
  });
});
