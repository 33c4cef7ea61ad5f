/**
 * `delete` (retention) and `wal-verify`: thin commands around the planners in
 * backup/retention.ts and backup/wal-verify.ts. A bundle of their own (lib/retention.cjs): the WAL
 * commands never load them.
 */
import { ARCHIVE_LAYOUT } from '../../../contract';
import { deletePlanned, readArchiveContents } from '../backup/archive-contents';
import { isBackupName, listBackups } from '../backup/catalog';
import { parseTargetTime } from '../backup/recovery-target';
import { RetentionPolicy, describePlan, planRetention, planSummary } from '../backup/retention';
import { TimelineHistory, describeWalVerify, parseTimelineHistory, verifyWal } from '../backup/wal-verify';
import { readConfig } from '../config';
import { DEFAULT_GONE_TIMEOUT, DURATION_SYNTAX, GONE_TIMEOUT_FLAG, ONLY_WHEN_GONE_FLAG, databaseObjects, durationMs } from '../../../contract';
import { UsageError, WalNotContinuousError } from '../errors';
import { inClusterApi } from '../kubernetes-api';
import { Logger } from '../logger';
import { DatabaseRef, parseDatabaseRef, waitUntilGone } from '../only-when-gone';
import { openRepository } from '../repository';
import { DEFAULT_WAL_SEGMENT_SIZE, walFileKind } from '../wal-names';
import { parseArgs } from './args';

type Out = (text: string) => void;
const stdout: Out = (text) => process.stdout.write(text);

/** `30d`, `12h`, `1d12h`, `90m`, `2w`: a duration in milliseconds. */
export function parseDuration(text: string, what = '--window'): number {
  const ms = durationMs(text);
  if (ms === undefined) throw new UsageError(`${what} takes ${DURATION_SYNTAX}; got ${JSON.stringify(text)}`);
  if (ms <= 0) throw new UsageError(`${what} must be longer than 0; got ${JSON.stringify(text)}`);
  return ms;
}

/** `delete everything --only-when-gone`: the database that must be gone before anything is deleted. */
export interface OnlyWhenGone {
  readonly database: DatabaseRef;
  /** How long an existing database is waited for (GONE_TIMEOUT_FLAG). */
  readonly timeoutMs: number;
}

export interface DeleteArgs {
  readonly policy: RetentionPolicy;
  readonly confirm: boolean;
  readonly json: boolean;
  /** Set by ONLY_WHEN_GONE_FLAG (`everything` only). */
  readonly onlyWhenGone?: OnlyWhenGone;
}

const onlyWhenGoneOption = ONLY_WHEN_GONE_FLAG.slice(2);
const goneTimeoutOption = GONE_TIMEOUT_FLAG.slice(2);

/** The policy of `delete`'s command line (without the storage). */
export function parseDeleteArgs(args: readonly string[]): DeleteArgs {
  const { positional, flags } = parseArgs('delete', args, { window: 'value', confirm: 'flag', json: 'flag', [onlyWhenGoneOption]: 'value', [goneTimeoutOption]: 'value' });
  const window = flags.get('window');
  const policy: { -readonly [K in keyof RetentionPolicy]: RetentionPolicy[K] } = {};
  if (typeof window === 'string') policy.windowMs = parseDuration(window);
  const [rule, value] = positional;
  const extra = (expected: number) => {
    if (positional.length !== expected) throw new UsageError(`delete ${rule}: ${expected === 1 ? 'takes no argument' : 'takes one argument'}; got ${positional.slice(1).join(' ') || 'none'}`);
  };
  switch (rule) {
    case undefined:
      if (policy.windowMs === undefined) throw new UsageError("delete needs a rule: retain <N>, before <time|backup>, everything, or --window <duration>; run 'archiver delete --help'");
      break;
    case 'retain': {
      extra(2);
      const n = Number(value);
      if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 1) throw new UsageError(`delete retain takes a whole number of at least 1 (the newest backups to keep); got ${JSON.stringify(value)}`);
      policy.retain = n;
      break;
    }
    case 'before':
      extra(2);
      if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
        try {
          policy.beforeTime = new Date(parseTargetTime(value).at);
        } catch (error) {
          throw new UsageError(`delete before: ${(error as Error).message.replace(/^--target-time /, '')}`);
        }
      } else {
        if (!isBackupName(value)) throw new UsageError(`delete before takes an ISO 8601 time with a zone (2026-11-30T06:00:00Z) or a backup name (base_20261130T060102Z); got ${JSON.stringify(value)}`);
        policy.beforeBackup = value;
      }
      break;
    case 'everything':
      extra(1);
      if (policy.windowMs !== undefined) throw new UsageError('delete everything takes no --window: it deletes every object of the archive');
      policy.everything = true;
      break;
    default:
      throw new UsageError(`delete: unknown rule ${JSON.stringify(rule)}; the rules are retain <N>, before <time|backup>, everything (and --window <duration>)`);
  }
  const gone = flags.get(onlyWhenGoneOption);
  const goneTimeout = flags.get(goneTimeoutOption);
  if (typeof gone === 'string' && !policy.everything) {
    throw new UsageError(`${ONLY_WHEN_GONE_FLAG} is for delete everything (the WipeOut Job's command); retention rules run beside a live database`);
  }
  if (typeof goneTimeout === 'string' && typeof gone !== 'string') throw new UsageError(`${GONE_TIMEOUT_FLAG} needs ${ONLY_WHEN_GONE_FLAG} <namespace>/<statefulset>`);
  const parsed = { policy, confirm: flags.has('confirm'), json: flags.has('json') };
  if (typeof gone !== 'string') return parsed;
  return {
    ...parsed,
    onlyWhenGone: {
      database: parseDatabaseRef(gone, ONLY_WHEN_GONE_FLAG),
      timeoutMs: parseDuration(typeof goneTimeout === 'string' ? goneTimeout : DEFAULT_GONE_TIMEOUT, GONE_TIMEOUT_FLAG),
    },
  };
}

export async function runDelete(args: readonly string[], out: Out = stdout, now: () => Date = () => new Date()): Promise<void> {
  const { policy, confirm, json, onlyWhenGone } = parseDeleteArgs(args);
  const config = readConfig();
  const log = new Logger(config.logLevel);
  if (onlyWhenGone) {
    // Before the storage is even opened: nothing of the archive is touched while the database exists.
    // The API is looked up at each request, so that a pod without one (no KUBERNETES_SERVICE_HOST)
    // is refused like any request that got no answer: naming the object, nothing deleted.
    const { namespace, name } = onlyWhenGone.database;
    await waitUntilGone({ objects: databaseObjects(namespace, name), get: (path) => inClusterApi(process.env).get(path), timeoutMs: onlyWhenGone.timeoutMs, log });
  }
  const archive = await openRepository(config, { log });
  try {
    const contents = await readArchiveContents(archive.storage);
    const plan = planRetention({ ...contents, now: now() }, policy);
    if (confirm) await deletePlanned(archive.storage, plan, log);
    out(json ? `${JSON.stringify(planSummary(plan, confirm), null, 2)}\n` : describePlan(plan, confirm));
  } finally {
    await archive.close();
  }
}

export async function runWalVerify(args: readonly string[], out: Out = stdout): Promise<void> {
  const { positional, flags } = parseArgs('wal-verify', args, { json: 'flag' });
  if (positional.length > 0) throw new UsageError(`wal-verify takes no arguments; got ${positional.join(' ')}`);
  const config = readConfig();
  const archive = await openRepository(config, { log: new Logger(config.logLevel) });
  try {
    const [walObjects, backups, identity] = await Promise.all([archive.storage.list(ARCHIVE_LAYOUT.wal), listBackups(archive.storage), archive.readIdentity()]);
    const walNames = walObjects.map((object) => object.key.slice(ARCHIVE_LAYOUT.wal.length));
    const histories: TimelineHistory[] = await Promise.all(
      walNames
        .filter((name) => walFileKind(name) === 'history')
        .map(async (name) => parseTimelineHistory(parseInt(name.slice(0, 8), 16), (await archive.fetchData(name)).data.toString('utf8'), `${ARCHIVE_LAYOUT.wal}${name} at ${archive.location}`)),
    );
    const segmentSize = identity?.walSegmentSize ?? backups[0]?.walSegmentSize ?? DEFAULT_WAL_SEGMENT_SIZE;
    const report = verifyWal({ walNames, histories, backups, segmentSize });
    out(flags.has('json') ? `${JSON.stringify(report, null, 2)}\n` : describeWalVerify(report));
    if (!report.ok) {
      const problems = [
        ...report.gaps.map((gap) => `timeline ${gap.timeline}: ${gap.first} .. ${gap.last} (${gap.missing} missing)`),
        ...report.missingHistory.map((timeline) => `timeline ${timeline}: no history file`),
      ];
      throw new WalNotContinuousError(`the WAL at ${archive.location} is not continuous: ${problems.join('; ')}`);
    }
  } finally {
    await archive.close();
  }
}
