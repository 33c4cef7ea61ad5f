/**
 * The background archiver's dispatch table (archiver/src/daemon/handlers.ts): one handler per
 * operation of the contract, each doing its part with the running archiver's parts. The parts are
 * test doubles that record what they are asked.
 */
import { describe, expect, it } from 'vitest';
import { REQUEST_OPS } from '../../../contract';
import { DaemonContext, HANDLERS, dispatch } from '../../../archiver/src/daemon/handlers';
import type { Prefetcher } from '../../../archiver/src/prefetcher';
import type { Pusher } from '../../../archiver/src/pusher';

/** A DaemonContext of test doubles: each records its calls. */
function fakeContext() {
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
    fetch: async (name: string, destination: string) => {
      calls.push(['prefetcher.fetch', name, destination]);
      return { source: 'prefetch' as const };
    },
  };
  const context: DaemonContext = {
    pusher: pusher as unknown as Pusher,
    prefetcher: prefetcher as unknown as Prefetcher,
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
    expect(await dispatch(context, { op: 'fetch', name: '000000010000000000000001', destination: '/data/pg_wal/RECOVERYXLOG' })).toBe('{"source":"prefetch"}');
    expect(calls).toEqual([['prefetcher.watch'], ['prefetcher.fetch', '000000010000000000000001', '/data/pg_wal/RECOVERYXLOG']]);
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
