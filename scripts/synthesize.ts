/**
 * Synthesis that never leaves a half-written output directory: the app is validated as a whole
 * (every error of every construct is reported together), synthesized into a staging directory
 * next to the output, and only then swapped into place. Imported by the entry (main.ts), the check
 * (synth-check.ts) and the benchmark app; it imports no app, so the dependencies go one way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'cdk8s';

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
export function synthesizeAtomically(build: (outdir: string) => App, outdir: string, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): number {
  const target = path.resolve(outdir);
  const staging = `${target}.staging-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    const app = build(staging);
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
