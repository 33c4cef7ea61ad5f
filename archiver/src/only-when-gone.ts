/**
 * `delete everything --only-when-gone <namespace>/<statefulset>`: the archive of a database is
 * deleted only once the database is gone. The WipeOut Job runs it; Argo CD creates that Job after
 * it deleted the database, but any tool that ignores the hook annotation (`kubectl apply -f dist/`,
 * a namespace restored by re-applying its YAML) would create it beside a live database.
 *
 * 1. Ask the Kubernetes API for the StatefulSet and its pod 0 (contract `databaseObjects`).
 * 2. Both answered "not found", by the API server's own NotFound status naming them: gone, delete.
 * 3. Either exists (a terminating pod too): ask again every GONE_POLL_SECONDS until the deadline,
 *    then refuse, naming the object and whether it is being deleted.
 * 4. Any other answer, or none (401, 403, 5xx, a 404 that is not the API server's NotFound, a
 *    network or certificate failure): refuse at once. Nothing is deleted on a doubt.
 *
 * `judge` (steps 2-4 for one round of answers) is pure; `waitUntilGone` is the loop around it.
 */
import { DatabaseObject, GONE_POLL_SECONDS, formatDuration } from '../../contract';
import { DatabaseStillExistsError, KubernetesApiError, UsageError } from './errors';
import type { ApiAnswer } from './kubernetes-api';
import type { Logger } from './logger';

/** The database `--only-when-gone` names. */
export interface DatabaseRef {
  readonly namespace: string;
  /** The StatefulSet's name. */
  readonly name: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `<namespace>/<statefulset>`; a UsageError naming the value otherwise. */
export function parseDatabaseRef(text: string, flag = '--only-when-gone'): DatabaseRef {
  const parts = text.split('/');
  const [namespace, name] = parts;
  // A pod name is `<statefulset>-<ordinal>` and must stay a DNS label: at most 63 characters.
  if (parts.length !== 2 || !DNS_LABEL.test(namespace) || namespace.length > 63 || !DNS_LABEL.test(name) || name.length > 61) {
    throw new UsageError(`${flag} takes <namespace>/<statefulset>, both Kubernetes names (lower-case letters, digits and '-'), e.g. demo/wal-postgres; got ${JSON.stringify(text)}`);
  }
  return { namespace, name };
}

/** One object and the API server's answer to `GET` on it. */
export interface ObjectAnswer {
  readonly object: DatabaseObject;
  readonly answer: ApiAnswer;
}

/** What one round of answers means. */
export type Verdict =
  /** Every object answered the API server's NotFound. */
  | { readonly verdict: 'gone' }
  /** `object` exists; `state` says whether it is being deleted. */
  | { readonly verdict: 'exists'; readonly object: DatabaseObject; readonly state: string }
  /** No clear answer about `object`: refuse. `problem` names the answer and the fix. */
  | { readonly verdict: 'unknown'; readonly object: DatabaseObject; readonly problem: string };

/** `Kind namespace/name`. */
export function describeObject(object: DatabaseObject): string {
  return `${object.kind} ${object.namespace}/${object.name}`;
}

/** The permission `GET` on `object` needs, as a Role's rule reads. */
function permission(object: DatabaseObject): string {
  return `get on ${object.resource} (apiGroup ${JSON.stringify(object.apiGroup)}, resourceNames [${JSON.stringify(object.name)}]) in namespace ${object.namespace}`;
}

function parseJson(body: string): Record<string, any> | undefined {
  try {
    const value = JSON.parse(body);
    return value !== null && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The `message` of a Kubernetes Status answer, shortened, for a refusal. */
function statusMessage(body: string): string {
  const message = parseJson(body)?.message;
  if (typeof message !== 'string' || message === '') return '';
  return ` (${message.length > 300 ? `${message.slice(0, 300)}...` : message})`;
}

/**
 * Whether the answer is the API server's NotFound for exactly this object: a Status with reason
 * NotFound whose details name its resource, group and name. A bare 404 (another server at the
 * address, a proxy, a wrong path) says nothing about the database.
 */
function isNotFound(object: DatabaseObject, answer: ApiAnswer): boolean {
  if (answer.status !== 404) return false;
  const status = parseJson(answer.body);
  const details = status?.details;
  return (
    status?.kind === 'Status' &&
    status.reason === 'NotFound' &&
    details?.name === object.name &&
    details?.kind === object.resource &&
    (details?.group ?? '') === object.apiGroup
  );
}

/** One object's state: gone, exists (and how), or unknown (and why). */
function judgeOne({ object, answer }: ObjectAnswer): Verdict {
  const what = `${answer.status}${answer.statusText ? ` ${answer.statusText}` : ''}`;
  if (isNotFound(object, answer)) return { verdict: 'gone' };
  if (answer.status === 200) {
    const since = parseJson(answer.body)?.metadata?.deletionTimestamp;
    const state = typeof since === 'string' ? `being deleted since ${since}` : 'not being deleted: the database is live';
    return { verdict: 'exists', object, state };
  }
  const unknown = (problem: string): Verdict => ({ verdict: 'unknown', object, problem: `the Kubernetes API answered ${what}${statusMessage(answer.body)}: ${problem}` });
  switch (answer.status) {
    case 401:
      return unknown('the ServiceAccount token was not accepted (expired, revoked, or of another cluster)');
    case 403:
      return unknown(`the Job's ServiceAccount lacks ${permission(object)}: the Role that grants it, or the RoleBinding to the ServiceAccount, is missing`);
    case 404:
      return unknown(`not the API server's NotFound for ${object.resource} ${JSON.stringify(object.name)} (another server at this address, or a proxy?)`);
    default:
      return unknown(answer.status >= 500 ? 'the API server failed; the Job tries again' : 'an answer that says neither the object nor that it is not found');
  }
}

/**
 * What one round of answers means: unknown when any answer is unclear (fail closed, whatever the
 * others say), else exists when any object exists, else gone. No answers is unknown too.
 */
export function judge(answers: readonly ObjectAnswer[]): Verdict {
  const verdicts = answers.map(judgeOne);
  const unknown = verdicts.find((v) => v.verdict === 'unknown');
  if (unknown) return unknown;
  const exists = verdicts.find((v) => v.verdict === 'exists');
  if (exists) return exists;
  if (answers.length === 0) throw new Error('judge: no objects to ask about');
  return { verdict: 'gone' };
}

export interface WaitUntilGoneOptions {
  /** The database's objects, in the order asked (contract `databaseObjects`). */
  readonly objects: readonly DatabaseObject[];
  /** GET on the Kubernetes API (kubernetes-api.ts); rejects when no answer came. */
  readonly get: (path: string) => Promise<ApiAnswer>;
  /** How long an existing database is waited for before the refusal. */
  readonly timeoutMs: number;
  /** @default GONE_POLL_SECONDS */
  readonly intervalMs?: number;
  readonly log: Logger;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Resolves once every object is gone. Rejects with DatabaseStillExistsError when one still exists
 * at the deadline, and with KubernetesApiError at the first unclear answer or failed request.
 */
export async function waitUntilGone(options: WaitUntilGoneOptions): Promise<void> {
  const { objects, get, timeoutMs, log } = options;
  const intervalMs = options.intervalMs ?? GONE_POLL_SECONDS * 1000;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = now() + timeoutMs;
  const all = objects.map(describeObject).join(' and ');
  let waitingFor = '';
  for (;;) {
    const answers: ObjectAnswer[] = [];
    for (const object of objects) {
      try {
        answers.push({ object, answer: await get(object.path) });
      } catch (error) {
        throw new KubernetesApiError(`cannot tell whether ${describeObject(object)} still exists: ${(error as Error).message}; nothing was deleted`, { cause: error });
      }
    }
    const verdict = judge(answers);
    if (verdict.verdict === 'gone') {
      log.info('the database is gone: its archive may be deleted', { gone: all });
      return;
    }
    if (verdict.verdict === 'unknown') {
      throw new KubernetesApiError(`cannot tell whether ${describeObject(verdict.object)} still exists: ${verdict.problem}; nothing was deleted`);
    }
    const blocking = `${describeObject(verdict.object)} (${verdict.state})`;
    if (now() >= deadline) {
      throw new DatabaseStillExistsError(
        `${describeObject(verdict.object)} still exists after waiting ${formatDuration(timeoutMs)} (${verdict.state}): nothing was deleted; the archive is deleted only once ${all} are gone`,
      );
    }
    if (blocking !== waitingFor) {
      log.info('waiting for the database to be gone before deleting its archive', { exists: blocking, timeout: formatDuration(timeoutMs) });
      waitingFor = blocking;
    }
    await sleep(Math.min(intervalMs, Math.max(0, deadline - now())));
  }
}
