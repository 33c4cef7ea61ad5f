/**
 * The line protocol between the per-call client (started by PostgreSQL) and the background
 * archiver, over a Unix socket in the spool: one JSON request line, one JSON response line.
 */
export type Request =
  | { readonly op: 'push'; readonly file: string }
  | { readonly op: 'fetch'; readonly name: string; readonly destination: string }
  | { readonly op: 'ping' }
  | { readonly op: 'stop' };

export type Response =
  | { readonly ok: true; readonly detail?: Record<string, unknown> }
  | { readonly ok: false; readonly error: { readonly name: string; readonly message: string } };

/**
 * The shell protocol, on a loopback TCP port, for the launcher's bash helper
 * (archiver/bin/archiver-call), which can reach TCP through /dev/tcp but not a Unix socket. One
 * request line, one response line, fields separated by single spaces, the last field the rest of
 * the line (a path may hold spaces):
 *
 *   TOKEN push OWNER ABSOLUTE-PATH
 *   TOKEN fetch OWNER NAME ABSOLUTE-DESTINATION
 *
 * TOKEN is the secret in the spool's daemon.port file (readable by the postgres user only), OWNER
 * the caller's archive location (contract.ts spoolOwner). Responses: `ok`, `notfound MESSAGE`,
 * `usage MESSAGE`, `error NAME: MESSAGE`, `mismatch` (another location: the caller falls back to
 * Node, which starts the right background archiver).
 */
export type ShellRequest =
  | { readonly kind: 'request'; readonly token: string; readonly owner: string; readonly request: Request }
  | { readonly kind: 'invalid'; readonly reason: string };

export function parseShellRequest(line: string): ShellRequest {
  const [token, op, owner, ...rest] = line.split(' ');
  if (!token || !op || owner === undefined) return { kind: 'invalid', reason: 'expected TOKEN OP OWNER ...' };
  if (op === 'push' && rest.length >= 1) return { kind: 'request', token, owner, request: { op: 'push', file: rest.join(' ') } };
  if (op === 'fetch' && rest.length >= 2) return { kind: 'request', token, owner, request: { op: 'fetch', name: rest[0], destination: rest.slice(1).join(' ') } };
  return { kind: 'invalid', reason: `unknown or incomplete request ${JSON.stringify(op)}` };
}

/** The one-line answer to the shell helper. */
export function shellResponse(response: Response): string {
  if (response.ok) return 'ok';
  const message = response.error.message.replace(/[\r\n]+/g, ' ');
  if (response.error.name === 'WalNotFoundError') return `notfound ${message}`;
  if (response.error.name === 'UsageError' || response.error.name === 'ConfigError') return `usage ${message}`;
  return `error ${response.error.name}: ${message}`;
}
