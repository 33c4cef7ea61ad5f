/**
 * The table of parameters that need a restart (constructs/restart-settings.ts) is PostgreSQL's own
 * word: compared with pg_settings of a real PostgreSQL 15, so that it cannot rot; and a server
 * shows what the table says, by a reload of a changed file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RELOADABLE_SETTINGS_15,
  RELOADABLE_SETTINGS_ELSEWHERE,
  RELOADABLE_SETTINGS_REMOVED_AFTER_15,
  RESTART_SETTINGS_15,
  RESTART_SETTINGS_ELSEWHERE,
  needsRestart,
} from '../../constructs/restart-settings';
import { waitUntil } from '../../testkit/doubles';
import { PostgresCluster } from '../../testkit/postgres';

describe('the restart table, against PostgreSQL 15\'s pg_settings', () => {
  let cluster: PostgresCluster;
  let contexts: Map<string, string>;
  beforeAll(async () => {
    cluster = await PostgresCluster.create();
    cluster.start();
    contexts = new Map(cluster.sql("select lower(name) || '|' || context from pg_settings").split('\n').map((line) => line.split('|') as [string, string]));
  }, 60_000);
  afterAll(async () => {
    await cluster?.remove();
  });

  const named = (context: (c: string) => boolean) => [...contexts].filter(([, c]) => context(c)).map(([name]) => name).sort();

  it('lists exactly the parameters of context postmaster as needing a restart', () => {
    expect([...RESTART_SETTINGS_15].sort()).toStrictEqual(named((c) => c === 'postmaster'));
  });

  it('lists exactly the parameters a reload applies (sighup, superuser, user, backend, superuser-backend) as reloadable', () => {
    expect([...RELOADABLE_SETTINGS_15].sort()).toStrictEqual(named((c) => ['sighup', 'superuser', 'user', 'backend', 'superuser-backend'].includes(c)));
  });

  it('answers for 15 as the server does: restart for postmaster and internal parameters, reload for the others', () => {
    for (const [name, context] of contexts) expect([name, needsRestart(name, 15)]).toStrictEqual([name, context === 'postmaster' || context === 'internal']);
  });

  it('names other versions\' parameters that 15 lacks, or has with the context the table says', () => {
    for (const name of Object.keys(RELOADABLE_SETTINGS_ELSEWHERE)) expect([name, contexts.has(name)]).toStrictEqual([name, false]);
    for (const name of Object.keys(RELOADABLE_SETTINGS_REMOVED_AFTER_15)) expect([name, RELOADABLE_SETTINGS_15.has(name)]).toStrictEqual([name, true]);
    for (const [name, versions] of Object.entries(RESTART_SETTINGS_ELSEWHERE)) {
      expect(versions).not.toContain(15);
      if (contexts.has(name)) expect([name, contexts.get(name)]).toStrictEqual([name, 'sighup']);
    }
  });

  it('counts a custom or unknown parameter, and any parameter of a version it does not describe, as needing a restart', () => {
    expect(needsRestart('auto_explain.log_min_duration', 15)).toBe(true);
    expect(needsRestart('no_such_parameter', 15)).toBe(true);
    expect(needsRestart('work_mem', 18)).toBe(true);
    expect(needsRestart('work_mem', 15)).toBe(false);
    expect(needsRestart('TimeZone', 15)).toBe(false);
  });

  it('knows what differs in other versions: restore_command needs a restart on 13 only, 17\'s SLRU buffers need one, removed parameters become unknown', () => {
    expect([13, 14, 15, 16, 17].map((v) => needsRestart('restore_command', v))).toStrictEqual([true, false, false, false, false]);
    expect([13, 14, 15, 16, 17].map((v) => needsRestart('transaction_buffers', v))).toStrictEqual([true, true, true, true, true]);
    expect([13, 14, 15, 16, 17].map((v) => needsRestart('scram_iterations', v))).toStrictEqual([true, true, true, false, false]);
    expect([13, 14, 15, 16, 17].map((v) => needsRestart('vacuum_defer_cleanup_age', v))).toStrictEqual([false, false, false, true, true]);
  });

  it('is what a reload shows: a changed reloadable parameter applies, a changed postmaster one waits for the restart', async () => {
    cluster.configure({ archive_timeout: 42, max_connections: 150 });
    cluster.reload();
    const shown = () => cluster.sql("select string_agg(name || '=' || setting || ':' || pending_restart::text, ' ' order by name) from pg_settings where name in ('archive_timeout', 'max_connections')");
    // The postmaster reads the files when the signal reaches it; a session opened after that sees them.
    await waitUntil(() => shown() !== 'archive_timeout=60:false max_connections=100:false', 'the reload', 10_000);
    expect(shown()).toBe('archive_timeout=42:false max_connections=100:true');
    expect([needsRestart('archive_timeout', 15), needsRestart('max_connections', 15)]).toStrictEqual([false, true]);
  });
});
