/**
 * The archiver's command line (archiver/src/cli.ts and commands/), as a person meets it: run by
 * hand, in a terminal, next to PostgreSQL's log.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../contract';
import { ROOT, daemonProcesses, fakeDataDirectory, lastLog, logLines, makeSegment, runArchiver, stopArchiver } from '../../testkit/archiver';

const SYSID = 7311676708303809017n;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let base: string;
let env: Record<string, string>;
beforeEach(() => {
  base = fs.mkdtempSync(path.join(scratch, 'case-'));
  env = { ARCHIVER_REPOSITORY: `file://${path.join(base, 'repo')}`, ARCHIVER_SPOOL: path.join(base, 'spool'), ARCHIVER_DAEMON_IDLE_SECONDS: '30' };
});
afterEach(() => stopArchiver(env));

/** Every file under `dir`, relative. */
function filesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()) : [];
}

describe('archiver --version', () => {
  it.each(['--version', '-v', '-V', 'version'])('prints the version for %s', (word) => {
    const result = runArchiver([word], env);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${JSON.parse(fs.readFileSync(path.join(ROOT, 'archiver/package.json'), 'utf8')).version}\n`);
  });
});

describe('archiver stop', () => {
  it('says which background archiver it stopped, and fails (not found) when none runs', () => {
    const data = fakeDataDirectory(base);
    expect(runArchiver(['wal-push', 'pg_wal/000000010000000000000001'], env, data.dataDir).status).toBe(EXIT_CODES.error); // no such file yet
    data.addReady('000000010000000000000001', makeSegment(SYSID, 1, 1 << 20));
    expect(runArchiver(['wal-push', 'pg_wal/000000010000000000000001'], env, data.dataDir).status).toBe(0);
    const [pid] = daemonProcesses(env.ARCHIVER_SPOOL);
    const stopped = runArchiver(['stop'], env);
    expect(stopped.status).toBe(0);
    expect(stopped.stdout).toBe(`stopped the background archiver (pid ${pid}) of the spool ${env.ARCHIVER_SPOOL}\n`);
    const again = runArchiver(['stop'], env);
    expect(again.status).toBe(EXIT_CODES.notFound);
    expect(lastLog(again.stderr)).toMatchObject({ level: 'info', error: 'DaemonNotRunningError', msg: expect.stringContaining(`no background archiver to stop for the spool ${env.ARCHIVER_SPOOL}`) });
  });
});

describe('archiver check --storage', () => {
  it('fails (not found) and says so when the location holds no archive yet, after printing the configuration', () => {
    const result = runArchiver(['check', '--storage'], env);
    expect(result.status).toBe(EXIT_CODES.notFound);
    expect(JSON.parse(result.stdout)).toMatchObject({ location: `file://${path.join(base, 'repo')}`, identity: null });
    expect(lastLog(result.stderr)).toMatchObject({ error: 'ArchiveNotFoundError', msg: expect.stringContaining('nothing is archived at') });
  });

  it('prints the identity of an archive', () => {
    const data = fakeDataDirectory(base);
    data.addReady('000000010000000000000001', makeSegment(SYSID, 1, 1 << 20));
    expect(runArchiver(['wal-push', 'pg_wal/000000010000000000000001'], env, data.dataDir).status).toBe(0);
    const result = runArchiver(['check', '--storage'], env);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout).identity).toMatchObject({ systemIdentifier: SYSID.toString(), walSegmentSize: 1 << 20 });
  });
});

describe('credentials written into a URL', () => {
  it.each([
    ['ARCHIVER_S3_ENDPOINT', { ARCHIVER_REPOSITORY: 's3://kubedb/archive', ARCHIVER_S3_ENDPOINT: 'http://admin:hunter2@minio.storage.svc:9000' }],
    ['ARCHIVER_REPOSITORY', { ARCHIVER_REPOSITORY: 's3://admin:hunter2@kubedb/archive' }],
  ])('in %s are refused, never printed, never written to the spool', (variable, location) => {
    const data = fakeDataDirectory(base);
    data.addReady('000000010000000000000001', makeSegment(SYSID, 1, 1 << 20));
    const withCredentials = { ...env, ...location };
    for (const args of [['check'], ['check', '--storage'], ['wal-push', 'pg_wal/000000010000000000000001'], ['wal-fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG']]) {
      const result = runArchiver(args, withCredentials, data.dataDir);
      expect(result.status).toBe(EXIT_CODES.usage);
      expect(result.stdout + result.stderr).not.toContain('hunter2');
      expect(lastLog(result.stderr)).toMatchObject({ error: 'ConfigError', msg: expect.stringMatching(new RegExp(`^${variable}: .*credentials`)) });
    }
    for (const file of filesUnder(env.ARCHIVER_SPOOL)) expect(fs.readFileSync(path.join(env.ARCHIVER_SPOOL, file), 'utf8')).not.toContain('hunter2');
  });
});

describe('archiver wal-fetch', () => {
  it('fails as a usage error, leaving nothing behind, when the destination is a directory', () => {
    const data = fakeDataDirectory(base);
    data.addReady('000000010000000000000001', makeSegment(SYSID, 1, 1 << 20));
    expect(runArchiver(['wal-push', 'pg_wal/000000010000000000000001'], { ...env, ARCHIVER_DAEMON: 'off' }, data.dataDir).status).toBe(0);
    const before = filesUnder(base).sort();
    const result = runArchiver(['wal-fetch', '000000010000000000000001', data.walDir], { ...env, ARCHIVER_DAEMON: 'off' }, data.dataDir);
    expect(result.status).toBe(EXIT_CODES.usage);
    expect(lastLog(result.stderr).msg).toContain(`the destination ${data.walDir} is a directory`);
    expect(filesUnder(base).sort()).toStrictEqual(before);
  });

  it('works alone, without a spool, when run by hand outside a data directory', () => {
    const data = fakeDataDirectory(base);
    const segment = makeSegment(SYSID, 1, 1 << 20);
    data.addReady('000000010000000000000001', segment);
    expect(runArchiver(['wal-push', 'pg_wal/000000010000000000000001'], env, data.dataDir).status).toBe(0);
    // No ARCHIVER_SPOOL, no PGDATA, a working directory that is no data directory (here: '/').
    const { ARCHIVER_SPOOL: _spool, ...noSpool } = env;
    const target = path.join(base, 'restored');
    const result = runArchiver(['wal-fetch', '000000010000000000000001', target], noSpool, '/');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(fs.readFileSync(target).equals(segment)).toBe(true);
    expect(fs.existsSync('/archiver-spool')).toBe(false);
  });
});

describe('log lines', () => {
  it('are the same logfmt from Node and from the bash helper, so that PostgreSQL\'s log reads as one', () => {
    const data = fakeDataDirectory(base);
    data.addReady('000000010000000000000001', makeSegment(SYSID, 1, 1 << 20));
    expect(runArchiver(['wal-push', 'pg_wal/000000010000000000000001'], env, data.dataDir).status).toBe(0);
    // Answered by the running background archiver through the bash helper...
    const viaHelper = runArchiver(['wal-fetch', '000000010000000000000009', 'pg_wal/RECOVERYXLOG'], env, data.dataDir);
    // ...and by Node working alone.
    const alone = runArchiver(['wal-fetch', '000000010000000000000009', 'pg_wal/RECOVERYXLOG'], { ...env, ARCHIVER_DAEMON: 'off' }, data.dataDir);
    for (const result of [viaHelper, alone]) {
      expect(result.status).toBe(EXIT_CODES.notFound);
      expect(result.stderr).toMatch(/^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info component=archiver msg="not found: .*" command=wal-fetch error=WalNotFoundError exit=74\n$/);
    }
    const [helperLine, aloneLine] = [viaHelper, alone].map((r) => logLines(r.stderr)[0]);
    expect(Object.keys(helperLine)).toStrictEqual(Object.keys(aloneLine));
    expect({ ...helperLine, time: '' }).toStrictEqual({ ...aloneLine, time: '' });
  });
});
