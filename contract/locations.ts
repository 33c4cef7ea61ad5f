/**
 * Checks of an archive location that both sides make: the constructs at synth time (with the
 * construct path and field), the archiver when it reads its environment (with the variable).
 * Each returns `undefined` when the value is fine, or a sentence saying what is wrong and what is
 * expected. No value that may hold a credential is ever repeated.
 */

/** Renders a value for a message, quoted and shortened; never used for suspected credentials. */
export function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A path inside the bucket: relative, no empty, '.' or '..' segments. */
export function checkArchivePrefix(prefix: string): string | undefined {
  const expected = 'use a relative path such as "team-a/prod" (no leading \'/\', no \'..\' or empty segments)';
  if (prefix.startsWith('/')) return `${show(prefix)} starts with '/': ${expected}`;
  if (prefix.includes('//')) return `${show(prefix)} contains '//': ${expected}`;
  if (prefix.split('/').some((segment) => segment === '..' || segment === '.')) return `${show(prefix)} contains a '..' or '.' segment: ${expected}`;
  if (/[\\\s]|[\u0000-\u001f]/.test(prefix)) return `${show(prefix)} contains whitespace, '\\' or control characters: ${expected}`;
  return undefined;
}

/**
 * An S3-compatible endpoint: an absolute http(s) URL without path, query or credentials.
 * Credentials in the URL (`http://user:secret@host`) are refused without repeating them: they
 * would reach logs, `archiver check` and the spool.
 */
export function checkS3Endpoint(endpoint: string): string | undefined {
  const expected = 'give an absolute URL such as "https://s3.amazonaws.com" or "http://minio.storage.svc:9000"';
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return endpoint.includes('@') ? `is not a URL (value not shown: it may hold credentials): ${expected}` : `${show(endpoint)} is not a URL: ${expected}`;
  }
  if (url.username || url.password) return 'contains credentials (value not shown): keep credentials in the storage Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), not in the URL';
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `${show(endpoint)} uses ${url.protocol}: ${expected}`;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    return `${show(endpoint)} has a path or query: ${expected}; the bucket and prefix are separate fields`;
  }
  return undefined;
}
