/**
 * Validates Kubernetes objects against the 1.27 OpenAPI definitions (../shared/schemas) with ajv,
 * strictly: unknown fields are errors (as `kubectl apply --validate=strict` reports them), so a
 * misspelt field in a construct fails a test instead of being dropped by the API server.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { ValidateFunction } from 'ajv';

export const SCHEMA_FILE = path.resolve(__dirname, '../../shared/schemas/k8s-1.27.0-definitions.json');

interface Definitions {
  [name: string]: Record<string, unknown>;
}

/** Adds `additionalProperties: false` to every object definition that lists its properties. */
function strict(definitions: Definitions): Definitions {
  const copy: Definitions = JSON.parse(JSON.stringify(definitions));
  for (const definition of Object.values(copy)) {
    if (definition.properties && definition.additionalProperties === undefined) {
      definition.additionalProperties = false;
    }
  }
  return copy;
}

export class KubernetesSchema {
  private readonly ajv: Ajv;
  private readonly byKind = new Map<string, string>();
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(file: string = SCHEMA_FILE) {
    const { definitions } = JSON.parse(fs.readFileSync(file, 'utf8')) as { definitions: Definitions };
    for (const [name, definition] of Object.entries(definitions)) {
      const gvks = (definition['x-kubernetes-group-version-kind'] ?? []) as { group: string; version: string; kind: string }[];
      for (const { group, version, kind } of gvks) {
        this.byKind.set(`${group ? `${group}/` : ''}${version}/${kind}`, name);
      }
    }
    this.ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
    this.ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
    this.ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
    for (const format of ['byte', 'date-time', 'double']) this.ajv.addFormat(format, true);
    this.ajv.addSchema({ $id: 'k8s', definitions: strict(definitions) });
  }

  /** Whether the 1.27 definitions have the object's apiVersion and kind (custom resources are not among them: see crd-schema.ts). */
  knows(object: { apiVersion?: string; kind?: string }): boolean {
    return this.byKind.has(`${object.apiVersion}/${object.kind}`);
  }

  /** Every schema violation of one object, as `kind/name: /path message`; empty when valid. */
  validate(object: { apiVersion?: string; kind?: string; metadata?: { name?: string } }): string[] {
    const label = `${object.kind}/${object.metadata?.name}`;
    const definition = this.byKind.get(`${object.apiVersion}/${object.kind}`);
    if (!definition) return [`${label}: no schema for apiVersion ${object.apiVersion} kind ${object.kind}`];
    let validate = this.compiled.get(definition);
    if (!validate) {
      validate = this.ajv.getSchema(`k8s#/definitions/${definition}`)!;
      this.compiled.set(definition, validate);
    }
    if (validate(object)) return [];
    return (validate.errors ?? []).map((e) => `${label}: ${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
  }
}
