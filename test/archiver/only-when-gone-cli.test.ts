/**
 * `archiver delete everything --confirm --only-when-gone demo/wal-postgres`, the built CLI, against
 * a real archive in a local directory and a MOCK of the Kubernetes API server
 * (testkit/mock-kubernetes-api.ts: HTTPS on 127.0.0.1 with a throwaway self-signed certificate,
 * a ServiceAccount token, RBAC): the archive of a database that still exists is never deleted,
 * whatever the API answers or fails to answer; once the StatefulSet and its pod 0 are gone it is.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openStorage } from '../../archiver/src/storage/open';
import type { Storage } from '../../archiver/src/storage/storage';
import { EXIT_CODES } from '../../contract';
import { RunResult, lastLog, logLines, runArchiverAsync } from '../../testkit/archiver';
import { waitUntil } from '../../testkit/doubles';
import { MockKubernetesApi, RenderedObject, startMockKubernetesApi } from '../../testkit/mock-kubernetes-api';
import { freePort } from '../../testkit/ports';
import { generateSelfSignedCertificate } from '../../testkit/s3-server';

/** Objects of one database's archive (and of a backup that never finished). */
const ARCHIVE_KEYS = ['archive.json', 'basebackups/base_20261130T020000Z/parts/0001.tar', 'wal/000000010000000000000001', 'wal/000000010000000000000002', 'wal/00000002.history'];
const STATEFUL_SET_PATH = '/apis/apps/v1/namespaces/demo/statefulsets/wal-postgres';
const POD_PATH = '/api/v1/namespaces/demo/pods/wal-postgres-0';
const WIPE_OUT = ['delete', 'everything', '--confirm', '--only-when-gone', 'demo/wal-postgres'];

/** The Role and RoleBinding WipeOutJob renders for demo/wal-postgres, with `rules`. */
function rbacWith(rules: unknown[]): RenderedObject[] {
  return [
    { kind: 'Role', metadata: { name: 'wal-postgres-wipeout', namespace: 'demo' }, rules },
    {
      kind: 'RoleBinding',
      metadata: { name: 'wal-postgres-wipeout', namespace: 'demo' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'wal-postgres-wipeout' },
      subjects: [{ kind: 'ServiceAccount', name: 'wal-postgres-wipeout', namespace: 'demo' }],
    },
  ];
}
const STATEFUL_SET_RULE = { apiGroups: ['apps'], resources: ['statefulsets'], resourceNames: ['wal-postgres'], verbs: ['get'] };
const POD_RULE = { apiGroups: [''], resources: ['pods'], resourceNames: ['wal-postgres-0'], verbs: ['get'] };

describe('delete everything --only-when-gone, the built CLI against a mock Kubernetes API', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'only-when-gone-'));
  const root = path.join(scratch, 'archive');
  let api: MockKubernetesApi;
  let storage: Storage;
  /** Every output of the CLI in this file, checked for the token at the end. */
  const outputs: string[] = [];

  beforeAll(async () => {
    api = await startMockKubernetesApi(scratch);
    storage = await openStorage({ kind: 'local', root });
  });
  afterAll(async () => {
    await storage?.close();
    await api?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });
  beforeEach(async () => {
    api.reset();
    api.rbac = rbacWith([STATEFUL_SET_RULE, POD_RULE]);
    for (const key of ARCHIVE_KEYS) await storage.put(key, Buffer.from(key));
  });

  const keys = async () => (await storage.list('')).map((o) => o.key).sort();

  async function wipeOut(env: Record<string, string> = api.env, args: string[] = WIPE_OUT): Promise<RunResult> {
    const result = await runArchiverAsync(args, { ARCHIVER_REPOSITORY: `file://${root}`, ARCHIVER_DAEMON: 'off', ...env });
    outputs.push(result.stdout, result.stderr);
    return result;
  }

  /** The refusal: exit 1, one error line of `error` saying `message`, the archive untouched, no plan printed. */
  async function expectRefused(result: RunResult, error: string, message: RegExp): Promise<string> {
    const line = lastLog(result.stderr);
    expect(result.status).toBe(EXIT_CODES.error);
    expect(line.level).toBe('error');
    expect(line.error).toBe(error);
    expect(line.msg).toMatch(message);
    expect(line.msg).toMatch(/nothing was deleted/);
    expect(logLines(result.stderr).filter((l) => l.level === 'error')).toHaveLength(1);
    expect(result.stdout).toBe('');
    expect(await keys()).toStrictEqual(ARCHIVE_KEYS);
    return line.msg;
  }

  it('deletes every object of the archive when the StatefulSet and its pod 0 are gone', async () => {
    const result = await wipeOut();
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(EXIT_CODES.ok);
    expect(result.stdout).toContain('deleted');
    expect(await keys()).toStrictEqual([]);
    expect(api.requests.map((r) => `${r.path} ${r.status}`)).toStrictEqual([`${STATEFUL_SET_PATH} 404`, `${POD_PATH} 404`]);
  });

  it('deletes nothing while the StatefulSet exists, and says so in one line after the wait', async () => {
    // GIVEN a live database (a namespace restored by `kubectl apply -f dist/`: the Job beside it)
    api.putStatefulSet('demo', 'wal-postgres');
    api.putPod('demo', 'wal-postgres-0');
    // WHEN
    const started = Date.now();
    const result = await wipeOut(api.env, [...WIPE_OUT, '--gone-timeout', '2s']);
    // THEN
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    const msg = await expectRefused(result, 'DatabaseStillExistsError', /^StatefulSet demo\/wal-postgres still exists after waiting 2s \(not being deleted: the database is live\): nothing was deleted/);
    expect(msg).toBe('StatefulSet demo/wal-postgres still exists after waiting 2s (not being deleted: the database is live): nothing was deleted; the archive is deleted only once StatefulSet demo/wal-postgres and Pod demo/wal-postgres-0 are gone');
    expect(api.requestsFor(STATEFUL_SET_PATH).length).toBeGreaterThanOrEqual(2);
  });

  it('waits while pod 0 terminates after its StatefulSet was deleted (as Argo CD runs the hook), then deletes everything', async () => {
    // GIVEN the StatefulSet deleted, its pod 0 still terminating
    api.putPod('demo', 'wal-postgres-0', { deletionTimestamp: '2026-11-30T10:00:00Z' });
    // WHEN the pod goes while the Job waits
    const running = wipeOut();
    await waitUntil(() => api.requestsFor(POD_PATH).length >= 1, 'the first question about pod 0');
    expect(await keys()).toStrictEqual(ARCHIVE_KEYS);
    api.deletePod('demo', 'wal-postgres-0');
    const result = await running;
    // THEN
    expect(result.stderr).not.toMatch(/level=error/);
    expect(result.status).toBe(EXIT_CODES.ok);
    expect(logLines(result.stderr).map((l) => l.exists ?? l.gone).filter(Boolean)).toStrictEqual([
      'Pod demo/wal-postgres-0 (being deleted since 2026-11-30T10:00:00Z)',
      'StatefulSet demo/wal-postgres and Pod demo/wal-postgres-0',
    ]);
    expect(await keys()).toStrictEqual([]);
  });

  it('deletes everything once a live StatefulSet disappears during the wait', async () => {
    api.putStatefulSet('demo', 'wal-postgres');
    api.putPod('demo', 'wal-postgres-0');
    const running = wipeOut();
    await waitUntil(() => api.requestsFor(STATEFUL_SET_PATH).length >= 1, 'the first question about the StatefulSet');
    api.deleteStatefulSet('demo', 'wal-postgres');
    api.deletePod('demo', 'wal-postgres-0');
    const result = await running;
    expect(result.status).toBe(EXIT_CODES.ok);
    expect(await keys()).toStrictEqual([]);
  });

  it('deletes nothing on 403, naming the permission the ServiceAccount lacks', async () => {
    // GIVEN a Role that grants the StatefulSet but not the pod
    api.rbac = rbacWith([STATEFUL_SET_RULE]);
    const msg = await expectRefused(await wipeOut(), 'KubernetesApiError', /^cannot tell whether Pod demo\/wal-postgres-0 still exists: the Kubernetes API answered 403 Forbidden/);
    expect(msg).toContain('User "system:serviceaccount:demo:wal-postgres-wipeout" cannot get resource "pods"');
    expect(msg).toContain('the Job\'s ServiceAccount lacks get on pods (apiGroup "", resourceNames ["wal-postgres-0"]) in namespace demo: the Role that grants it, or the RoleBinding to the ServiceAccount, is missing');
  });

  it('deletes nothing on 403 with no Role at all, even though the database is gone', async () => {
    api.rbac = [];
    await expectRefused(await wipeOut(), 'KubernetesApiError', /StatefulSet demo\/wal-postgres still exists: the Kubernetes API answered 403 Forbidden .*lacks get on statefulsets \(apiGroup "apps", resourceNames \["wal-postgres"\]\)/);
  });

  it('deletes nothing on 401 (a token the API server does not accept)', async () => {
    const dir = path.join(scratch, 'other-token');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(path.join(api.serviceAccountDir, 'ca.crt'), path.join(dir, 'ca.crt'));
    fs.writeFileSync(path.join(dir, 'token'), 'a-token-of-another-cluster');
    await expectRefused(await wipeOut({ ...api.env, ARCHIVER_SERVICE_ACCOUNT_DIR: dir }), 'KubernetesApiError', /answered 401 Unauthorized .*the ServiceAccount token was not accepted/);
  });

  it('deletes nothing on a server error, and on a 404 that is not the API server\'s NotFound', async () => {
    api.forcedAnswer = { status: 500, body: JSON.stringify({ kind: 'Status', message: 'etcdserver: request timed out', code: 500 }) };
    await expectRefused(await wipeOut(), 'KubernetesApiError', /answered 500 Internal Server Error \(etcdserver: request timed out\)/);
    api.forcedAnswer = { status: 404, body: '404 page not found\n' };
    await expectRefused(await wipeOut(), 'KubernetesApiError', /answered 404 Not Found: not the API server's NotFound for statefulsets "wal-postgres"/);
  });

  it('deletes nothing when the Kubernetes API is unreachable', async () => {
    const port = await freePort();
    await expectRefused(await wipeOut({ ...api.env, KUBERNETES_SERVICE_PORT: String(port) }), 'KubernetesApiError', new RegExp(`cannot reach the Kubernetes API at https://127\\.0\\.0\\.1:${port}: `));
  });

  it('deletes nothing when the API server\'s certificate is not signed by the ServiceAccount\'s CA', async () => {
    const dir = path.join(scratch, 'wrong-ca');
    const { cert } = await generateSelfSignedCertificate(path.join(scratch, 'other-tls'));
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(cert, path.join(dir, 'ca.crt'));
    fs.copyFileSync(path.join(api.serviceAccountDir, 'token'), path.join(dir, 'token'));
    await expectRefused(await wipeOut({ ...api.env, ARCHIVER_SERVICE_ACCOUNT_DIR: dir }), 'KubernetesApiError', /the certificate of the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ was not accepted with the CA in .*wrong-ca\/ca\.crt/);
    // The token never reached a server the CA does not vouch for: the TLS handshake failed first.
    expect(api.requests).toStrictEqual([]);
  });

  it('deletes nothing outside a pod (no KUBERNETES_SERVICE_HOST) or without the ServiceAccount token', async () => {
    const { KUBERNETES_SERVICE_HOST: _host, ...noHost } = api.env;
    await expectRefused(await wipeOut(noHost), 'KubernetesApiError', /^cannot tell whether StatefulSet demo\/wal-postgres still exists: KUBERNETES_SERVICE_HOST is not set: not running in a Kubernetes pod/);
    const empty = fs.mkdtempSync(path.join(scratch, 'no-token-'));
    await expectRefused(await wipeOut({ ...api.env, ARCHIVER_SERVICE_ACCOUNT_DIR: empty }), 'KubernetesApiError', /cannot read the ServiceAccount's token .*no-token-\w+\/token \(ENOENT\): the container must have its ServiceAccount token mounted there \(automountServiceAccountToken: true, or a projected serviceAccountToken volume\)/);
  });

  it('sends the token as a Bearer token, and never prints it (not even at debug level)', async () => {
    api.putPod('demo', 'wal-postgres-0', { deletionTimestamp: '2026-11-30T10:00:00Z' });
    const running = wipeOut({ ...api.env, ARCHIVER_LOG_LEVEL: 'debug' });
    await waitUntil(() => api.requestsFor(POD_PATH).length >= 1, 'the first question about pod 0');
    api.deletePod('demo', 'wal-postgres-0');
    expect((await running).status).toBe(EXIT_CODES.ok);
    expect(api.requests.length).toBeGreaterThanOrEqual(4);
    for (const request of api.requests) expect(request.authorization).toBe(`Bearer ${api.token}`);
    // Every run of this file, refusals included.
    expect(outputs.length).toBeGreaterThan(10);
    for (const output of outputs) expect(output).not.toContain(api.token);
  });
});
