/**
 * The pull-request check: synthesizes the app into a temporary directory and fails, naming the
 * files, when the committed dist/ differs from what the code produces.
 *
 *   npm run synth:check            # compares against dist/
 *   npm run synth:check -- DIR     # compares against DIR
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildApp } from '../app';
import { synthesizeAtomically } from './synthesize';

function listFiles(dir: string, base = dir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? listFiles(full, base) : [path.relative(base, full)];
  });
}

/** Files that differ between the two directories: changed, missing from `committed`, or stale in it. */
export function compareDirectories(expected: string, committed: string): string[] {
  const problems: string[] = [];
  const expectedFiles = new Set(listFiles(expected));
  const committedFiles = new Set(listFiles(committed));
  for (const file of [...expectedFiles].sort()) {
    if (!committedFiles.has(file)) problems.push(`${file}: missing (the code produces it)`);
    else if (!fs.readFileSync(path.join(expected, file)).equals(fs.readFileSync(path.join(committed, file)))) problems.push(`${file}: differs`);
  }
  for (const file of [...committedFiles].sort()) {
    if (!expectedFiles.has(file)) problems.push(`${file}: stale (the code no longer produces it)`);
  }
  return problems;
}

function main(): number {
  const committed = process.argv[2] ?? 'dist';
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-check-'));
  try {
    const out = path.join(scratch, 'dist');
    // A claim smaller than the committed one is an error here too.
    if (synthesizeAtomically(buildApp, out, { previousOutput: committed }) !== 0) return 1;
    const problems = compareDirectories(out, committed);
    if (problems.length > 0) {
      process.stderr.write(`synth:check: ${committed}/ is not what the code synthesizes; run "npm run synth" and commit ${committed}/:\n`);
      for (const problem of problems) process.stderr.write(`  ${committed}/${problem}\n`);
      return 1;
    }
    process.stdout.write(`synth:check: ${committed}/ is up to date\n`);
    return 0;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

if (require.main === module) process.exitCode = main();
