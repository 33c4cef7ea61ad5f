/**
 * contract/ is what the YAML, the archiver and its launcher scripts agree on. These specs tie the
 * three together, so that a side that stops following the contract fails here: the rendered pod
 * against the archiver's configuration, the launcher scripts against the build's constants, the
 * archiver's errors against the exit-code table.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAUNCHER_CONSTANTS, fillLauncher } from '../../archiver/scripts/build';
import { Duration } from 'cdk8s';
import { connectionSettingsFromEnvironment } from '../../archiver/src/backup/postgres-session';
import { readMetricsPort, resolveDataDirectory, resolveSpool } from '../../archiver/src/config';
import * as errors from '../../archiver/src/errors';
import {
  ARCHIVER_ENV,
  CONFIG_DIR,
  CREDENTIALS_ENV,
  ERROR_EXIT_CODES,
  EXIT_CODES,
  METRICS_PATH,
  METRICS_PORT,
  METRICS_PORT_NAME,
  PGDATA_ENV,
  databaseObjects,
  RECOVERY_MODES,
  RECOVERY_SIGNAL_FILES,
  SPOOL_DEFAULT_FROM_DATA_DIRECTORY,
  SPOOL_LAYOUT,
  exitCodeForErrorName,
} from '../../contract';
import { parseDeleteArgs } from '../../archiver/src/commands/retention';
import { Bootstrap, POSTGRES_PORT, RecoveryTarget, SOCKET_DIR, SUPERUSER, TerminationPolicy } from '../../constructs';
import { ROOT } from '../../testkit/archiver';
import { container, envOf, find, seedProps, synthDatabase } from '../constructs/fixtures';

/**
 * libpq's connection variables, which the archiver's base backups read (archiver/src/backup/postgres-session.ts),
 * and PGDATA, where the sidecar's metrics find pg_wal (archiver/src/config.ts).
 */
const LIBPQ_ENV = ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', PGDATA_ENV];

describe('the pod and the archiver', () => {
  const { objects } = synthDatabase(seedProps());
  const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
  const config = find(objects, 'ConfigMap', 'wal-postgres-config').data!;

  it('put the spool where the archiver would put it by default, and the start script reads the address the background archiver writes there', () => {
    for (const name of ['postgres', 'archiver']) {
      const env = envOf(container(statefulSet, name));
      expect(env[ARCHIVER_ENV.spool]).toBeDefined();
    }
    const postgres = envOf(container(statefulSet, 'postgres'));
    const rendered = postgres[ARCHIVER_ENV.spool];
    // The archiver's own default, from the data directory the pod sets.
    expect(resolveSpool({ PGDATA: postgres.PGDATA }, '/')).toBe(rendered);
    expect(rendered).toBe(path.posix.join(postgres.PGDATA, SPOOL_DEFAULT_FROM_DATA_DIRECTORY));
    expect(envOf(container(statefulSet, 'archiver'))[ARCHIVER_ENV.spool]).toBe(rendered);
    expect(config['start.sh']).toContain(`<"${rendered}/${SPOOL_LAYOUT.port}"`);
  });

  it('render only environment names the contract defines for the archiver (and, for the sidecar\'s backups, libpq\'s names the archiver reads)', () => {
    const known = new Set<string>([...Object.values(ARCHIVER_ENV), ...Object.values(CREDENTIALS_ENV), ...LIBPQ_ENV]);
    for (const name of ['archiver']) {
      for (const variable of Object.keys(envOf(container(statefulSet, name)))) expect(known).toContain(variable);
    }
    // The PostgreSQL container's other variables are the image's and the start script's (PGDATA, POSTGRES_*).
    const archiverNames = (env: Record<string, unknown>) => Object.keys(env).filter((variable) => variable.startsWith('ARCHIVER_'));
    for (const variable of archiverNames(envOf(container(statefulSet, 'postgres')))) expect(known).toContain(variable);
    // Every bootstrap and backup variable, set.
    const full = find(synthDatabase(seedProps({
      backups: { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(30) }, from: 'standby', atReady: true },
      bootstrap: Bootstrap.fromArchive({ namespace: 'demo', name: 'other', target: RecoveryTarget.time('2026-11-30T10:00:00Z'), inclusive: false, timeline: 2 }),
    })).objects, 'StatefulSet', 'wal-postgres');
    const rendered = [...archiverNames(envOf(container(full, 'postgres'))), ...Object.keys(envOf(container(full, 'archiver')))];
    for (const variable of rendered) expect(known).toContain(variable);
    for (const key of ['backupAtReady', 'backupSchedule', 'backupFrom', 'backupRetain', 'backupWindow', 'bootstrapMode', 'bootstrapSource', 'bootstrapTarget', 'bootstrapTargetInclusive', 'bootstrapTargetTimeline', 'podName'] as const) {
      expect(rendered).toContain(ARCHIVER_ENV[key]);
    }
  });

  it('give the sidecar\'s backups the server the pod runs, over its Unix socket, as the superuser', () => {
    const sidecar = container(statefulSet, 'archiver');
    const settings = connectionSettingsFromEnvironment(envOf(sidecar));
    expect(settings.host).toBe(SOCKET_DIR);
    expect(settings.port).toBe(POSTGRES_PORT);
    expect(settings.user).toBe(SUPERUSER);
    const socketVolume = container(statefulSet, 'postgres').volumeMounts.find((m: any) => m.mountPath === SOCKET_DIR).name;
    expect(sidecar.volumeMounts.find((m: any) => m.mountPath === SOCKET_DIR)?.name).toBe(socketVolume);
    expect(config['postgresql.conf']).toContain(`unix_socket_directories = '${SOCKET_DIR}'`);
    expect(config['pg_hba.conf']).toMatch(/^local\s+all\s+all\s+peer\s*$/m);
  });

  it('give the sidecar the ConfigMap the server runs from, read-only, where it watches for in-place updates', () => {
    const sidecar = container(statefulSet, 'archiver');
    const watched = envOf(sidecar)[ARCHIVER_ENV.configDir];
    expect(watched).toBe(CONFIG_DIR);
    const configVolume = container(statefulSet, 'postgres').volumeMounts.find((m: any) => m.mountPath === CONFIG_DIR).name;
    expect(sidecar.volumeMounts.find((m: any) => m.mountPath === watched)).toStrictEqual({ name: configVolume, mountPath: CONFIG_DIR, readOnly: true });
    expect(statefulSet.spec.template.spec.volumes.find((v: any) => v.name === configVolume).configMap.name).toBe('wal-postgres-config');
  });
});

describe('the launcher scripts and the build', () => {
  const templates = ['archiver', 'archiver-call'].map((name) => ({ name, text: fs.readFileSync(path.join(ROOT, 'archiver/bin', name), 'utf8') }));

  it('name every contract value through a placeholder the build fills, and the build ships them filled', () => {
    for (const { name, text } of templates) {
      const built = fs.readFileSync(path.join(ROOT, 'archiver/dist/bin', name), 'utf8');
      expect(built).toBe(fillLauncher(text, name));
      expect(built).not.toMatch(/@@[A-Z0-9_]+@@/);
    }
    const used = new Set(templates.flatMap(({ text }) => [...text.matchAll(/@@([A-Z0-9_]+)@@/g)].map((m) => m[1])));
    expect([...used].sort()).toStrictEqual(Object.keys(LAUNCHER_CONSTANTS).sort());
  });

  it('fails the build for a placeholder the contract has no value for', () => {
    expect(() => fillLauncher('spool=${@@ENV_SPOOL_TYPO@@:-}', 'bin/archiver')).toThrow('bin/archiver: @@ENV_SPOOL_TYPO@@ has no value in LAUNCHER_CONSTANTS');
  });

  it('write no contract value into a script by hand', () => {
    const literals = [
      ARCHIVER_ENV.spool,
      ARCHIVER_ENV.repository,
      ARCHIVER_ENV.s3Endpoint,
      SPOOL_LAYOUT.port,
      SPOOL_LAYOUT.owner,
      SPOOL_LAYOUT.pushed,
      SPOOL_LAYOUT.prefetch,
      SPOOL_DEFAULT_FROM_DATA_DIRECTORY,
      RECOVERY_SIGNAL_FILES.recovery,
      RECOVERY_SIGNAL_FILES.standby,
      RECOVERY_MODES.archiveRecovery,
    ];
    for (const { name, text } of templates) {
      const code = text.split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n');
      for (const literal of literals) expect(code, `${name} spells ${literal} out instead of using its placeholder`).not.toContain(literal);
    }
  });
});

describe('the archiver\'s errors and the exit-code table', () => {
  const named = Object.entries(errors as Record<string, unknown>)
    .filter(([, value]) => typeof value === 'function' && (value as { prototype: unknown }).prototype instanceof Error)
    .map(([name]) => name);

  it('names only errors that exist', () => {
    for (const name of Object.keys(ERROR_EXIT_CODES)) expect(named).toContain(name);
  });

  it('gives "not found" (74) to the errors that mean it, usage (2) to the command line and configuration, 1 to the rest', () => {
    expect(exitCodeForErrorName('WalNotFoundError')).toBe(EXIT_CODES.notFound);
    expect(exitCodeForErrorName('ConfigError')).toBe(EXIT_CODES.usage);
    expect(exitCodeForErrorName('UsageError')).toBe(EXIT_CODES.usage);
    expect(exitCodeForErrorName('ArchiveConflictError')).toBe(EXIT_CODES.error);
    expect(exitCodeForErrorName('SomethingUnforeseen')).toBe(EXIT_CODES.error);
    expect(errors.exitCodeOf(new errors.WalNotFoundError('000000010000000000000001', 'file:///x'))).toBe(EXIT_CODES.notFound);
  });

  it('gives the code that stops recovery (above 125: fatal to PostgreSQL, never "no more WAL") to a gap and to every other failure in archive recovery', () => {
    expect(EXIT_CODES.stopRecovery).toBeGreaterThan(125);
    expect(errors.exitCodeOf(new errors.WalGapError('000000010000000000000005', '000000010000000000000006', 'file:///x'))).toBe(EXIT_CODES.stopRecovery);
    expect(errors.exitCodeOf(new errors.RecoveryStopError('storage down'))).toBe(EXIT_CODES.stopRecovery);
    // Across the background archiver's answers too: a revived error keeps its code.
    for (const name of ['WalGapError', 'RecoveryStopError']) expect(errors.exitCodeOf(errors.reviveError({ name, message: 'm' }))).toBe(EXIT_CODES.stopRecovery);
  });
});

describe('the duration syntax both sides write and read', () => {
  it('reads back what it writes, in the largest unit that divides it', async () => {
    const { durationMs, formatDuration } = await import('../../contract');
    for (const [ms, text] of [
      [30 * 86_400_000, '30d'],
      [36 * 3_600_000, '36h'],
      [90 * 60_000, '90m'],
      [45_000, '45s'],
    ] as const) {
      expect(formatDuration(ms)).toBe(text);
      expect(durationMs(text)).toBe(ms);
    }
    expect(durationMs('1d12h')).toBe(36 * 3_600_000);
    expect(durationMs('soon')).toBeUndefined();
  });
});

describe('the WipeOut Job and the archiver\'s --only-when-gone', () => {
  const { objects } = synthDatabase(seedProps({ terminationPolicy: TerminationPolicy.WIPE_OUT }), 'orders');
  const statefulSet = find(objects, 'StatefulSet', 'orders');
  const job = find(objects, 'Job', 'orders-wipeout');
  const [, , ...args] = job.spec.template.spec.containers[0].command;

  it('name the database\'s own StatefulSet in the Job\'s command, as the archiver reads it', () => {
    expect(parseDeleteArgs(args.slice(1)).onlyWhenGone?.database).toStrictEqual({ namespace: statefulSet.metadata.namespace, name: statefulSet.metadata.name });
  });

  it('grant the Job\'s ServiceAccount get on exactly the objects the archiver asks for', () => {
    const asked = databaseObjects(statefulSet.metadata.namespace!, statefulSet.metadata.name).map((o) => `${o.apiGroup}/${o.resource}/${o.name}`);
    const role = find(objects, 'Role', 'orders-wipeout');
    const granted = role.rules.flatMap((rule: any) => rule.apiGroups.flatMap((g: string) => rule.resources.flatMap((r: string) => rule.resourceNames.map((n: string) => `${g}/${r}/${n}`))));
    expect(granted).toStrictEqual(asked);
    expect(asked).toStrictEqual(['apps/statefulsets/orders', '/pods/orders-0']);
    expect(role.rules.every((rule: any) => rule.verbs.length === 1 && rule.verbs[0] === 'get')).toBe(true);
    const binding = find(objects, 'RoleBinding', 'orders-wipeout');
    expect(binding.subjects).toStrictEqual([{ kind: 'ServiceAccount', name: job.spec.template.spec.serviceAccountName, namespace: job.metadata.namespace }]);
  });
});

describe('the sidecar\'s metrics', () => {
  const { objects } = synthDatabase(seedProps());
  const sidecar = container(find(objects, 'StatefulSet', 'wal-postgres'), 'archiver');

  it('serve on the port the pod names for the PodMonitor, as the archiver reads it', () => {
    const port = readMetricsPort(envOf(sidecar));
    expect(port).toBe(METRICS_PORT);
    expect(sidecar.ports).toContainEqual({ name: METRICS_PORT_NAME, containerPort: port, protocol: 'TCP' });
    const endpoint = find(objects, 'PodMonitor', 'wal-postgres').spec.podMetricsEndpoints[0];
    expect(endpoint).toMatchObject({ port: METRICS_PORT_NAME, path: METRICS_PATH });
  });

  it('find pg_wal where the server has it: the sidecar\'s PGDATA is the data directory the archiver resolves', () => {
    const env = envOf(sidecar);
    expect(resolveDataDirectory(env, '/')).toBe(envOf(container(find(objects, 'StatefulSet', 'wal-postgres'), 'postgres')).PGDATA);
  });
});
