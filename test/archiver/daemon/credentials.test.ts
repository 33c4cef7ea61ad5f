/**
 * The sidecar's credential keeper (archiver/src/daemon/credentials.ts) on its own: the password
 * files it reads, the passfile it writes, and when it opens a session to set the roles' passwords
 * (a session double records the statements). That the statements work on PostgreSQL 15, and that
 * the verifier is PostgreSQL's, is in test/constructs/replication-role.real-postgres.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CredentialKeeper, RoleSession, passfileLine, readPasswordFile, scramVerifier, writePassfile } from '../../../archiver/src/daemon/credentials';
import { Logger } from '../../../archiver/src/logger';
import { SmallDisk } from '../../../testkit/small-disk';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'credentials-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A session double: in recovery or not; records each statement. */
function sessions(inRecovery: () => boolean) {
  const statements: string[] = [];
  let opened = 0;
  const open = async (): Promise<RoleSession> => {
    opened++;
    return {
      facts: { inRecovery: inRecovery() },
      rows: async <T,>(sql: string) => {
        statements.push(sql);
        return [] as T[];
      },
      close: async () => undefined,
    };
  };
  return { open, statements, opened: () => opened };
}

function keeper(dir: string, managesRoles: boolean, openSession: () => Promise<RoleSession>, lines: string[]) {
  return new CredentialKeeper({
    superuserPasswordFile: path.join(dir, 'superuser'),
    replicationPasswordFile: path.join(dir, 'replication'),
    passfile: path.join(dir, 'replication.pgpass'),
    managesRoles,
    openSession,
    log: new Logger('debug', (line) => lines.push(line)),
  });
}

describe('the credential keeper', () => {
  it('reads a password file as the official entrypoint does: trailing newlines dropped; missing or empty is no password', () => {
    const file = path.join(scratch, 'password');
    fs.writeFileSync(file, 's3cret\n\n');
    expect(readPasswordFile(file)).toBe('s3cret');
    fs.writeFileSync(file, '');
    expect(readPasswordFile(file)).toBeUndefined();
    expect(readPasswordFile(path.join(scratch, 'absent'))).toBeUndefined();
  });

  it('writes a libpq passfile line for every host, port and database, with ":" and "\\" escaped, mode 0600', () => {
    expect(passfileLine('replication', 'a:b\\c')).toBe('*:*:*:replication:a\\:b\\\\c\n');
    expect(() => passfileLine('replication', 'two\nlines')).toThrow('line break');
    const file = path.join(scratch, 'replication.pgpass');
    writePassfile(file, 'replication', 'pw');
    expect(fs.readFileSync(file, 'utf8')).toBe('*:*:*:replication:pw\n');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('on a full tmp volume: fails, the previous passfile intact, and no half-written copy of the password left beside it', () => {
    const disk = new SmallDisk(path.join(scratch, 'full-tmp'));
    disk.mount(1);
    try {
      const file = path.join(disk.path, 'replication.pgpass');
      writePassfile(file, 'replication', 'old');
      fs.writeFileSync(path.join(disk.path, 'filler'), Buffer.alloc(1024 * 1024 - 4096));
      for (let i = 0; ; i++) {
        try {
          fs.writeFileSync(path.join(disk.path, `more-${i}`), Buffer.alloc(4096));
        } catch {
          break;
        }
      }
      expect(() => writePassfile(file, 'replication', 'n'.repeat(8192))).toThrow(/ENOSPC/);
      expect(fs.readFileSync(file, 'utf8')).toBe('*:*:*:replication:old\n');
      expect(fs.readdirSync(disk.path).filter((name) => name.includes('pgpass'))).toStrictEqual(['replication.pgpass']);
    } finally {
      disk.unmount();
    }
  });

  it('computes the SCRAM-SHA-256 verifier PostgreSQL stores (its form), and none for a password PostgreSQL would normalize', () => {
    expect(scramVerifier('pencil', Buffer.alloc(16, 1), 4096)).toMatch(/^SCRAM-SHA-256\$4096:AQEBAQEBAQEBAQEBAQEBAQ==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    expect(scramVerifier('pässword')).toBeUndefined();
  });

  it('on pod 0: sets the passwords once per change, as verifiers in a session that logs no statement, never the password in its log', async () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'pod0-'));
    fs.writeFileSync(path.join(dir, 'superuser'), 'super-1');
    fs.writeFileSync(path.join(dir, 'replication'), 'repl-1');
    const double = sessions(() => false);
    const lines: string[] = [];
    const k = keeper(dir, true, double.open, lines);
    await k.look();
    await k.look();
    expect(double.opened()).toBe(1);
    expect(double.statements[0]).toContain("SET log_statement = 'none'");
    expect(double.statements).toContainEqual(expect.stringMatching(/^CREATE ROLE replication WITH LOGIN REPLICATION NOSUPERUSER .* PASSWORD 'SCRAM-SHA-256\$4096:/));
    expect(double.statements).toContain('GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO replication');
    expect(double.statements).toContainEqual(expect.stringMatching(/^ALTER ROLE postgres WITH PASSWORD 'SCRAM-SHA-256\$/));
    expect(double.statements.join('\n')).not.toMatch(/super-1|repl-1/);

    fs.writeFileSync(path.join(dir, 'replication'), 'repl-2');
    await k.look();
    expect(double.opened()).toBe(2);
    expect(fs.readFileSync(path.join(dir, 'replication.pgpass'), 'utf8')).toBe('*:*:*:replication:repl-2\n');
    expect(lines.join('')).not.toMatch(/super-1|repl-1|repl-2/);
  });

  it('on pod 0 in recovery: sets nothing, and tries again at the next look', async () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'recovering-'));
    fs.writeFileSync(path.join(dir, 'replication'), 'repl');
    let recovering = true;
    const double = sessions(() => recovering);
    const k = keeper(dir, true, double.open, []);
    await k.look();
    expect(double.statements).toStrictEqual([]);
    recovering = false;
    await k.look();
    expect(double.statements.some((s) => s.startsWith('CREATE ROLE replication'))).toBe(true);
  });

  it('on a standby: writes the passfile at start, before the first look, and never opens a session', async () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'standby-'));
    fs.writeFileSync(path.join(dir, 'replication'), 'repl');
    const double = sessions(() => true);
    const k = keeper(dir, false, double.open, []);
    k.start();
    expect(fs.readFileSync(path.join(dir, 'replication.pgpass'), 'utf8')).toBe('*:*:*:replication:repl\n');
    await k.look();
    await k.stop();
    expect(double.opened()).toBe(0);
  });
});
