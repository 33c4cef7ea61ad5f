/**
 * The background archiver's line protocol (archiver/src/daemon/protocol.ts, contract/protocol.ts):
 * request and answer lines as pure functions. The launcher's bash helper speaks the same lines, so
 * their shape is the contract: tab-separated fields, one line each, exit codes from the one table.
 */
import { describe, expect, it } from 'vitest';
import { ANSWERS, ERROR_EXIT_CODES, EXIT_CODES, MAX_REQUEST_LINE, PROTOCOL_SEPARATOR, REQUEST_OPS } from '../../../contract';
import { Answer, Request, failure, formatAnswer, formatRequest, parseAnswer, parseRequest } from '../../../archiver/src/daemon/protocol';

const TOKEN = '0123456789abcdef0123456789abcdef';
const OWNER = 's3://bucket/team a/archive|http://minio:9000';

describe('request lines', () => {
  const requests: [string, Request][] = [
    ['push', { op: 'push', file: '/var/lib/postgresql/data/pg_wal/000000010000000000000001' }],
    ['push of a path with spaces', { op: 'push', file: '/data dir/pg_wal/000000010000000000000001' }],
    ['fetch', { op: 'fetch', name: '000000010000000000000001', destination: '/data/pg_wal/RECOVERYXLOG', mode: 'none' }],
    ['fetch in archive recovery', { op: 'fetch', name: '000000010000000000000001', destination: '/data/pg_wal/RECOVERYXLOG', mode: 'archive-recovery' }],
    ['fetch in standby mode', { op: 'fetch', name: '000000010000000000000001', destination: '/data/pg_wal/RECOVERYXLOG', mode: 'standby' }],
    ['ping', { op: 'ping' }],
    ['stop', { op: 'stop' }],
  ];

  it.each(requests)('round-trips a %s request: TOKEN, OP, OWNER, ARGUMENTS separated by tabs', (_what, request) => {
    const line = formatRequest(TOKEN, OWNER, request);
    expect(line.split(PROTOCOL_SEPARATOR).slice(0, 3)).toEqual([TOKEN, REQUEST_OPS[request.op], OWNER]);
    expect(line).not.toContain('\n');
    expect(parseRequest(line)).toEqual({ kind: 'request', token: TOKEN, owner: OWNER, request });
  });

  it('writes the exact line the bash helper writes for a push and a fetch', () => {
    expect(formatRequest(TOKEN, OWNER, { op: 'push', file: '/d/pg_wal/X' })).toBe(`${TOKEN}\tpush\t${OWNER}\t/d/pg_wal/X`);
    expect(formatRequest(TOKEN, OWNER, { op: 'fetch', name: 'X', destination: '/d/pg_wal/RECOVERYXLOG', mode: 'archive-recovery' })).toBe(`${TOKEN}\tfetch\t${OWNER}\tX\t/d/pg_wal/RECOVERYXLOG\tarchive-recovery`);
  });

  it('accepts an empty owner field (no location is a location too)', () => {
    expect(parseRequest(`${TOKEN}\tping\t`)).toEqual({ kind: 'request', token: TOKEN, owner: '', request: { op: 'ping' } });
  });

  it.each([
    ['a line longer than MAX_REQUEST_LINE', `${TOKEN}\tpush\t${OWNER}\t/${'x'.repeat(MAX_REQUEST_LINE)}`, 'request line too long'],
    ['no owner field', `${TOKEN}\tping`, 'expected TOKEN OP OWNER ARGUMENTS, separated by tabs'],
    ['an empty token', `\tping\t${OWNER}`, 'expected TOKEN OP OWNER ARGUMENTS, separated by tabs'],
    ['spaces instead of tabs', `${TOKEN} ping ${OWNER}`, 'expected TOKEN OP OWNER ARGUMENTS, separated by tabs'],
    ['an unknown op', `${TOKEN}\tdelete\t${OWNER}\t/x`, 'unknown or incomplete request "delete"'],
    ['a push of a relative path', `${TOKEN}\tpush\t${OWNER}\tpg_wal/000000010000000000000001`, 'unknown or incomplete request "push"'],
    ['a push with two paths', `${TOKEN}\tpush\t${OWNER}\t/a\t/b`, 'unknown or incomplete request "push"'],
    ['a fetch to a relative destination', `${TOKEN}\tfetch\t${OWNER}\t000000010000000000000001\tRECOVERYXLOG\tnone`, 'unknown or incomplete request "fetch"'],
    ['a fetch without a destination', `${TOKEN}\tfetch\t${OWNER}\t000000010000000000000001`, 'unknown or incomplete request "fetch"'],
    ['a fetch without a mode (it would get a standby\'s answers in archive recovery)', `${TOKEN}\tfetch\t${OWNER}\t000000010000000000000001\t/d/pg_wal/RECOVERYXLOG`, 'unknown or incomplete request "fetch"'],
    ['a fetch with an unknown mode', `${TOKEN}\tfetch\t${OWNER}\t000000010000000000000001\t/d/pg_wal/RECOVERYXLOG\trecovery`, 'unknown or incomplete request "fetch"'],
    ['a ping with an argument', `${TOKEN}\tping\t${OWNER}\t/x`, 'unknown or incomplete request "ping"'],
  ])('fails to parse %s', (_what, line, reason) => {
    expect(parseRequest(line)).toEqual({ kind: 'invalid', reason });
  });
});

describe('answer lines', () => {
  const answers: [string, Answer, string][] = [
    ['wait', { kind: 'wait' }, 'wait'],
    ['ok', { kind: 'ok' }, 'ok'],
    ['ok with a detail', { kind: 'ok', detail: '{"status":"stored"}' }, 'ok\t{"status":"stored"}'],
    ['exit', { kind: 'exit', code: 74, name: 'WalNotFoundError', message: 'X is not in the archive at s3://b: see above' }, 'exit\t74\tWalNotFoundError: X is not in the archive at s3://b: see above'],
    ['mismatch', { kind: 'mismatch' }, 'mismatch'],
  ];

  it.each(answers)('round-trips %s', (_what, answer, line) => {
    expect(formatAnswer(answer)).toBe(line);
    expect(parseAnswer(line)).toEqual(answer);
  });

  it('keeps an answer on one line: newlines and tabs in a message or detail become spaces', () => {
    const line = formatAnswer({ kind: 'exit', code: 1, name: 'StorageError', message: 'first line\nsecond\tfield\r\nthird' });
    expect(line).toBe('exit\t1\tStorageError: first line second field third');
    expect(formatAnswer({ kind: 'ok', detail: 'a\nb' })).toBe('ok\ta b');
  });

  it('uses the contract\'s answer words', () => {
    expect(formatAnswer({ kind: 'wait' })).toBe(ANSWERS.wait);
    expect(formatAnswer({ kind: 'mismatch' })).toBe(ANSWERS.mismatch);
    expect(formatAnswer({ kind: 'ok' })).toBe(ANSWERS.ok);
  });

  it.each([
    ['an unknown word', 'done'],
    ['exit code 0', 'exit\t0\tError: x'],
    ['exit code 256', 'exit\t256\tError: x'],
    ['a non-numeric exit code', 'exit\tone\tError: x'],
    ['an exit without NAME: MESSAGE', 'exit\t1\tsomething went wrong'],
    ['an empty line', ''],
  ])('fails to parse %s', (_what, line) => {
    expect(parseAnswer(line)).toBeUndefined();
  });
});

describe('failure answers', () => {
  it.each(Object.entries(ERROR_EXIT_CODES))('answers %s with exit code %i, from the contract\'s table', (name, code) => {
    const error = Object.assign(new Error(`a ${name}`), { name });
    expect(failure(error)).toEqual({ kind: 'exit', code, name, message: `a ${name}` });
    expect(parseAnswer(formatAnswer(failure(error)))).toEqual({ kind: 'exit', code, name, message: `a ${name}` });
  });

  it('answers any other error, and a thrown non-Error, with the generic error code', () => {
    expect(failure(new TypeError('boom'))).toEqual({ kind: 'exit', code: EXIT_CODES.error, name: 'TypeError', message: 'boom' });
    expect(failure('a string')).toEqual({ kind: 'exit', code: EXIT_CODES.error, name: 'Error', message: 'a string' });
  });
});
