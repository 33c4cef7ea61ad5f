/**
 * Validates custom resources against the openAPIV3Schema of their CustomResourceDefinitions
 * (../shared/crds: Argo CD, Flux, Prometheus operator) with ajv, strictly as the API server prunes
 * them: a field a schema does not list is an error, except under `x-kubernetes-preserve-unknown-fields`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';

export const CRD_DIR = path.resolve(__dirname, '../../shared/crds');

type Schema = Record<string, any>;

/** Adds `additionalProperties: false` where a schema lists its properties and keeps no unknown fields. */
function strict(schema: Schema): Schema {
  if (Array.isArray(schema)) return schema.map(strict) as unknown as Schema;
  if (schema === null || typeof schema !== 'object') return schema;
  const copy: Schema = {};
  for (const [key, value] of Object.entries(schema)) copy[key] = key === 'enum' || key === 'required' ? value : strict(value);
  if (copy.type === 'object' && copy.properties && copy.additionalProperties === undefined && copy['x-kubernetes-preserve-unknown-fields'] !== true) {
    copy.additionalProperties = false;
  }
  return copy;
}

export class CrdSchema {
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(dir: string = CRD_DIR) {
    // CRD patterns are Go regular expressions: their (?i) is JavaScript's "i" flag.
    const regExp = Object.assign((pattern: string, flags: string) => (pattern.includes('(?i)') ? new RegExp(pattern.replaceAll('(?i)', ''), `${flags}i`) : new RegExp(pattern, flags)), { code: 'new RegExp' });
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true, code: { regExp } });
    ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
    ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    for (const format of ['byte', 'date-time', 'double', 'duration', 'uri', 'float']) ajv.addFormat(format, true);
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
      for (const document of parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'))) {
        const crd = document.toJS();
        if (crd?.kind !== 'CustomResourceDefinition') continue;
        for (const version of crd.spec.versions) {
          const schema = version.schema?.openAPIV3Schema;
          if (!schema) continue;
          // metadata is the API server's, validated by it; the CRD says only `type: object`.
          this.validators.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, ajv.compile(strict(schema)));
        }
      }
    }
  }

  /** Whether a CRD of the directory defines the object's apiVersion and kind. */
  knows(object: { apiVersion?: string; kind?: string }): boolean {
    return this.validators.has(`${object.apiVersion}/${object.kind}`);
  }

  /** Every schema violation of one object, as `kind/name: /path message`; empty when valid. */
  validate(object: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): string[] {
    const label = `${object.kind}/${object.metadata?.name}`;
    const validate = this.validators.get(`${object.apiVersion}/${object.kind}`);
    if (!validate) return [`${label}: no CRD for apiVersion ${object.apiVersion} kind ${object.kind}`];
    if (validate(object)) return [];
    return (validate.errors ?? []).map((e) => `${label}: ${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
  }
}
