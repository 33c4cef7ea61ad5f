/**
 * A streaming standby of a test cluster, as the database pods run one: a base backup of the
 * primary, standby.signal, primary_conninfo; started and waited for until its WAL receiver streams.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PostgresCluster, giveToPostgres } from './postgres';

/** Polls until the standby's WAL receiver streams; fails with its log after `timeoutMs`. */
export async function waitForStreaming(standby: PostgresCluster, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (standby.sql("select coalesce((select status from pg_stat_wal_receiver), 'none')") !== 'streaming') {
    if (Date.now() > deadline) throw new Error(`the standby does not stream:\n${standby.log().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A hot standby streaming from `primary` (which must allow replication connections from
 * 127.0.0.1: initdb's default pg_hba.conf with trust does). It archives nothing unless `settings`
 * say so (archive_mode = on: once promoted). Remove it with `remove()`.
 */
export async function startStreamingStandby(primary: PostgresCluster, env: Record<string, string> = {}, settings: Record<string, string | number> = {}): Promise<PostgresCluster> {
  const copy = primary.baseBackup();
  try {
    const standby = await PostgresCluster.create({
      env,
      fromDataDirectory: copy,
      settings: { hot_standby: 'on', primary_conninfo: `'host=127.0.0.1 port=${primary.port} user=postgres'`, archive_mode: 'off', ...settings },
    });
    fs.writeFileSync(path.join(standby.dataDir, 'standby.signal'), '');
    giveToPostgres(standby.dataDir);
    standby.start();
    await waitForStreaming(standby);
    return standby;
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
}
