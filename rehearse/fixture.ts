/**
 * The Secrets the rehearsed databases reference, as a cluster would hold them: made here, for the
 * rehearsal only, with fresh random passwords and a throwaway CA (openssl). Their values go into
 * the rehearsal's own directory (removed afterwards) and never into its output.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KubeObject } from './pod-rendering';

/** s3rver's built-in account (it checks nothing strictly; testkit/s3-server.ts). */
export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } as const;

export type Secrets = Record<string, Record<string, string>>;

/**
 * Every Secret the objects reference by name (volumes and secretKeyRef), filled by what the name
 * says: the storage's keys, a password (`password`), or a kubernetes.io/tls pair with its CA for
 * the pods of `tlsHosts`. A reference of another shape fails, naming it.
 */
export function secretsFor(objects: readonly KubeObject[], directory: string, tlsHosts: readonly string[]): Secrets {
  const references = new Map<string, Set<string>>();
  const note = (name: string, key: string | undefined) => {
    const keys = references.get(name) ?? new Set<string>();
    if (key) keys.add(key);
    references.set(name, keys);
  };
  visit(objects, (node) => {
    if (node.secretKeyRef) note(node.secretKeyRef.name, node.secretKeyRef.key);
    if (node.secret?.secretName) {
      note(node.secret.secretName, undefined);
      for (const item of node.secret.items ?? []) note(node.secret.secretName, item.key);
    }
  });
  const secrets: Secrets = {};
  let tls: Record<string, string> | undefined;
  for (const [name, keys] of [...references].sort(([a], [b]) => a.localeCompare(b))) {
    const data: Record<string, string> = {};
    for (const key of keys) {
      if (key in S3_CREDENTIALS) data[key] = S3_CREDENTIALS[key as keyof typeof S3_CREDENTIALS];
      else if (key === 'password') data[key] = randomBytes(18).toString('base64url');
      else throw new Error(`rehearse: Secret ${name} key ${key}: the fixture does not know what to put there (rehearse/fixture.ts)`);
    }
    if (keys.size === 0) {
      if (!name.endsWith('-tls')) throw new Error(`rehearse: Secret ${name} is mounted whole and is not a TLS Secret: the fixture does not know its keys (rehearse/fixture.ts)`);
      tls ??= certificates(path.join(directory, 'tls'), tlsHosts);
      Object.assign(data, tls);
    }
    secrets[name] = data;
  }
  return secrets;
}

function visit(value: unknown, visitor: (node: any) => void): void {
  if (Array.isArray(value)) return value.forEach((v) => visit(v, visitor));
  if (value && typeof value === 'object') {
    visitor(value);
    Object.values(value).forEach((v) => visit(v, visitor));
  }
}

/** A CA and a server certificate for `hosts` (what cert-manager would issue), in `dir`. */
function certificates(dir: string, hosts: readonly string[]): Record<string, string> {
  fs.mkdirSync(dir, { recursive: true });
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=rehearsal CA', '-keyout', file('ca.key'), '-out', file('ca.crt'));
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${hosts[0]}`, '-keyout', file('tls.key'), '-out', file('tls.csr'));
  fs.writeFileSync(file('san.ext'), `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}\n`);
  openssl('x509', '-req', '-in', file('tls.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file('tls.crt'));
  return { 'tls.crt': fs.readFileSync(file('tls.crt'), 'utf8'), 'tls.key': fs.readFileSync(file('tls.key'), 'utf8'), 'ca.crt': fs.readFileSync(file('ca.crt'), 'utf8') };
}
