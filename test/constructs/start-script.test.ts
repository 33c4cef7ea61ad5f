/**
 * The start-up script of the ConfigMap, run by real bash: the role from the pod ordinal, the
 * bounded wait for the archiver sidecar, pod 0's bootstrap, and a standby's comparison with pod 0
 * (follow, rewind, clone again); the comparison's SQL against real servers is story 2b of
 * restores-itself.real-postgres.test.ts. PostgreSQL itself is replaced by stubs on PATH that print
 * how they were called (the official image's `docker-entrypoint.sh` and `postgres` cannot run
 * here; the major-version check also runs against the real PostgreSQL 15 binary); the spool path
 * is moved into a scratch directory.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ARCHIVER_INSTALL_DIR, REPLICATION_PASSFILE } from '../../contract';
import { ARCHIVER_SPOOL_DIR } from '../../constructs/pod-layout';
import { PROBE_STATE_DIR } from '../../constructs/probe-script';
import { CloneSource } from '../../constructs';
import { PG_BIN } from '../../testkit/postgres';
import { find, seedProps, synthDatabase } from './fixtures';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'start-script-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const script = find(synthDatabase(seedProps()).objects, 'ConfigMap', 'wal-postgres-config').data!['start.sh'];

/**
 * Runs start.sh as pod `podName` with the spool at `spool`; resolves with its output and duration.
 * The archiver's launcher is a stub too: it prints its arguments to stderr and `bootstrap` on
 * stdout (`initdb` unless told otherwise), or fails. The replication passfile the sidecar writes
 * is there (in the stubs' directory).
 */
function runStartScript(
  podName: string,
  spool: string,
  options: { bootstrap?: { stdout: string; status: number }; archiver?: string; pgdata?: string; stubs?: Record<string, string>; script?: string; firstOnPath?: string } = {},
): Promise<{ status: number | null; stdout: string; stderr: string; seconds: number }> {
  const bin = fs.mkdtempSync(path.join(scratch, 'bin-'));
  for (const stub of ['docker-entrypoint.sh', 'postgres']) {
    // `postgres --version` answers as PostgreSQL 15's does; every other call is printed.
    fs.writeFileSync(path.join(bin, stub), `#!/bin/sh\n[ "$1" = --version ] && echo "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)" && exit 0\necho "${stub} $*"\n`, { mode: 0o755 });
  }
  for (const [name, body] of Object.entries(options.stubs ?? {})) fs.writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  const install = fs.mkdtempSync(path.join(scratch, 'archiver-'));
  fs.mkdirSync(path.join(install, 'bin'));
  const bootstrap = options.bootstrap ?? { stdout: 'initdb', status: 0 };
  const archiver = options.archiver ?? `echo "${bootstrap.stdout}"\nexit ${bootstrap.status}`;
  fs.writeFileSync(path.join(install, 'bin', 'archiver'), `#!/bin/sh\necho "archiver $*" >&2\n${archiver}\n`, { mode: 0o755 });
  const file = path.join(scratch, `start-${podName}.sh`);
  const passfile = path.join(bin, 'replication.pgpass');
  fs.writeFileSync(passfile, '*:*:*:replication:test-replication-password\n', { mode: 0o600 });
  fs.writeFileSync(file, (options.script ?? script).split(ARCHIVER_SPOOL_DIR).join(spool).split(ARCHIVER_INSTALL_DIR).join(install).split(`${PROBE_STATE_DIR}/probe-`).join(`${bin}/probe-`).split(REPLICATION_PASSFILE).join(passfile));
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('bash', [file], { env: { PATH: `${options.firstOnPath ? `${options.firstOnPath}:` : ''}${bin}:${process.env.PATH}`, POD_NAME: podName, PGDATA: options.pgdata ?? path.join(scratch, 'pgdata') } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

/** A spool whose daemon.port answers, as a live sidecar's does. */
async function liveSpool(): Promise<{ spool: string; close: () => void }> {
  const spool = fs.mkdtempSync(path.join(scratch, 'spool-'));
  const sidecar = net.createServer((socket) => socket.end());
  await new Promise<void>((resolve) => sidecar.listen({ host: '127.0.0.1', port: 0 }, resolve));
  fs.writeFileSync(path.join(spool, 'daemon.port'), `${(sidecar.address() as net.AddressInfo).port} ${'0'.repeat(32)}\n`);
  return { spool, close: () => sidecar.close() };
}

describe('the start-up script', () => {
  it('is valid bash', async () => {
    const file = path.join(scratch, 'syntax.sh');
    fs.writeFileSync(file, script);
    const status = await new Promise<number | null>((resolve) => spawn('bash', ['-n', file]).on('close', resolve));
    expect(status).toBe(0);
  });

  it('starts pod 0 as the primary through the image\'s entrypoint at once when the archiver sidecar answers', async () => {
    const spool = path.join(scratch, 'spool-live');
    fs.mkdirSync(spool);
    const sidecar = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => sidecar.listen({ host: '127.0.0.1', port: 0 }, resolve));
    fs.writeFileSync(path.join(spool, 'daemon.port'), `${(sidecar.address() as net.AddressInfo).port} ${'0'.repeat(32)}\n`);
    try {
      const result = await runStartScript('wal-postgres-0', spool);
      expect(result.stderr).toBe(`archiver bootstrap ${path.join(scratch, 'pgdata')}\n`);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe('start: wal-postgres-0 is the primary\nstart: bootstrap: initdb\ndocker-entrypoint.sh postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
      expect(result.seconds).toBeLessThan(3);
    } finally {
      sidecar.close();
    }
  });

  it('waits for the sidecar at most about ten seconds, then starts PostgreSQL anyway (a dead port file counts for nothing)', async () => {
    const spool = path.join(scratch, 'spool-dead');
    fs.mkdirSync(spool);
    // A port nothing listens on: taken, then released.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    fs.writeFileSync(path.join(spool, 'daemon.port'), `${deadPort} ${'0'.repeat(32)}\n`);
    const result = await runStartScript('wal-postgres-0', spool);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('docker-entrypoint.sh postgres');
    expect(result.seconds).toBeGreaterThanOrEqual(9);
    expect(result.seconds).toBeLessThan(20);
  }, 30_000);

  describe('a data directory of another major version than the image\'s PostgreSQL (a `version` change in Git)', () => {
    for (const podName of ['wal-postgres-0', 'wal-postgres-1']) {
      it(`stops ${podName} with one line that names both versions and the fix, before anything touches the data`, async () => {
        const { spool, close } = await liveSpool();
        const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
        fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '14\n');
        fs.writeFileSync(path.join(pgdata, 'local'), '');
        const result = await runStartScript(podName, spool, { pgdata }).finally(close);
        expect(result.status).toBe(1);
        expect(result.stdout).toBe('');
        expect(result.stderr.trim().split('\n')).toEqual([
          `start: ${pgdata} holds the data of PostgreSQL 14 and this image runs PostgreSQL 15, which cannot start on it (a major upgrade needs pg_upgrade, which this database does not run): put the previous version back in Git; after that sync, delete this pod (kubectl delete pod ${podName}) so that the StatefulSet recreates it from the reverted template; the data is untouched`,
        ]);
        expect(fs.readdirSync(pgdata).sort()).toEqual(['PG_VERSION', 'local']);
      });
    }

    it('reads the server\'s major version from the real PostgreSQL 15 binary the same way', async () => {
      const { spool, close } = await liveSpool();
      const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
      fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '16\n');
      // Only the version check runs: the script is cut after it.
      const checkOnly = script.slice(0, script.indexOf('# The archiver sidecar starts with this container.')) + 'echo "start: same major version"\n';
      const result = await runStartScript('wal-postgres-0', spool, { pgdata, script: checkOnly, firstOnPath: PG_BIN }).finally(close);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('holds the data of PostgreSQL 16 and this image runs PostgreSQL 15,');
      fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
      const { spool: spool2, close: close2 } = await liveSpool();
      const same = await runStartScript('wal-postgres-0', spool2, { pgdata, script: checkOnly, firstOnPath: PG_BIN }).finally(close2);
      expect(same.status).toBe(0);
      expect(same.stdout).toBe('start: same major version\n');
    });
  });

  describe('a standby compares its data with pod 0 at every start (pg_controldata, psql, pg_rewind and pg_basebackup are stubs that log their calls)', () => {
    /** A control file of system 7000000000000000001 whose last checkpoint is on timeline 1 at 0/3000060, and a minimum recovery point. */
    const controlData = (minimum: { tli: number; lsn: string }) => `cat <<'EOF'
pg_control version number:            1300
Database system identifier:           7000000000000000001
Database cluster state:               shut down in recovery
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       1
Minimum recovery ending location:     ${minimum.lsn}
Min recovery ending loc's timeline:   ${minimum.tli}
EOF`;

    /** The stubs: psql answers pod 0's state and the verdict; calls are logged to `calls`. */
    function stubs(calls: string, answers: { verdict?: string; state?: string; rewind?: number; psqlFails?: boolean }, minimum = { tli: 0, lsn: '0/0' }): Record<string, string> {
      return {
        pg_controldata: controlData(minimum),
        psql: answers.psqlFails
          ? 'exit 2'
          : `query="\${*: -1}"; echo "psql $query" | tr '\\n' ' ' >>${calls}; echo >>${calls}
case "$query" in
  *postgresql.auto.conf*) echo "${answers.state ?? 'up'}" ;;
  *current_timeline*) echo "${answers.verdict ?? 'follows'}" ;;
esac`,
        pg_rewind: `echo "pg_rewind $*" >>${calls}; exit ${answers.rewind ?? 0}`,
        pg_basebackup: `echo "pg_basebackup $*" >>${calls}; for a in "$@"; do case $a in --pgdata=*) mkdir -p "\${a#--pgdata=}"; echo 15 >"\${a#--pgdata=}/PG_VERSION"; touch "\${a#--pgdata=}/cloned";; esac; done`,
      };
    }

    async function standbyStart(answers: Parameters<typeof stubs>[1], minimum?: { tli: number; lsn: string }, script?: string) {
      const { spool, close } = await liveSpool();
      const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
      fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
      fs.writeFileSync(path.join(pgdata, 'local'), '');
      const calls = path.join(scratch, `calls-${path.basename(pgdata)}`);
      fs.writeFileSync(calls, '');
      const result = await runStartScript('wal-postgres-1', spool, { pgdata, stubs: stubs(calls, answers, minimum), script }).finally(close);
      return { ...result, pgdata, calls: fs.readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) };
    }

    it('follows pod 0\'s history: starts on its data as a standby, nothing rewound or cloned', async () => {
      const result = await standbyStart({ verdict: 'follows' });
      expect(result.status).toBe(0);
      expect(result.stderr).toBe('start: local data: system 7000000000000000001, timeline 1, up to 0/3000060\n');
      expect(result.stdout).toBe("start: wal-postgres-1 is a standby of wal-postgres-0.wal-postgres-pods\nstart: the local data follows the primary's history\npostgres -c config_file=/etc/postgresql-archived/postgresql.conf\n");
      expect(result.calls).toHaveLength(1);
      expect(result.calls[0]).toContain("<> '7000000000000000001'");
      expect(result.calls[0]).toContain("where split_part(line, E'\\t', 1) = '1'");
      expect(result.calls[0]).toContain("when '0/3000060'::pg_lsn > (select max(at) from fork) then 'diverged'");
      expect(fs.existsSync(path.join(result.pgdata, 'local'))).toBe(true);
      expect(fs.existsSync(path.join(result.pgdata, 'standby.signal'))).toBe(true);
    });

    it('takes the minimum recovery point as its position when it is ahead of the last checkpoint', async () => {
      const result = await standbyStart({ verdict: 'follows' }, { tli: 2, lsn: '0/5000100' });
      expect(result.stderr).toBe('start: local data: system 7000000000000000001, timeline 2, up to 0/5000100\n');
      expect(result.calls[0]).toContain("when '0/5000100'::pg_lsn > (select max(at) from fork) then 'diverged'");
    });

    it('diverged from pod 0\'s history: waits for pod 0 to be clean, rewinds with pg_rewind (WAL from the archive, the rendered configuration), starts as a standby', async () => {
      const result = await standbyStart({ verdict: 'diverged' });
      expect(result.status).toBe(0);
      expect(result.stdout).toContain("start: the local data has WAL that the primary's history does not: rewinding it to the primary with pg_rewind\n");
      expect(result.calls.slice(1)).toEqual([
        expect.stringContaining('postgresql.auto.conf'),
        'pg_rewind --target-pgdata=' + result.pgdata + ' --source-server=host=wal-postgres-0.wal-postgres-pods port=5432 user=replication dbname=postgres connect_timeout=10 --restore-target-wal --config-file=/etc/postgresql-archived/postgresql.conf --progress',
        // A commit on pod 0 flushes the WAL up to the minimum recovery point pg_rewind set.
        expect.stringMatching(/^psql --command=select txid_current\(\)\s*$/),
      ]);
      expect(fs.existsSync(path.join(result.pgdata, 'local'))).toBe(true);
      expect(fs.existsSync(`${result.pgdata}.rewinding`)).toBe(false);
      expect(fs.existsSync(path.join(result.pgdata, 'standby.signal'))).toBe(true);
      expect(result.stdout.endsWith('postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n')).toBe(true);
    });

    it('diverged and pg_rewind fails: the local data is discarded and pod 0 cloned again', async () => {
      const result = await standbyStart({ verdict: 'diverged', rewind: 1 });
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('start: pg_rewind failed (above): discarding the local data and cloning the primary again\n');
      expect(result.calls.at(-1)).toMatch(/^pg_basebackup --host=wal-postgres-0.wal-postgres-pods --port=5432 --username=replication --pgdata=\S+\.clone --wal-method=stream/);
      expect(fs.existsSync(path.join(result.pgdata, 'local'))).toBe(false);
      expect(fs.existsSync(path.join(result.pgdata, 'cloned'))).toBe(true);
      expect(fs.existsSync(`${result.pgdata}.rewinding`)).toBe(false);
      expect(fs.existsSync(path.join(result.pgdata, 'standby.signal'))).toBe(true);
    });

    it('another database system than pod 0\'s: cloned again, never rewound', async () => {
      const result = await standbyStart({ verdict: 'other-system' });
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('start: the local data belongs to another database system than the primary\'s (pod 0 was initialised anew): discarding it and cloning the primary again\n');
      expect(result.calls.some((c) => c.startsWith('pg_rewind'))).toBe(false);
      expect(fs.existsSync(path.join(result.pgdata, 'cloned'))).toBe(true);
      expect(fs.existsSync(path.join(result.pgdata, 'local'))).toBe(false);
    });

    it('pod 0 unreachable: starts on the local data (reads stay available), to be compared again by its probes', async () => {
      const result = await standbyStart({ psqlFails: true });
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('start: cannot compare with the primary now (unknown): starting on the local data\n');
      expect(fs.existsSync(path.join(result.pgdata, 'local'))).toBe(true);
    });

    it('a pg_rewind cut short (its marker left): the data is discarded and pod 0 cloned again', async () => {
      const { spool, close } = await liveSpool();
      const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
      fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
      fs.writeFileSync(`${pgdata}.rewinding`, '');
      const calls = path.join(scratch, 'calls-cut-short');
      fs.writeFileSync(calls, '');
      const result = await runStartScript('wal-postgres-1', spool, { pgdata, stubs: stubs(calls, {}) }).finally(close);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('start: a pg_rewind of the local data was interrupted: discarding it and cloning the primary again\n');
      expect(fs.existsSync(path.join(pgdata, 'cloned'))).toBe(true);
      expect(fs.existsSync(`${pgdata}.rewinding`)).toBe(false);
    });

    it('PostgreSQL 13 and 14: pg_rewind without --config-file (new in 15) and so without the archive', async () => {
      const script13 = find(synthDatabase(seedProps({ version: 13 })).objects, 'ConfigMap', 'wal-postgres-config').data!['start.sh'];
      const result = await standbyStart({ verdict: 'diverged' }, undefined, script13);
      expect(result.calls.at(-2)).toBe(`pg_rewind --target-pgdata=${result.pgdata} --source-server=host=wal-postgres-0.wal-postgres-pods port=5432 user=replication dbname=postgres connect_timeout=10 --progress`);
    });

    it('standbys.cloneFrom: archive: an empty volume gets the archive\'s newest backup (backup-fetch LATEST into a scratch directory), pod 0 cloned only when that fails', async () => {
      const archiveScript = find(synthDatabase(seedProps({ standbys: { cloneFrom: CloneSource.ARCHIVE } })).objects, 'ConfigMap', 'wal-postgres-config').data!['start.sh'];
      expect(script).not.toContain('backup-fetch');
      for (const [fetch, cloned] of [[0, false], [1, true]] as const) {
        const { spool, close } = await liveSpool();
        const pgdata = path.join(scratch, `pgdata-archive-${fetch}`);
        const calls = path.join(scratch, `calls-archive-${fetch}`);
        fs.writeFileSync(calls, '');
        const result = await runStartScript('wal-postgres-1', spool, {
          pgdata,
          script: archiveScript,
          // The archiver stub: backup-fetch restores a directory, or fails having written part of one.
          archiver: `mkdir -p "$3" && echo 15 >"$3/PG_VERSION" && exit ${fetch}`,
          stubs: stubs(calls, { verdict: 'follows' }),
        }).finally(close);
        expect(result.status).toBe(0);
        expect(result.stderr).toContain(`archiver backup-fetch LATEST ${pgdata}.clone`);
        expect(result.stdout).toContain('start: copying the newest base backup of the archive\n');
        if (cloned) {
          expect(result.stdout).toContain('start: no copy from the archive (above): cloning the primary instead\n');
          expect(fs.readFileSync(calls, 'utf8')).toMatch(/^pg_basebackup /m);
        } else {
          expect(result.stdout).toContain('start: copied from the archive; the standby replays the archived WAL, then streams\n');
          expect(fs.readFileSync(calls, 'utf8')).not.toMatch(/^pg_basebackup /m);
        }
        expect(fs.existsSync(path.join(pgdata, 'standby.signal'))).toBe(true);
        expect(fs.existsSync(`${pgdata}.clone`)).toBe(false);
      }
    });

    it('an empty volume: waits until pod 0 is out of recovery and its recovery settings are gone, then clones it', async () => {
      const { spool, close } = await liveSpool();
      const pgdata = path.join(scratch, 'pgdata-empty');
      const calls = path.join(scratch, 'calls-empty');
      const states = path.join(scratch, 'states');
      fs.writeFileSync(calls, '');
      fs.writeFileSync(states, 'in recovery\nits postgresql.auto.conf still holds the settings of its recovery\nup\n');
      const all = stubs(calls, {});
      // Pod 0's state, one line per call.
      all.psql = `echo psql >>${calls}; head -n1 ${states}; sed -i 1d ${states}`;
      const result = await runStartScript('wal-postgres-1', spool, { pgdata, stubs: all }).finally(close);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('start: waiting for the primary wal-postgres-0.wal-postgres-pods: in recovery\nstart: waiting for the primary wal-postgres-0.wal-postgres-pods: its postgresql.auto.conf still holds the settings of its recovery\n');
      expect(fs.readFileSync(calls, 'utf8').trim().split('\n')).toEqual(['psql', 'psql', 'psql', expect.stringMatching(/^pg_basebackup /)]);
      expect(fs.existsSync(path.join(pgdata, 'standby.signal'))).toBe(true);
    }, 30_000);
  });

  describe('pod 0 on an empty volume asks the archiver first', () => {
    it('restored: the server starts on the restored directory through the entrypoint', async () => {
      const { spool, close } = await liveSpool();
      try {
        const result = await runStartScript('wal-postgres-0', spool, { bootstrap: { stdout: 'restored', status: 0 } });
        expect(result.status).toBe(0);
        expect(result.stdout).toBe('start: wal-postgres-0 is the primary\nstart: bootstrap: restored\ndocker-entrypoint.sh postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
      } finally {
        close();
      }
    });

    it('refused: the container stops (non-zero) and never runs initdb', async () => {
      const { spool, close } = await liveSpool();
      try {
        const result = await runStartScript('wal-postgres-0', spool, { bootstrap: { stdout: '', status: 1 } });
        expect(result.status).toBe(1);
        expect(result.stdout).not.toContain('docker-entrypoint.sh');
        expect(result.stdout).not.toContain('postgres -c');
      } finally {
        close();
      }
    });

    it('a volume that holds a database: no bootstrap', async () => {
      const { spool, close } = await liveSpool();
      const pgdata = fs.mkdtempSync(path.join(scratch, 'pgdata-'));
      fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '15\n');
      try {
        const result = await runStartScript('wal-postgres-0', spool, { bootstrap: { stdout: 'should not run', status: 1 }, pgdata });
        expect(result.status).toBe(0);
        expect(result.stderr).toBe('');
        expect(result.stdout).toBe('start: wal-postgres-0 is the primary\ndocker-entrypoint.sh postgres -c config_file=/etc/postgresql-archived/postgresql.conf\n');
      } finally {
        close();
      }
    });
  });
});
