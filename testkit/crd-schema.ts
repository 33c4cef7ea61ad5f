/**
 * Validates custom resources against the openAPIV3Schema of their CustomResourceDefinitions
 * (../shared/crds: the Prometheus operator's, Argo CD's, Flux's) with ajv, strictly as
 * kubernetes-schema.ts does for the built-in kinds: a field the schema does not list is an error
 * (the API server would prune it silently), unless the schema preserves unknown fields.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';

export const CRD_DIRECTORY = path.resolve(__dirname, '../../shared/crds');

type Schema = Record<string, unknown>;

/** Makes a structural schema strict: `additionalProperties: false` where properties are listed; int-or-string typed. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const copy: Schema = {};
  for (const [key, value] of Object.entries(schema as Schema)) copy[key] = key === 'properties' ? Object.fromEntries(Object.entries(value as Schema).map(([k, v]) => [k, strict(v)])) : strict(value);
  if (copy.properties && copy.additionalProperties === undefined && copy['x-kubernetes-preserve-unknown-fields'] !== true) copy.additionalProperties = false;
  if (copy['x-kubernetes-int-or-string'] === true && copy.type === undefined) copy.anyOf = [{ type: 'integer' }, { type: 'string' }];
  return copy;
}

/** A Go (RE2) pattern as a JavaScript RegExp: an inline (?i) becomes the `i` flag. */
const goRegExp = Object.assign((pattern: string, flags: string) => (pattern.includes('(?i)') ? new RegExp(pattern.replaceAll('(?i)', ''), `${flags}i`) : new RegExp(pattern, flags)), {
  code: 'goRegExp',
});

export class CustomResourceSchema {
  private readonly ajv = new Ajv({
    strict: false,
    allErrors: true,
    validateFormats: true,
    // The schemas' patterns are Go (RE2) expressions: their (?i) is JavaScript's `i` flag.
    code: { regExp: goRegExp },
  });
  private readonly schemas = new Map<string, Schema>();
  private readonly compiled = new Map<string, ValidateFunction>();

  /** `files`: CRD files of CRD_DIRECTORY (names), or paths. */
  constructor(files: readonly string[] = fs.readdirSync(CRD_DIRECTORY).filter((f) => f.endsWith('.yaml'))) {
    this.ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
    this.ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    for (const format of ['byte', 'date-time', 'double', 'duration']) this.ajv.addFormat(format, true);
    for (const file of files) {
      for (const document of parseAllDocuments(fs.readFileSync(path.isAbsolute(file) ? file : path.join(CRD_DIRECTORY, file), 'utf8'))) {
        const crd = document.toJS() as { kind?: string; spec?: { group: string; names: { kind: string }; versions: { name: string; schema?: { openAPIV3Schema: Schema } }[] } };
        if (crd?.kind !== 'CustomResourceDefinition' || !crd.spec) continue;
        for (const version of crd.spec.versions) {
          if (version.schema) this.schemas.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, version.schema.openAPIV3Schema);
        }
      }
    }
  }

  /** Whether a CRD of these files defines the object's kind. */
  covers(object: { apiVersion?: string; kind?: string }): boolean {
    return this.schemas.has(`${object.apiVersion}/${object.kind}`);
  }

  /** Every schema violation of one object, as `kind/name: /path message`; empty when valid. */
  validate(object: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): string[] {
    const label = `${object.kind}/${object.metadata?.name}`;
    const key = `${object.apiVersion}/${object.kind}`;
    const schema = this.schemas.get(key);
    if (!schema) return [`${label}: no CRD for apiVersion ${object.apiVersion} kind ${object.kind}`];
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile(strict(schema) as Schema);
      this.compiled.set(key, validate);
    }
    if (validate(object)) return [];
    return (validate.errors ?? []).map((e) => `${label}: ${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
  }
}
