/**
 * Synthesis that never leaves a half-written output directory: the app is validated as a whole
 * (every error of every construct is reported together), synthesized into a staging directory
 * next to the output, and only then swapped into place. Imported by the entry (main.ts), the check
 * (synth-check.ts) and the benchmark app; it imports no app, so the dependencies go one way.
 *
 * The app is built with what the previous synthesis wrote (the output directory it replaces, or
 * the one given): the YAML documents of each file, so that constructs can compare what they render
 * with what Git holds (a volume claim cannot shrink). This is the only place that reads it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'cdk8s';
import { parseAllDocuments } from 'yaml';
import { PREVIOUS_OUTPUT_KINDS } from '../constructs/previous-output';

export interface ReadOutputOptions {
  /**
   * Only the documents of these kinds (a document's top-level `kind:` line), and each file parsed
   * only when it is first looked at: the others are never parsed. Parsing is what reading costs
   * (the `yaml` parser: ~1 s for the StatefulSets of 100 databases), and a synthesis looks only at
   * the files of the databases whose checks compare (database-chart.ts). A file that does not
   * parse then reads as no documents.
   * @default - every document of every file, parsed at once
   */
  readonly kinds?: readonly string[];
}

/** The YAML documents of each `.yaml` file under `dir`, by path relative to it; empty when `dir` does not exist. */
export function readOutput(dir: string, options: ReadOutputOptions = {}): Record<string, unknown[]> {
  const files: Record<string, unknown[]> = {};
  if (!fs.existsSync(dir)) return files;
  for (const file of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const full = path.join(dir, file);
    if (!file.endsWith('.yaml') || !fs.statSync(full).isFile()) continue;
    const key = file.split(path.sep).join('/');
    const kinds = options.kinds;
    if (kinds === undefined) {
      // A file that does not parse is left out: the synthesis replaces it.
      const documents = parseDocuments(fs.readFileSync(full, 'utf8'));
      if (documents) files[key] = documents;
      continue;
    }
    const text = fs.readFileSync(full, 'utf8');
    let parsed: unknown[] | undefined;
    Object.defineProperty(files, key, { enumerable: true, get: () => (parsed ??= parseDocuments(documentsOfKinds(text, kinds)) ?? []) });
  }
  return files;
}

/** Every document of a YAML stream as plain data; undefined when one does not parse. */
function parseDocuments(text: string): unknown[] | undefined {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents) || documents.some((d) => d.errors.length > 0)) return undefined;
  return documents.map((d) => d.toJS());
}

/**
 * The documents of `text` whose top-level `kind:` is one of `kinds`, as one YAML stream. A line
 * `---` at the start of a line always separates documents (inside a block scalar it would be
 * indented), and a document's own `kind:` is the one at the start of a line.
 */
function documentsOfKinds(text: string, kinds: readonly string[]): string {
  const kind = new RegExp(`^kind: *["']?(${kinds.map((k) => k.replace(/[^A-Za-z0-9]/g, '')).join('|')})["']? *$`, 'm');
  return text
    .split(/^---[ \t]*$/m)
    .filter((document) => kind.test(document))
    .map((document) => `---\n${document.replace(/^\n/, '')}`)
    .join('');
}

export interface SynthesizeOptions {
  /**
   * The previous synthesis's output, which the app is built with.
   * @default - the output directory itself (what the synthesis replaces)
   */
  readonly previousOutput?: string;
  /** Where to report validation errors. @default - stderr */
  readonly log?: (line: string) => void;
}

/** Every validation error of the app, as `[construct path] message`. */
export function collectValidationErrors(app: App): string[] {
  const errors: string[] = [];
  for (const construct of app.node.findAll()) {
    for (const message of construct.node.validate()) {
      errors.push(`[${construct.node.path}] ${message}`);
    }
  }
  return errors;
}

/**
 * Builds the app into a staging directory and replaces `outdir` with it. Returns the process exit
 * code: 0 on success; 1 when validation fails, in which case `outdir` is left untouched.
 */
export function synthesizeAtomically(build: (outdir: string, previousOutput: Record<string, unknown[]>) => App, outdir: string, options: SynthesizeOptions = {}): number {
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const target = path.resolve(outdir);
  const staging = `${target}.staging-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    const app = build(staging, readOutput(options.previousOutput ?? target, { kinds: PREVIOUS_OUTPUT_KINDS }));
    const errors = collectValidationErrors(app);
    if (errors.length > 0) {
      log(`synth: ${errors.length} validation error${errors.length === 1 ? '' : 's'}; nothing was written to ${outdir}/`);
      for (const error of errors) log(`  ${error}`);
      return 1;
    }
    app.synth();
    const old = `${target}.old-${process.pid}`;
    if (fs.existsSync(target)) fs.renameSync(target, old);
    fs.renameSync(staging, target);
    fs.rmSync(old, { recursive: true, force: true });
    return 0;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
