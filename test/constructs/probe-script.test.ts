/**
 * probe.sh of the ConfigMap, run by real bash: readiness and liveness of pod 0 (pg_isready) and of
 * a standby (it must also follow pod 0). pg_isready and psql are stubs on PATH: the local server's
 * and pod 0's answers are set per spec. The whole loop against real servers (a standby left
 * behind on an old timeline, found, restarted and rewound) is story 2b of
 * restores-itself.real-postgres.test.ts.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COPY_STALL_SECONDS, PROBE_STATE_DIR, STANDBY_STALL_SECONDS } from '../../constructs/probe-script';
import { find, seedProps, synthDatabase } from './fixtures';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-script-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const script = find(synthDatabase(seedProps()).objects, 'ConfigMap', 'wal-postgres-config').data!['probe.sh'];

interface Answers {
  /** pg_isready's exit code: 0 accepting, 1 rejecting, 2 no response. */
  readonly isready: number;
  /** pg_isready's exit code over TCP (127.0.0.1). @default isready */
  readonly isreadyOverTcp?: number;
  /** The local server's `in recovery|walreceiver status|replayed|system`, or undefined: psql fails. */
  readonly local?: string;
  /** Pod 0's system identifier ('' when it is in recovery), or undefined: unreachable. */
  readonly primary?: string;
}

/** A pod's probe environment: its own state directory, stubs answering `answers`. */
function pod(name: string) {
  const dir = fs.mkdtempSync(path.join(scratch, `${name}-`));
  const file = path.join(dir, 'probe.sh');
  fs.writeFileSync(file, script.split(`state_dir=${PROBE_STATE_DIR}`).join(`state_dir=${dir}`));
  return {
    dir,
    state: (mode: string) => path.join(dir, `probe-${mode}.state`),
    run(mode: 'startup' | 'ready' | 'live', answers: Answers): { status: number | null; output: string } {
      const stub = (body: string) => `#!/bin/bash\n${body}\n`;
      fs.writeFileSync(path.join(dir, 'pg_isready'), stub(`case "$*" in *--host=127.0.0.1*) exit ${answers.isreadyOverTcp ?? answers.isready} ;; *) exit ${answers.isready} ;; esac`), { mode: 0o755 });
      fs.writeFileSync(
        path.join(dir, 'psql'),
        stub(`case "$*" in
  *--host=/var/run/postgresql*) ${answers.local === undefined ? 'exit 2' : `echo '${answers.local}'`} ;;
  *--host=wal-postgres-0.wal-postgres-pods*) ${answers.primary === undefined ? 'echo "psql: error: connection refused" >&2; exit 2' : `echo '${answers.primary}'`} ;;
  *) echo "unexpected psql $*" >&2; exit 3 ;;
esac`),
        { mode: 0o755 },
      );
      const result = spawnSync('bash', [file, mode], { env: { PATH: `${dir}:${process.env.PATH}`, POD_NAME: name, PGDATA: path.join(dir, 'pgdata') }, encoding: 'utf8' });
      return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
    },
  };
}

const SYSTEM = '7000000000000000001';

describe('probe.sh, pod 0', () => {
  const primary = pod('wal-postgres-0');
  it('is ready when the server accepts connections out of recovery, and only then', () => {
    expect(primary.run('ready', { isready: 0, local: `f|none|none|${SYSTEM}` }).status).toBe(0);
    expect(primary.run('ready', { isready: 1 }).status).toBe(1);
    expect(primary.run('ready', { isready: 2 }).status).toBe(1);
  });

  it('replaying a restore from the archive (a hot standby answering reads): live, not ready, since writes would fail', () => {
    const recovering = { isready: 0, local: `t|none|0/5000060|${SYSTEM}` };
    expect(primary.run('ready', recovering)).toStrictEqual({ status: 1, output: 'pod 0 is still in recovery (replayed up to 0/5000060): not ready for writes until it is promoted' });
    expect(primary.run('live', recovering).status).toBe(0);
  });

  it('asks over TCP whether it is ready, as clients connect: the entrypoint\'s socket-only temporary server during initdb is alive, not ready', () => {
    // pg_isready answers on the Unix socket, and nothing listens on TCP yet.
    const socketOnly = { isready: 0, isreadyOverTcp: 2, local: `f|none|none|${SYSTEM}` };
    expect(primary.run('ready', socketOnly).status).toBe(1);
    expect(primary.run('live', socketOnly).status).toBe(0);
    expect(primary.run('startup', socketOnly).status).toBe(0);
  });

  it('ready when its local psql fails (all connections taken, say): pg_isready said it accepts connections, and a busy primary stays in its Service', () => {
    expect(primary.run('ready', { isready: 0 }).status).toBe(0);
  });

  it('is live while the server answers at all: "rejecting connections" (a long recovery) counts', () => {
    expect(primary.run('live', { isready: 0 }).status).toBe(0);
    expect(primary.run('live', { isready: 1 }).status).toBe(0);
    expect(primary.run('live', { isready: 2 }).status).toBe(1);
  });
});

describe('probe.sh while the volume is being filled (no server yet): a copy that grows is alive, for as long as it takes', () => {
  it('startup: succeeds once the server answers at all; fails while nothing answers and nothing is copied', () => {
    const p = pod('wal-postgres-1');
    expect(p.run('startup', { isready: 0 }).status).toBe(0);
    expect(p.run('startup', { isready: 1 }).status).toBe(0);
    expect(p.run('startup', { isready: 2 }).status).toBe(1);
  });

  for (const [name, scratchDir] of [['wal-postgres-1', 'clone'], ['wal-postgres-0', 'restore']] as const) {
    it(`${name}: a growing PGDATA.${scratchDir} passes startup and liveness, not readiness; one that stops growing for ${COPY_STALL_SECONDS} s is not live`, () => {
      const p = pod(name);
      const copy = path.join(p.dir, `pgdata.${scratchDir}`);
      fs.mkdirSync(copy);
      fs.writeFileSync(path.join(copy, 'PG_VERSION'), '15\n');
      expect(p.run('startup', { isready: 2 }).status).toBe(0);
      expect(p.run('live', { isready: 2 }).status).toBe(0);
      expect(p.run('ready', { isready: 2 }).status).toBe(1);
      // It grows: still alive, the clock starts again.
      fs.writeFileSync(path.join(copy, 'base.1'), Buffer.alloc(8192));
      expect(p.run('live', { isready: 2 }).status).toBe(0);
      const [bytes] = fs.readFileSync(path.join(p.dir, 'copy-live.state'), 'utf8').split(' ');
      // The same size, noted long ago.
      fs.writeFileSync(path.join(p.dir, 'copy-live.state'), `${bytes} ${Math.floor(Date.now() / 1000) - COPY_STALL_SECONDS}\n`);
      const stalled = p.run('live', { isready: 2 });
      expect(stalled.status).toBe(1);
      // The script's clock may have ticked once since the test wrote the state.
      const [, seconds] = /has not grown for (\d+) s/.exec(stalled.output) ?? [];
      expect(Number(seconds) - COPY_STALL_SECONDS).toBeGreaterThanOrEqual(0);
      expect(Number(seconds) - COPY_STALL_SECONDS).toBeLessThanOrEqual(1);
      expect(stalled.output).toBe(`the copy into ${copy} has not grown for ${seconds} s (${bytes} bytes)`);
    });
  }
});

describe('probe.sh, a standby', () => {
  it('streaming from pod 0: ready and live, without asking pod 0', () => {
    const standby = pod('wal-postgres-1');
    const answers = { isready: 0, local: `t|streaming|0/3000060|${SYSTEM}` };
    expect(standby.run('ready', answers)).toEqual({ status: 0, output: '' });
    expect(standby.run('live', answers)).toEqual({ status: 0, output: '' });
  });

  it('not streaming while pod 0 is down or still recovering: nothing to judge, ready and live (reads stay available)', () => {
    const standby = pod('wal-postgres-1');
    expect(standby.run('ready', { isready: 0, local: `t|none|0/3000060|${SYSTEM}` }).status).toBe(0);
    expect(standby.run('ready', { isready: 0, local: `t|none|0/3000060|${SYSTEM}`, primary: '' }).status).toBe(0);
    expect(fs.existsSync(standby.state('ready'))).toBe(false);
  });

  it('of another database system than pod 0\'s (pod 0 initialised anew): neither ready nor live, at once', () => {
    const standby = pod('wal-postgres-1');
    const answers = { isready: 0, local: `t|none|0/3000060|${SYSTEM}`, primary: '7000000000000000999' };
    expect(standby.run('ready', answers)).toEqual({ status: 1, output: `standby of another database system (${SYSTEM}) than pod 0's (7000000000000000999)` });
    expect(standby.run('live', answers).status).toBe(1);
  });

  it(`not streaming and replaying nothing for ${STANDBY_STALL_SECONDS} s while pod 0 is up: neither ready nor live`, () => {
    const standby = pod('wal-postgres-1');
    const answers = { isready: 0, local: `t|none|0/80000A0|${SYSTEM}`, primary: SYSTEM };
    // First seen: the position and the time are noted.
    expect(standby.run('live', answers).status).toBe(0);
    const [seen, since] = fs.readFileSync(standby.state('live'), 'utf8').trim().split(' ');
    expect(seen).toBe('0/80000A0');
    expect(Math.abs(Number(since) - Date.now() / 1000)).toBeLessThan(5);
    // Still there, not long enough.
    expect(standby.run('live', answers).status).toBe(0);
    // The same position, noted STALL seconds ago.
    fs.writeFileSync(standby.state('live'), `0/80000A0 ${Math.floor(Date.now() / 1000) - STANDBY_STALL_SECONDS - 1}\n`);
    const stalled = standby.run('live', answers);
    expect(stalled.status).toBe(1);
    // The script's clock may have ticked once since the test wrote the state.
    const [, seconds] = /for (\d+) s/.exec(stalled.output) ?? [];
    expect([STANDBY_STALL_SECONDS + 1, STANDBY_STALL_SECONDS + 2]).toContain(Number(seconds));
    expect(stalled.output).toBe(`standby neither streamed nor replayed WAL for ${seconds} s (replayed up to 0/80000A0; walreceiver: none) while pod 0 is up`);
  });

  it('catching up from the archive (not streaming, but replaying): ready and live, its clock starts again at each new position', () => {
    const standby = pod('wal-postgres-1');
    const old = Math.floor(Date.now() / 1000) - 600;
    fs.writeFileSync(standby.state('ready'), `0/5000000 ${old}\n`);
    expect(standby.run('ready', { isready: 0, local: `t|none|0/6000000|${SYSTEM}`, primary: SYSTEM }).status).toBe(0);
    expect(fs.readFileSync(standby.state('ready'), 'utf8').startsWith('0/6000000 ')).toBe(true);
  });

  it('streaming again: what was noted is forgotten', () => {
    const standby = pod('wal-postgres-1');
    fs.writeFileSync(standby.state('ready'), `0/5000000 ${Math.floor(Date.now() / 1000) - 600}\n`);
    expect(standby.run('ready', { isready: 0, local: `t|streaming|0/5000000|${SYSTEM}` }).status).toBe(0);
    expect(fs.existsSync(standby.state('ready'))).toBe(false);
  });

  it('promoted (out of recovery): judged as a server only', () => {
    const standby = pod('wal-postgres-1');
    expect(standby.run('live', { isready: 0, local: `f|none|none|${SYSTEM}`, primary: '7000000000000000999' }).status).toBe(0);
  });

  it('rejecting connections (starting up): live, not ready; the local psql failing says nothing', () => {
    const standby = pod('wal-postgres-1');
    expect(standby.run('live', { isready: 1 }).status).toBe(0);
    expect(standby.run('ready', { isready: 1 }).status).toBe(1);
    expect(standby.run('ready', { isready: 0 }).status).toBe(0);
  });
});
