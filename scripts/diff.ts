/**
 * The reviewer's summary of a pull request: synthesizes the working tree and a base ref, and
 * prints what changes in dist/ (databases added, removed, changed and which fields) and, in a
 * section of its own, what is dangerous or will fail (scripts/dist-diff.ts decides; this file only
 * does the git and synthesis work around it).
 *
 *   npm run diff                          # against the merge base with main (or origin/main)
 *   npm run diff -- --base origin/main    # against a ref
 *   npm run diff -- --json                # the comparison as JSON, for machines
 *
 * Both sides are synthesized from their code by their own main.ts (the base in a temporary
 * `git worktree` of the ref, with this checkout's node_modules), into temporary directories that
 * are removed afterwards, also on failure. The committed dist/ is not read: the diff is what the
 * code renders.
 *
 * Exit status: 0 no dangerous change; 1 dangerous changes found (listed under DANGEROUS);
 * 2 the diff could not be made (bad arguments, an unknown ref, a side that does not synthesize);
 * 130 interrupted (SIGINT, SIGTERM), after removing the worktree and the temporary directory.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diffDist, formatDiff } from './dist-diff';
import { readOutput } from './synthesize';

export const EXIT_NO_DANGER = 0;
export const EXIT_DANGER = 1;
export const EXIT_ERROR = 2;

export class DiffError extends Error {
  public readonly name = 'DiffError';
}

export interface DiffOptions {
  /** The ref to compare with. @default - the merge base of HEAD with main (or origin/main) */
  readonly base?: string;
  /** Print JSON instead of words. @default false */
  readonly json?: boolean;
}

function git(cwd: string, args: string[]): string {
  const result = spawnSync('git', args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new DiffError(`git ${args.join(' ')}: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout.trim();
}

/**
 * Runs a checkout's main.ts into `outdir`, in node itself with tsx's loader: tsx's own command
 * would return on Ctrl-C while its node child, which ignores the signal, goes on writing.
 */
function synthesize(checkout: string, outdir: string, label: string): void {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'main.ts'], { cwd: checkout, env: { ...process.env, CDK8S_OUTDIR: outdir }, encoding: 'utf8' });
  if (result.signal) throw new DiffError(`the ${label}'s synthesis was stopped by ${result.signal}`);
  if (result.status !== 0) throw new DiffError(`the ${label} does not synthesize:\n${result.stderr}${result.stdout}`);
}

/** The merge base of HEAD with main (or origin/main), and how the report names it. */
function defaultBase(repo: string): { ref: string; label: string } {
  for (const main of ['main', 'origin/main']) {
    const found = spawnSync('git', ['merge-base', 'HEAD', main], { cwd: repo, encoding: 'utf8' });
    if (found.status === 0) return { ref: found.stdout.trim(), label: `merge base with ${main}, ${found.stdout.trim().slice(0, 7)}` };
  }
  throw new DiffError('no merge base with main or origin/main: give one with --base <ref>');
}

/** Synthesizes both sides and returns the report and the exit code. */
export function runDiff(options: DiffOptions, cwd = process.cwd()): { output: string; code: number } {
  const repo = git(cwd, ['rev-parse', '--show-toplevel']);
  const { ref, label } = options.base !== undefined ? { ref: options.base, label: options.base } : defaultBase(repo);
  const commit = git(repo, ['rev-parse', '--verify', `${ref}^{commit}`]);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-diff-'));
  const worktree = path.join(scratch, 'base');
  let added = false;
  try {
    git(repo, ['worktree', 'add', '--detach', '--quiet', worktree, commit]);
    added = true;
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(worktree, 'node_modules'));
    synthesize(worktree, path.join(scratch, 'base-dist'), `base (${label})`);
    synthesize(repo, path.join(scratch, 'head-dist'), 'working tree');
    const diff = diffDist(readOutput(path.join(scratch, 'base-dist')), readOutput(path.join(scratch, 'head-dist')));
    const output = options.json ? `${JSON.stringify({ base: ref, baseCommit: commit, ...diff }, null, 2)}\n` : formatDiff(diff, `dist/ (working tree vs ${label})`);
    return { output, code: diff.dangers.length > 0 ? EXIT_DANGER : EXIT_NO_DANGER };
  } finally {
    if (added) spawnSync('git', ['worktree', 'remove', '--force', worktree], { cwd: repo });
    fs.rmSync(scratch, { recursive: true, force: true });
    if (added) spawnSync('git', ['worktree', 'prune'], { cwd: repo });
  }
}

export function parseArguments(argv: readonly string[]): DiffOptions {
  let base: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') json = true;
    else if (arg === '--base' && argv[i + 1] !== undefined) base = argv[++i];
    else if (arg.startsWith('--base=')) base = arg.slice('--base='.length);
    else throw new DiffError(`unknown argument ${JSON.stringify(arg)}: usage: npm run diff -- [--base <ref>] [--json]`);
  }
  return { base, json };
}

function main(): number {
  // Ctrl-C stops the synthesis running (its process group gets the signal too); with a handler,
  // this process lives on to remove the worktree and the temporary directory, then exits 130.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  try {
    const { output, code } = runDiff(parseArguments(process.argv.slice(2)));
    process.stdout.write(output);
    return code;
  } catch (error) {
    // Any failure is 2, never 1: 1 means "dangerous changes", and a crash must not read as a verdict.
    process.stderr.write(`diff: ${error instanceof DiffError ? error.message : (error as Error).stack ?? String(error)}\n`);
    return EXIT_ERROR;
  }
}

if (require.main === module) process.exitCode = main();
