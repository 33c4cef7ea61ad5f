/**
 * The database roles' passwords, kept equal to the Secrets mounted in the sidecar (contract/
 * credentials.ts). A mounted Secret is updated in place by the kubelet when the Secret changes, so
 * reading the files every few seconds is how a rotation reaches the database, with no restart:
 *
 * 1. Read the password files (a missing file: that password is left as it is).
 * 2. Every pod: when the replication password differs from the passfile's, write the passfile
 *    (`*:*:*:replication:<password>`, 0600, replaced atomically) that the standby's start script,
 *    probes and walreceiver read at every connection to pod 0.
 * 3. Pod 0 only (the standbys get the roles from pod 0's WAL): when either password differs from
 *    what this process last applied, connect over the Unix socket as the superuser and, out of
 *    recovery, create the replication role if it is missing (a database initialised before it
 *    existed) or bring it back to its attributes and grants, and set both roles' passwords.
 *    Not reachable or still in recovery: try again at the next look.
 *
 * No password reaches a log: ours names roles only; the server gets a SCRAM verifier computed
 * here (as psql's \password sends), never the password, in a session whose statement logging is
 * off. The grants are the least the standbys need (README: Roles and passwords): LOGIN
 * REPLICATION for pg_basebackup and streaming, and EXECUTE on the four file functions pg_rewind
 * reads pod 0's files with, which start.sh's queries read postgresql.auto.conf and the timeline
 * history with too; nothing else (pg_control_system() and the rest are everyone's).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CREDENTIALS_ENV, REPLICATION_USER, SUPERUSER_NAME } from '../../../contract';
import type { Logger } from '../logger';
import { PeriodicLook } from './periodic-look';

/** The functions pg_rewind needs on its source server as a role that is not a superuser (its documentation). */
export const REPLICATION_ROLE_GRANTS = [
  'pg_catalog.pg_ls_dir(text, boolean, boolean)',
  'pg_catalog.pg_stat_file(text, boolean)',
  'pg_catalog.pg_read_binary_file(text)',
  'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',
] as const;

/** What the keeper runs its statements on: a superuser session (backup/postgres-session.ts). */
export interface RoleSession {
  readonly facts: { readonly inRecovery: boolean };
  rows<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  close(): Promise<void>;
}

export interface CredentialKeeperOptions {
  /** The superuser's password file. @default - its password is left as it is */
  readonly superuserPasswordFile?: string;
  /** The replication role's password file. @default - no role, no passfile */
  readonly replicationPasswordFile?: string;
  /** Where the replication role's passfile is written. @default - none */
  readonly passfile?: string;
  /** Whether this is pod 0's sidecar, which keeps the roles (the standbys only write the passfile). */
  readonly managesRoles: boolean;
  /** Opens a superuser session over the Unix socket. */
  readonly openSession: () => Promise<RoleSession>;
  /** @default 5000 */
  readonly intervalMs?: number;
  readonly log: Logger;
}

/** A password file's content as the official image's entrypoint reads one (`$(< file)`): without trailing newlines. */
export function readPasswordFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const text = fs.readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** A libpq passfile line for `user` on every host, port and database: `:` and `\` escaped. */
export function passfileLine(user: string, password: string): string {
  if (/[\r\n]/.test(password)) throw new Error('the password contains a line break, which a libpq password file cannot hold');
  const escape = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`);
  return `*:*:*:${escape(user)}:${escape(password)}\n`;
}

/** Writes the passfile atomically (a reader sees the old one or the new one), mode 0600 as libpq demands. */
export function writePassfile(file: string, user: string, password: string): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(temporary, passfileLine(user, password), { mode: 0o600 });
    fs.chmodSync(temporary, 0o600);
    fs.renameSync(temporary, file);
  } catch (error) {
    // A full tmp volume: no half-written copy of the password stays behind.
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, PostgreSQL's
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), or undefined when the password
 * is not plain ASCII: PostgreSQL normalizes such passwords (SASLprep) first, which is not
 * reproduced here; those are sent as they are, in the quiet session.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string | undefined {
  if (!/^[\x20-\x7e]*$/.test(password)) return undefined;
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** A string literal for SQL with standard_conforming_strings on. */
function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function passwordClause(password: string): string {
  return `PASSWORD ${literal(scramVerifier(password) ?? password)}`;
}

/** Whether the role exists; creates it or resets its attributes, grants and password. */
export async function applyRolePasswords(session: RoleSession, passwords: { superuser?: string; replication?: string }): Promise<{ created: boolean }> {
  // Whatever follows must not reach the server's log, not even as a failed statement.
  await session.rows("SET log_statement = 'none'; SET log_min_error_statement = 'panic'; SET log_min_duration_statement = -1; SET standard_conforming_strings = on; SET password_encryption = 'scram-sha-256'");
  let created = false;
  if (passwords.replication !== undefined) {
    const exists = (await session.rows(`SELECT 1 FROM pg_roles WHERE rolname = ${literal(REPLICATION_USER)}`)).length > 0;
    const attributes = 'LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS';
    await session.rows(`${exists ? 'ALTER' : 'CREATE'} ROLE ${REPLICATION_USER} WITH ${attributes} ${passwordClause(passwords.replication)}`);
    for (const fn of REPLICATION_ROLE_GRANTS) await session.rows(`GRANT EXECUTE ON FUNCTION ${fn} TO ${REPLICATION_USER}`);
    created = !exists;
  }
  if (passwords.superuser !== undefined) await session.rows(`ALTER ROLE ${SUPERUSER_NAME} WITH ${passwordClause(passwords.superuser)}`);
  return { created };
}

/** A fingerprint of what was applied, kept in memory only (never the passwords themselves). */
function fingerprint(values: (string | undefined)[]): string {
  return createHash('sha256').update(JSON.stringify(values)).digest('hex');
}

/** Looks at the password files every `intervalMs` (steps in the module's comment) until stopped. */
export class CredentialKeeper {
  private readonly loop: PeriodicLook;
  private written: string | undefined;
  private applied: string | undefined;
  private lastProblem: string | undefined;

  constructor(private readonly options: CredentialKeeperOptions) {
    this.loop = new PeriodicLook(() => this.look(), options.intervalMs ?? 5000);
  }

  /** Step 2 at once (synchronous: the passfile is there before the sidecar answers), then the looks. */
  start(): void {
    this.writePassfile(readPasswordFile(this.options.replicationPasswordFile));
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One look (steps 1-3); never throws. */
  async look(): Promise<void> {
    const superuser = readPasswordFile(this.options.superuserPasswordFile);
    const replication = readPasswordFile(this.options.replicationPasswordFile);
    this.writePassfile(replication);
    if (!this.options.managesRoles) return;
    const wanted = fingerprint([superuser, replication]);
    if (wanted === this.applied || (superuser === undefined && replication === undefined)) return;
    let session: RoleSession | undefined;
    try {
      session = await this.options.openSession();
      if (session.facts.inRecovery) return this.problem('the server is in recovery: the roles are kept once it is out of it');
      const { created } = await applyRolePasswords(session, { superuser, replication });
      this.applied = wanted;
      this.lastProblem = undefined;
      const roles = [replication !== undefined ? REPLICATION_USER : undefined, superuser !== undefined ? SUPERUSER_NAME : undefined].filter(Boolean).join(',');
      this.options.log.info(created ? `the role ${REPLICATION_USER} is created; the roles' passwords are those of their Secrets` : "the roles' passwords are set from their Secrets", { roles });
    } catch (error) {
      this.problem(`cannot set the roles' passwords (trying again): ${(error as Error).message}`);
    } finally {
      await session?.close();
    }
  }

  private writePassfile(password: string | undefined): void {
    const file = this.options.passfile;
    if (!file || password === undefined) return;
    const wanted = fingerprint([password]);
    if (wanted === this.written && fs.existsSync(file)) return;
    try {
      writePassfile(file, REPLICATION_USER, password);
      this.written = wanted;
      this.options.log.info('the replication passfile is written from its Secret', { passfile: file });
    } catch (error) {
      this.problem(`cannot write the replication passfile ${file}: ${(error as Error).message}`);
    }
  }

  /** Logs a problem once while it lasts (a look every few seconds would repeat it). */
  private problem(message: string): void {
    if (message !== this.lastProblem) this.options.log.warn(message);
    this.lastProblem = message;
  }
}

/**
 * The keeper of the sidecar, from its environment (CREDENTIALS_ENV), or undefined when no
 * password file is named (not a pod's sidecar).
 */
export function credentialKeeperFromEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  managesRoles: boolean,
  openSession: () => Promise<RoleSession>,
  log: Logger,
): CredentialKeeper | undefined {
  const superuserPasswordFile = env[CREDENTIALS_ENV.superuserPasswordFile] || undefined;
  const replicationPasswordFile = env[CREDENTIALS_ENV.replicationPasswordFile] || undefined;
  if (!superuserPasswordFile && !replicationPasswordFile) return undefined;
  const seconds = Number(env[CREDENTIALS_ENV.pollSeconds] ?? 5);
  return new CredentialKeeper({
    superuserPasswordFile,
    replicationPasswordFile,
    passfile: env[CREDENTIALS_ENV.replicationPassfile] || undefined,
    managesRoles,
    openSession,
    intervalMs: Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 5000,
    log,
  });
}
