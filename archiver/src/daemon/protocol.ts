/**
 * The background archiver's line protocol (contract/protocol.ts), as pure functions: parsing and
 * formatting of request and answer lines, shared by the server and the Node client. The launcher's
 * bash helper speaks the same lines (archiver/bin/archiver-call).
 */
import { ANSWERS, MAX_REQUEST_LINE, PROTOCOL_SEPARATOR, REQUEST_OPS, RecoveryMode, RequestOp, exitCodeForErrorName, parseRecoveryMode } from '../../../contract';

export { MAX_REQUEST_LINE };

export type Request =
  | { readonly op: 'push'; readonly file: string }
  /** `mode`: how the caller's PostgreSQL runs restore_command; it decides the answer to a failure (recovery.ts). */
  | { readonly op: 'fetch'; readonly name: string; readonly destination: string; readonly mode: RecoveryMode }
  | { readonly op: 'ping' }
  | { readonly op: 'stop' };

export type ParsedRequest =
  | { readonly kind: 'request'; readonly token: string; readonly owner: string; readonly request: Request }
  | { readonly kind: 'invalid'; readonly reason: string };

export type Answer =
  | { readonly kind: 'wait' }
  | { readonly kind: 'ok'; readonly detail?: string }
  | { readonly kind: 'exit'; readonly code: number; readonly name: string; readonly message: string }
  | { readonly kind: 'mismatch' };

/** The request line (without its newline). */
export function formatRequest(token: string, owner: string, request: Request): string {
  const args = request.op === 'push' ? [request.file] : request.op === 'fetch' ? [request.name, request.destination, request.mode] : [];
  return [token, request.op, owner, ...args].join(PROTOCOL_SEPARATOR);
}

export function parseRequest(line: string): ParsedRequest {
  if (line.length > MAX_REQUEST_LINE) return { kind: 'invalid', reason: 'request line too long' };
  const [token, op, owner, ...args] = line.split(PROTOCOL_SEPARATOR);
  if (!token || !op || owner === undefined) return { kind: 'invalid', reason: 'expected TOKEN OP OWNER ARGUMENTS, separated by tabs' };
  const request = requestOf(op as RequestOp, args);
  return request ? { kind: 'request', token, owner, request } : { kind: 'invalid', reason: `unknown or incomplete request ${JSON.stringify(op)}` };
}

function requestOf(op: RequestOp, args: readonly string[]): Request | undefined {
  switch (op) {
    case REQUEST_OPS.push:
      return args.length === 1 && args[0].startsWith('/') ? { op, file: args[0] } : undefined;
    case REQUEST_OPS.fetch: {
      // The mode is required: a caller that does not say would get a standby's answers in archive recovery.
      const mode = parseRecoveryMode(args[2] ?? '');
      return args.length === 3 && args[1].startsWith('/') && mode ? { op, name: args[0], destination: args[1], mode } : undefined;
    }
    case REQUEST_OPS.ping:
    case REQUEST_OPS.stop:
      return args.length === 0 ? { op } : undefined;
    default:
      return undefined;
  }
}

/** The answer line (without its newline) for a result or a failure. */
export function formatAnswer(answer: Answer): string {
  switch (answer.kind) {
    case 'wait':
      return ANSWERS.wait;
    case 'mismatch':
      return ANSWERS.mismatch;
    case 'ok':
      return answer.detail === undefined ? ANSWERS.ok : [ANSWERS.ok, oneLine(answer.detail)].join(PROTOCOL_SEPARATOR);
    case 'exit':
      return [ANSWERS.exit, String(answer.code), `${answer.name}: ${oneLine(answer.message)}`].join(PROTOCOL_SEPARATOR);
  }
}

/** The answer to a request that failed with `error`: its exit code from the one table. */
export function failure(error: unknown): Answer {
  const e = error instanceof Error ? error : new Error(String(error));
  return { kind: 'exit', code: exitCodeForErrorName(e.name), name: e.name, message: e.message };
}

export function parseAnswer(line: string): Answer | undefined {
  const [kind, ...rest] = line.split(PROTOCOL_SEPARATOR);
  switch (kind) {
    case ANSWERS.wait:
      return { kind: 'wait' };
    case ANSWERS.mismatch:
      return { kind: 'mismatch' };
    case ANSWERS.ok:
      return rest.length ? { kind: 'ok', detail: rest.join(PROTOCOL_SEPARATOR) } : { kind: 'ok' };
    case ANSWERS.exit: {
      const code = Number(rest[0]);
      const text = rest.slice(1).join(PROTOCOL_SEPARATOR);
      const colon = text.indexOf(': ');
      if (!Number.isInteger(code) || code < 1 || code > 255 || colon < 0) return undefined;
      return { kind: 'exit', code, name: text.slice(0, colon), message: text.slice(colon + 2) };
    }
    default:
      return undefined;
  }
}

function oneLine(text: string): string {
  return text.replace(/[\r\n\t]+/g, ' ');
}
