import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = path.resolve(__dirname, '../..');

interface Step { readonly name?: string; readonly uses?: string; readonly run?: string; readonly with?: Record<string, unknown> }
interface Workflow { readonly on: Record<string, unknown>; readonly jobs: Record<string, { readonly steps: readonly Step[]; readonly permissions?: Record<string, string> }> }

// GitHub Actions cannot run here: the workflow is checked as a file, against .ci/run and package.json.
const workflow: Workflow = parse(fs.readFileSync(path.join(root, '.github/workflows/pull-request.yml'), 'utf8'));
const scripts: Record<string, string> = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts;
/** The commands of .ci/run, in order (not its comments, `set`, `cd` or its `step` time stamps). */
const ciCommands = fs.readFileSync(path.join(root, '.ci/run'), 'utf8').split('\n')
  .map((line) => line.trim()).filter((line) => line !== '' && !/^(#|set |cd |step\b)/.test(line));
const runs = (job: string) => workflow.jobs[job].steps.flatMap((step) => (step.run ? [step.run] : []));

describe('.github/workflows/pull-request.yml', () => {
  it('is valid YAML that runs on pull requests to main', () => {
    expect(workflow.on).toStrictEqual({ pull_request: { branches: ['main'] } });
    expect(Object.keys(workflow.jobs)).toStrictEqual(['check', 'diff']);
  });

  it('checks like .ci/run: its commands in its order, and the type-check', () => {
    expect(ciCommands).toStrictEqual(['npm ci', 'npm run synth:check', 'npm test', 'npm run rehearse']);
    expect(runs('check')).toStrictEqual(['npm ci', 'npm run typecheck', 'npm run synth:check', 'npm test', 'npm run rehearse']);
    expect(runs('check').filter((command) => ciCommands.includes(command))).toStrictEqual(ciCommands);
  });

  it('summarizes the pull request with npm run diff against the base branch, with the history it needs', () => {
    const diff = workflow.jobs.diff;
    expect(diff.steps[0]).toMatchObject({ uses: 'actions/checkout@v4', with: { 'fetch-depth': 0 } });
    expect(runs('diff').join('\n')).toContain('npm run --silent diff -- --base "origin/$BASE_REF"');
    expect(diff.steps.find((step) => step.name === 'npm run diff')).toMatchObject({ env: { BASE_REF: '${{ github.base_ref }}' } });
    expect(runs('diff').join('\n')).toContain('>> "$GITHUB_STEP_SUMMARY"');
    expect(diff.permissions).toStrictEqual({ contents: 'read', 'pull-requests': 'write' });
  });

  it('calls only scripts that package.json has', () => {
    const called = [...runs('check'), ...runs('diff')].join('\n').match(/npm run (?:--silent )?([\w:-]+)(?=\s|$)/gm) ?? [];
    expect(called.length).toBeGreaterThan(0);
    for (const call of called) expect(Object.keys(scripts)).toContain(call.split(' ').pop());
  });
});
