/**
 * `delete everything --only-when-gone <namespace>/<statefulset>` (archiver/src/only-when-gone.ts),
 * pure: what the Kubernetes API's answers about the StatefulSet and its pod 0 mean (gone, exists,
 * or no clear answer: refuse), the wait until the deadline on a fake clock, and the command line.
 * The built CLI against a mock API server: only-when-gone-cli.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { databaseObjects } from '../../contract';
import { parseDeleteArgs } from '../../archiver/src/commands/retention';
import { DatabaseStillExistsError, KubernetesApiError, UsageError } from '../../archiver/src/errors';
import type { ApiAnswer } from '../../archiver/src/kubernetes-api';
import { Logger } from '../../archiver/src/logger';
import { judge, parseDatabaseRef, waitUntilGone } from '../../archiver/src/only-when-gone';

const [statefulSet, pod] = databaseObjects('demo', 'wal-postgres');

/** The API server's 404 for `object`: a Status with reason NotFound naming it. */
function notFound(object: typeof statefulSet): ApiAnswer {
  const details = { name: object.name, ...(object.apiGroup ? { group: object.apiGroup } : {}), kind: object.resource };
  const message = `${object.apiGroup ? `${object.resource}.${object.apiGroup}` : object.resource} "${object.name}" not found`;
  return { status: 404, statusText: 'Not Found', body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'NotFound', details, code: 404 }) };
}

function found(object: typeof statefulSet, deletionTimestamp?: string): ApiAnswer {
  return { status: 200, statusText: 'OK', body: JSON.stringify({ kind: object.kind, metadata: { name: object.name, namespace: 'demo', ...(deletionTimestamp ? { deletionTimestamp } : {}) } }) };
}

function failure(status: number, statusText: string, message: string): ApiAnswer {
  return { status, statusText, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: statusText.replace(/ /g, ''), code: status }) };
}

describe('what the answers about the StatefulSet and its pod 0 mean', () => {
  it('gone: both answered by the API server\'s own NotFound, naming them', () => {
    expect(judge([{ object: statefulSet, answer: notFound(statefulSet) }, { object: pod, answer: notFound(pod) }])).toStrictEqual({ verdict: 'gone' });
  });

  it('exists: the StatefulSet answered, whether or not it is being deleted', () => {
    expect(judge([{ object: statefulSet, answer: found(statefulSet) }, { object: pod, answer: found(pod) }])).toStrictEqual({
      verdict: 'exists',
      object: statefulSet,
      state: 'not being deleted: the database is live',
    });
    expect(judge([{ object: statefulSet, answer: found(statefulSet, '2026-11-30T10:00:00Z') }, { object: pod, answer: notFound(pod) }])).toMatchObject({
      verdict: 'exists',
      state: 'being deleted since 2026-11-30T10:00:00Z',
    });
  });

  it('exists: the StatefulSet is gone but its pod 0 is still terminating (Argo CD runs the hook this early)', () => {
    expect(judge([{ object: statefulSet, answer: notFound(statefulSet) }, { object: pod, answer: found(pod, '2026-11-30T10:00:05Z') }])).toStrictEqual({
      verdict: 'exists',
      object: pod,
      state: 'being deleted since 2026-11-30T10:00:05Z',
    });
  });

  it('exists: a 200 whose body does not parse still means something is there', () => {
    expect(judge([{ object: statefulSet, answer: { status: 200, statusText: 'OK', body: '<html>' } }, { object: pod, answer: notFound(pod) }])).toMatchObject({ verdict: 'exists' });
  });

  it('unknown (refuse): 403 names the permission the ServiceAccount lacks, and that the Role or RoleBinding is missing', () => {
    const forbidden = failure(403, 'Forbidden', 'pods "wal-postgres-0" is forbidden: User "system:serviceaccount:demo:wal-postgres-wipeout" cannot get resource "pods"');
    const verdict = judge([{ object: statefulSet, answer: notFound(statefulSet) }, { object: pod, answer: forbidden }]);
    expect(verdict).toStrictEqual({
      verdict: 'unknown',
      object: pod,
      problem:
        'the Kubernetes API answered 403 Forbidden (pods "wal-postgres-0" is forbidden: User "system:serviceaccount:demo:wal-postgres-wipeout" cannot get resource "pods"): ' +
        'the Job\'s ServiceAccount lacks get on pods (apiGroup "", resourceNames ["wal-postgres-0"]) in namespace demo: the Role that grants it, or the RoleBinding to the ServiceAccount, is missing',
    });
  });

  it('unknown (refuse) wins over exists and gone, whichever object it is about: fail closed', () => {
    expect(judge([{ object: statefulSet, answer: found(statefulSet) }, { object: pod, answer: failure(500, 'Internal Server Error', 'etcd timeout') }])).toMatchObject({
      verdict: 'unknown',
      object: pod,
      problem: 'the Kubernetes API answered 500 Internal Server Error (etcd timeout): the API server failed; the Job tries again',
    });
  });

  it.each([
    ['401, a token not accepted', failure(401, 'Unauthorized', 'Unauthorized'), /401 Unauthorized \(Unauthorized\): the ServiceAccount token was not accepted/],
    ['a bare 404 (another server, a proxy, a wrong path)', { status: 404, statusText: 'Not Found', body: '404 page not found\n' }, /404 Not Found: not the API server's NotFound for statefulsets "wal-postgres"/],
    ['a NotFound about another object', notFound(databaseObjects('demo', 'orders')[0]), /not the API server's NotFound/],
    ['a NotFound about the pod, for the StatefulSet\'s path', notFound(pod), /not the API server's NotFound/],
    ['a 404 Status without details', failure(404, 'Not Found', 'the server could not find the requested resource'), /not the API server's NotFound/],
    ['429 Too Many Requests', failure(429, 'Too Many Requests', 'slow down'), /429 Too Many Requests \(slow down\): an answer that says neither/],
    ['a redirect', { status: 302, statusText: 'Found', body: '' }, /302 Found: an answer that says neither/],
  ])('unknown (refuse) for %s', (_what, answer, problem) => {
    const verdict = judge([{ object: statefulSet, answer }, { object: pod, answer: notFound(pod) }]);
    expect(verdict.verdict).toBe('unknown');
    expect(verdict.verdict === 'unknown' && verdict.problem).toMatch(problem);
  });
});

/** A clock the waits advance: no real time passes. */
function fakeClock() {
  let now = 0;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
}

/** `get` answering from `script(round, path)`, counting rounds by the StatefulSet's requests. */
function scripted(script: (round: number, path: string) => ApiAnswer) {
  const asked: string[] = [];
  let round = -1;
  return {
    asked,
    get: async (path: string) => {
      if (path === statefulSet.path) round += 1;
      asked.push(path);
      return script(round, path);
    },
  };
}

const quiet = new Logger('error');
const answerFor = (path: string, live: boolean) => (path === statefulSet.path ? (live ? found(statefulSet) : notFound(statefulSet)) : live ? found(pod) : notFound(pod));

describe('waiting until the database is gone', () => {
  it('returns after one round when both are gone, having asked for the StatefulSet and then its pod 0', async () => {
    const clock = fakeClock();
    const api = scripted((_round, path) => answerFor(path, false));
    await waitUntilGone({ objects: [statefulSet, pod], get: api.get, timeoutMs: 600_000, log: quiet, ...clock });
    expect(api.asked).toStrictEqual(['/apis/apps/v1/namespaces/demo/statefulsets/wal-postgres', '/api/v1/namespaces/demo/pods/wal-postgres-0']);
    expect(clock.sleeps).toStrictEqual([]);
  });

  it('asks every 5 s while the database exists, and returns once it is gone', async () => {
    const clock = fakeClock();
    const api = scripted((round, path) => answerFor(path, round < 3));
    await waitUntilGone({ objects: [statefulSet, pod], get: api.get, timeoutMs: 600_000, log: quiet, ...clock });
    expect(clock.sleeps).toStrictEqual([5000, 5000, 5000]);
  });

  it('fails at the deadline, naming the object that still exists and that nothing was deleted', async () => {
    const clock = fakeClock();
    const api = scripted((_round, path) => answerFor(path, true));
    const waiting = waitUntilGone({ objects: [statefulSet, pod], get: api.get, timeoutMs: 12_000, log: quiet, ...clock });
    await expect(waiting).rejects.toThrow(DatabaseStillExistsError);
    await expect(waiting).rejects.toThrow(
      'StatefulSet demo/wal-postgres still exists after waiting 12s (not being deleted: the database is live): nothing was deleted; the archive is deleted only once StatefulSet demo/wal-postgres and Pod demo/wal-postgres-0 are gone',
    );
    // Asked at 0, 5 and 10 s, then once more at the deadline.
    expect(clock.sleeps).toStrictEqual([5000, 5000, 2000]);
  });

  it('fails at once on an unclear answer, without waiting for the deadline', async () => {
    const clock = fakeClock();
    const api = scripted(() => failure(403, 'Forbidden', 'forbidden'));
    const waiting = waitUntilGone({ objects: [statefulSet, pod], get: api.get, timeoutMs: 600_000, log: quiet, ...clock });
    await expect(waiting).rejects.toThrow(KubernetesApiError);
    await expect(waiting).rejects.toThrow(/^cannot tell whether StatefulSet demo\/wal-postgres still exists: the Kubernetes API answered 403 Forbidden .*; nothing was deleted$/);
    expect(clock.sleeps).toStrictEqual([]);
  });

  it('fails at once when a request gets no answer, even after the database was seen', async () => {
    const clock = fakeClock();
    let calls = 0;
    const get = async (path: string) => {
      if (++calls > 2) throw new KubernetesApiError('cannot reach the Kubernetes API at https://10.96.0.1:443: connect ECONNREFUSED');
      return answerFor(path, true);
    };
    await expect(waitUntilGone({ objects: [statefulSet, pod], get, timeoutMs: 600_000, log: quiet, ...clock })).rejects.toThrow(
      'cannot tell whether StatefulSet demo/wal-postgres still exists: cannot reach the Kubernetes API at https://10.96.0.1:443: connect ECONNREFUSED; nothing was deleted',
    );
  });

  it('logs what it waits for when that changes, not at every question', async () => {
    const clock = fakeClock();
    const lines: string[] = [];
    const log = new Logger('info', (line) => lines.push(line));
    // The StatefulSet for two rounds, then its terminating pod for two rounds, then nothing.
    const api = scripted((round, path) => (path === statefulSet.path ? (round < 2 ? found(statefulSet, 'T') : notFound(statefulSet)) : round < 4 ? found(pod, 'T') : notFound(pod)));
    await waitUntilGone({ objects: [statefulSet, pod], get: api.get, timeoutMs: 600_000, log, ...clock });
    expect(lines.map((line) => line.replace(/^time=\S+ /, ''))).toStrictEqual([
      'level=info component=archiver msg="waiting for the database to be gone before deleting its archive" exists="StatefulSet demo/wal-postgres (being deleted since T)" timeout=10m\n',
      'level=info component=archiver msg="waiting for the database to be gone before deleting its archive" exists="Pod demo/wal-postgres-0 (being deleted since T)" timeout=10m\n',
      'level=info component=archiver msg="the database is gone: its archive may be deleted" gone="StatefulSet demo/wal-postgres and Pod demo/wal-postgres-0"\n',
    ]);
  });
});

describe('delete everything --only-when-gone: the command line', () => {
  it('reads <namespace>/<statefulset>, with a wait of 10 minutes by default or --gone-timeout', () => {
    expect(parseDeleteArgs(['everything', '--confirm', '--only-when-gone', 'demo/wal-postgres'])).toStrictEqual({
      policy: { everything: true },
      confirm: true,
      json: false,
      onlyWhenGone: { database: { namespace: 'demo', name: 'wal-postgres' }, timeoutMs: 600_000 },
    });
    expect(parseDeleteArgs(['everything', '--only-when-gone=prod/orders', '--gone-timeout', '90s']).onlyWhenGone).toStrictEqual({
      database: { namespace: 'prod', name: 'orders' },
      timeoutMs: 90_000,
    });
    expect(parseDeleteArgs(['everything', '--confirm'])).toStrictEqual({ policy: { everything: true }, confirm: true, json: false });
  });

  it.each([
    [['retain', '2', '--only-when-gone', 'demo/wal-postgres'], /--only-when-gone is for delete everything/],
    [['everything', '--gone-timeout', '1m'], /--gone-timeout needs --only-when-gone/],
    [['everything', '--only-when-gone', 'wal-postgres'], /takes <namespace>\/<statefulset>.*got "wal-postgres"/],
    [['everything', '--only-when-gone', 'demo/wal-postgres/x'], /takes <namespace>\/<statefulset>/],
    [['everything', '--only-when-gone', 'demo/../../api'], /takes <namespace>\/<statefulset>/],
    [['everything', '--only-when-gone', 'Demo/WAL'], /takes <namespace>\/<statefulset>/],
    [['everything', '--only-when-gone', 'demo/wal-postgres', '--gone-timeout', '10'], /--gone-timeout takes a duration/],
    [['everything', '--only-when-gone', 'demo/wal-postgres', '--gone-timeout', '0s'], /--gone-timeout must be longer than 0/],
    [['everything', '--only-when-gone'], /--only-when-gone needs a value/],
  ])('fails for %j', (args, message) => {
    expect(() => parseDeleteArgs(args as string[])).toThrow(UsageError);
    expect(() => parseDeleteArgs(args as string[])).toThrow(message);
  });

  it('accepts Kubernetes names only: a pod name <statefulset>-0 must stay within 63 characters', () => {
    expect(parseDatabaseRef(`demo/${'a'.repeat(61)}`).name).toHaveLength(61);
    expect(() => parseDatabaseRef(`demo/${'a'.repeat(62)}`)).toThrow(UsageError);
    expect(() => parseDatabaseRef(`${'n'.repeat(64)}/db`)).toThrow(UsageError);
  });
});
