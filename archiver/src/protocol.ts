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
