/**
 * Pure checks of user input. Each returns `undefined` when the value is fine, or a sentence that
 * says what is wrong and what is expected. The constructs prefix the field name and collect every
 * problem through `node.addValidation`, so one synth reports them all.
 */
import { ARCHIVER_SPOOL_BUDGET_MIB, MIN_DATA_VOLUME_MIB } from './wal-size';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A StatefulSet's pods carry the label `controller-revision-hash: <name>-<10 characters>`, and a
 * label value is at most 63 characters: a StatefulSet name longer than 52 characters creates
 * a StatefulSet whose pods can never be created.
 */
export const MAX_STATEFUL_SET_NAME = 52;

/** Renders a value for a message, quoted and shortened; never used for suspected credentials. */
export function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The database name: names the StatefulSet, its Services (DNS-1035 labels) and the archive path. */
export function checkDatabaseName(name: string): string | undefined {
  if (!DNS1035_LABEL.test(name)) {
    return `${show(name)} is not a valid name: use lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (a DNS-1035 label, as Service names require), e.g. "wal-postgres"`;
  }
  if (name.length > MAX_STATEFUL_SET_NAME) {
    return `${show(name)} is ${name.length} characters long; at most ${MAX_STATEFUL_SET_NAME} are allowed because a StatefulSet's pods are labelled "<name>-<10-character revision hash>" and labels hold 63 characters`;
  }
  return undefined;
}

export function checkNamespace(namespace: string): string | undefined {
  if (!DNS1123_LABEL.test(namespace) || namespace.length > 63) {
    return `${show(namespace)} is not a valid namespace: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (a DNS-1123 label), e.g. "demo"`;
  }
  return undefined;
}

/**
 * Whether a long run of characters without a separator is a token rather than words run together
 * (`postgresqlarchivecredentialsprod1` is words): anything but lowercase letters and digits (no
 * Secret name has them), hexadecimal only (a key), letters and digits alternating 6 times or more
 * (random base-36: about 13 times in 32 characters), or fewer than a quarter of its letters vowels
 * (random letters: 5 in 26; words: a third or more).
 */
function isTokenLike(run: string): boolean {
  if (/[^a-z0-9]/.test(run) || /^[0-9a-f]+$/.test(run)) return true;
  const alternations = run.match(/[a-z](?=[0-9])|[0-9](?=[a-z])/g)?.length ?? 0;
  if (alternations >= 6) return true;
  const letters = run.replace(/[0-9]/g, '');
  const vowels = letters.replace(/[^aeiou]/g, '').length;
  return letters.length === 0 || vowels / letters.length < 0.25;
}

/**
 * Values that look like a credential pasted where the *name* of a Secret belongs. The message
 * never repeats the value: it may be a real key.
 */
export function looksLikeCredential(value: string): boolean {
  if (/^(AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}$/i.test(value)) return true; // AWS access key id
  if (/-----BEGIN|"private_key"|"type"\s*:\s*"service_account"|^\s*\{/.test(value)) return true; // PEM / GCP JSON key
  if (/[+/=]/.test(value) && value.length >= 20) return true; // base64 material, e.g. an AWS secret key
  // A long run with no separator that does not read as words is a token, not a human-chosen name.
  if (value.split(/[-.]/).some((part) => part.length >= 32 && isTokenLike(part))) return true;
  if (/^[A-Za-z0-9]{16,}$/.test(value) && /[A-Z]/.test(value) && /[a-z]/.test(value) && /[0-9]/.test(value)) return true;
  return false;
}

/** The name of a Secret (a DNS-1123 subdomain) that holds credentials. */
export function checkSecretName(name: string): string | undefined {
  if (name.trim().length === 0) {
    return 'is empty: give the name of an existing Secret in the same namespace, e.g. "s3-secret"';
  }
  if (looksLikeCredential(name)) {
    return `looks like a credential, not the name of a Secret (value not shown). Put the credential into a Secret (e.g. "kubectl create secret generic s3-secret --from-literal=...", or a SealedSecret/ExternalSecret) and give its name here; no secret value may ever be synthesized into dist/`;
  }
  if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
    return `${show(name)} is not a valid Secret name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, e.g. "s3-secret"`;
  }
  return undefined;
}

/** S3 bucket naming rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html). */
export function checkS3BucketName(bucket: string): string | undefined {
  const expected = 'S3 bucket names are 3-63 characters of lowercase letters, digits, \'.\' and \'-\', start and end with a letter or digit, e.g. "kubedb"';
  if (bucket.length === 0) return `is empty: ${expected}`;
  if (bucket.length < 3 || bucket.length > 63) return `${show(bucket)} has ${bucket.length} characters: ${expected}`;
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket)) return `${show(bucket)} is not a valid bucket name: ${expected}`;
  if (bucket.includes('..')) return `${show(bucket)} has two adjacent periods: ${expected}`;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) return `${show(bucket)} is formatted as an IP address, which S3 forbids: ${expected}`;
  for (const prefix of ['xn--', 'sthree-', 'amzn-s3-demo-']) {
    if (bucket.startsWith(prefix)) return `${show(bucket)} starts with the reserved prefix "${prefix}": ${expected}`;
  }
  for (const suffix of ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3']) {
    if (bucket.endsWith(suffix)) return `${show(bucket)} ends with the reserved suffix "${suffix}": ${expected}`;
  }
  return undefined;
}

/** GCS bucket naming rules (https://cloud.google.com/storage/docs/buckets#naming). */
export function checkGcsBucketName(bucket: string): string | undefined {
  const expected = 'GCS bucket names are 3-63 characters of lowercase letters, digits, \'-\', \'_\' and \'.\', start and end with a letter or digit, e.g. "kubedb"';
  if (bucket.length === 0) return `is empty: ${expected}`;
  const dotted = bucket.includes('.');
  const max = dotted ? 222 : 63;
  if (bucket.length < 3 || bucket.length > max) return `${show(bucket)} has ${bucket.length} characters: ${expected}`;
  if (!/^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(bucket)) return `${show(bucket)} is not a valid bucket name: ${expected}`;
  if (dotted && bucket.split('.').some((part) => part.length === 0 || part.length > 63)) {
    return `${show(bucket)} has an empty or over-long dot-separated part: ${expected}`;
  }
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(bucket)) return `${show(bucket)} is formatted as an IP address: ${expected}`;
  if (bucket.startsWith('goog') || /g(o|0)(o|0)gle/.test(bucket)) return `${show(bucket)} contains "goog"/"google", which GCS reserves: ${expected}`;
  return undefined;
}

/**
 * The prefix inside the bucket and the S3 endpoint: checked by the same functions as the archiver
 * checks its environment with (contract/locations.ts).
 */
export { checkArchivePrefix as checkPrefix, checkS3Endpoint as checkEndpoint } from '../contract';

const QUANTITY = /^(\+)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL_SUFFIX: Record<string, number> = { n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/** Parses a Kubernetes quantity to bytes (or cores), or undefined when it is not one. */
export function parseQuantity(value: string): number | undefined {
  if (!QUANTITY.test(value)) return undefined;
  const match = /^\+?([0-9.]+)(.*)$/.exec(value)!;
  const number = Number(match[1]);
  const suffix = match[2];
  if (suffix in BINARY_SUFFIX) return number * BINARY_SUFFIX[suffix];
  if (suffix in DECIMAL_SUFFIX) return number * DECIMAL_SUFFIX[suffix];
  return number * 10 ** Number(suffix.slice(1));
}

/** A member's data volume size: a Kubernetes quantity of at least MIN_DATA_VOLUME_MIB (see wal-size.ts). */
export function checkVolumeSize(size: string): string | undefined {
  const bytes = parseQuantity(size);
  if (bytes === undefined) return `${show(size)} is not a Kubernetes quantity: write e.g. "1Gi", "500Mi" or "10G"`;
  if (bytes < MIN_DATA_VOLUME_MIB * 2 ** 20) {
    return `${show(size)} is smaller than ${MIN_DATA_VOLUME_MIB}Mi, too small to run: each member's volume holds the data directory (about 40 MB after initdb), its WAL (max_wal_size and wal_keep_size, sized from the volume: at least 96 MB) and the archiver's spool (up to ${ARCHIVER_SPOOL_BUDGET_MIB} MiB of prefetched WAL during a recovery); write e.g. "1Gi"`;
  }
  return undefined;
}

/** A resource request or limit (CPU or memory). */
export function checkResourceQuantity(value: string): string | undefined {
  if (parseQuantity(value) === undefined || parseQuantity(value) === 0) {
    return `${show(value)} is not a positive Kubernetes quantity: write e.g. "500m" (CPU) or "1Gi" (memory)`;
  }
  return undefined;
}

/** Options of `checkImageReference`. */
export interface ImageReferenceCheckOptions {
  /**
   * Accept a reference that names no registry or names `localhost`: an image already on every node.
   * @default false
   */
  readonly allowLocalImage?: boolean;
  /** A fully qualified example for the message, e.g. `docker.io/library/postgres:15`. */
  readonly example: string;
}

/** The parts of an image reference: `[registry/]repository[:tag][@digest]`. */
export interface ImageReferenceParts {
  /** The registry host (and port), when the first path component is one. */
  readonly registry?: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * Splits an image reference as container runtimes do (the distribution reference grammar): the
 * first path component is a registry when it has a '.' or ':' or is `localhost`. Undefined when it
 * is not a reference at all.
 */
export function parseImageReference(reference: string): ImageReferenceParts | undefined {
  const at = reference.indexOf('@');
  const digest = at >= 0 ? reference.slice(at + 1) : undefined;
  const named = at >= 0 ? reference.slice(0, at) : reference;
  const lastSlash = named.lastIndexOf('/');
  const colon = named.lastIndexOf(':');
  const tag = colon > lastSlash ? named.slice(colon + 1) : undefined;
  const name = colon > lastSlash ? named.slice(0, colon) : named;
  const components = name.split('/');
  const first = components[0];
  const registry = components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : undefined;
  const repository = (registry ? components.slice(1) : components).join('/');
  if (registry !== undefined && !/^[a-zA-Z0-9.-]+(:[0-9]+)?$/.test(registry)) return undefined;
  if (repository.length === 0 || !repository.split('/').every((c) => PATH_COMPONENT.test(c))) return undefined;
  if (tag !== undefined && !TAG.test(tag)) return undefined;
  if (digest !== undefined && !/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) return undefined;
  return { registry, repository, tag, digest };
}

/** Whether a registry host is this node itself: the image is never pulled from anywhere else. */
function isLocalRegistry(registry: string): boolean {
  return /^(localhost|127\.0\.0\.1)(:[0-9]+)?$/.test(registry);
}

/**
 * An image reference the kubelet can pull: fully qualified (`registry/repository:tag`, optionally
 * `@sha256:` digest). A reference without a registry is resolved by each node's runtime (Docker Hub
 * for containerd, the node's search registries for CRI-O, where a short name is also open to name
 * squatting), and a `localhost` one exists only where it was loaded: both only with
 * `allowLocalImage`.
 */
export function checkImageReference(reference: string, options: ImageReferenceCheckOptions): string | undefined {
  const example = `e.g. ${show(options.example)}`;
  const parts = typeof reference === 'string' ? parseImageReference(reference) : undefined;
  if (parts === undefined) {
    return `${show(reference)} is not an image reference: write registry/repository:tag, optionally with @sha256:<digest>, ${example}`;
  }
  if (parts.digest !== undefined && !SHA256_DIGEST.test(parts.digest)) {
    return `${show(reference)} has the digest ${show(parts.digest)}: a digest is "sha256:" and 64 lowercase hexadecimal digits, as \`buildah push --digestfile\` or \`docker buildx imagetools inspect\` print it`;
  }
  if (parts.tag === undefined && parts.digest === undefined) {
    return `${show(reference)} has no tag: the runtime would pull ":latest", whatever it is on the day a pod starts; give a tag (and, to pin it, a digest), ${example}`;
  }
  if (options.allowLocalImage) return undefined;
  if (parts.registry === undefined) {
    return `${show(reference)} names no registry: each node's runtime would choose one (containerd pulls docker.io/${parts.repository.includes('/') ? '' : 'library/'}${parts.repository}; CRI-O asks its search registries, where a short name can be squatted); name the registry, ${example}, or set allowLocalImage: true for an image loaded onto every node`;
  }
  if (isLocalRegistry(parts.registry)) {
    return `${show(reference)} names the node itself (${parts.registry}): no node pulls it from anywhere, so pods start only where it was loaded by hand; push it to a registry the nodes reach, ${example}, or set allowLocalImage: true if every node has it`;
  }
  return undefined;
}
