import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareDirectories } from '../../scripts/synth-check';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Runs `npm run synth`'s command into `outdir`, as a separate process like a user would. */
function synth(outdir: string, script = 'main.ts') {
  return spawnSync(tsx, [script], { cwd: root, env: { ...process.env, CDK8S_OUTDIR: outdir }, encoding: 'utf8' });
}

function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const file of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const full = path.join(dir, file);
    if (fs.statSync(full).isFile()) out[file] = fs.readFileSync(full, 'utf8');
  }
  return out;
}

describe('npm run synth', () => {
  it('is deterministic: two synths are byte-identical', () => {
    const a = path.join(scratch, 'a');
    const b = path.join(scratch, 'b');
    expect(synth(a).status).toBe(0);
    expect(synth(b).status).toBe(0);
    const first = readTree(a);
    expect(Object.keys(first)).toStrictEqual(['demo.k8s.yaml']);
    expect(readTree(b)).toStrictEqual(first);
  });

  it('produces the committed dist/', () => {
    const out = path.join(scratch, 'fresh');
    expect(synth(out).status).toBe(0);
    expect(compareDirectories(out, path.join(root, 'dist'))).toStrictEqual([]);
  });

  it('replaces the output directory whole, dropping files the code no longer produces', () => {
    const out = path.join(scratch, 'replaced');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'removed-chart.k8s.yaml'), 'kind: Stale\n');
    expect(synth(out).status).toBe(0);
    expect(fs.readdirSync(out)).toStrictEqual(['demo.k8s.yaml']);
  });

  it('fails on invalid input, reporting every error, and writes nothing', () => {
    const out = path.join(scratch, 'untouched');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'demo.k8s.yaml'), 'previous content\n');
    const result = synth(out, 'test/fixtures/invalid-app.ts');
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('synth: 3 validation errors; nothing was written to');
    expect(result.stderr).toContain('[broken/first] replicas: 0 is not a whole number of at least 1');
    expect(result.stderr).toContain('[broken/first] archiver.storage.storageSecretName: looks like a credential, not the name of a Secret (value not shown)');
    expect(result.stderr).toContain('[broken/second] archiver.storage.s3/gcs: neither is set');
    expect(result.stderr).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(readTree(out)).toStrictEqual({ 'demo.k8s.yaml': 'previous content\n' });
    expect(fs.readdirSync(scratch).filter((f) => f.includes('staging'))).toStrictEqual([]);
  });
});

describe('npm run synth type-checks the app before it synthesizes', () => {
  // A copy of the app's files (what tsconfig.app.json includes, and the package files), sharing
  // node_modules, in which a chart can be broken without touching the repository.
  const project = path.join(scratch, 'project');
  const out = path.join(scratch, 'project-out');
  const chart = path.join(project, 'charts/demo-chart.ts');
  const npmRunSynth = () => spawnSync('npm', ['run', '--silent', 'synth'], { cwd: project, env: { ...process.env, CDK8S_OUTDIR: out }, encoding: 'utf8' });
  const cdk8sYamlApp = () => {
    // What the cdk8s CLI does with cdk8s.yaml's `app`: run it with a shell and CDK8S_OUTDIR.
    const app = /^app: (.*)$/m.exec(fs.readFileSync(path.join(project, 'cdk8s.yaml'), 'utf8'))![1];
    return spawnSync('sh', ['-c', app], { cwd: project, env: { ...process.env, CDK8S_OUTDIR: out }, encoding: 'utf8' });
  };

  beforeAll(() => {
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.app.json', 'cdk8s.yaml', 'main.ts', 'app.ts', 'charts', 'constructs', 'contract', 'imports', 'scripts/synthesize.ts', 'scripts/synth-check.ts']) {
      fs.cpSync(path.join(root, entry), path.join(project, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(project, 'node_modules'));
  });

  it('synthesizes an app that type-checks, keeping the type-checker\'s build info where git ignores it', () => {
    const cold = npmRunSynth();
    expect(cold.status, `${cold.stdout}${cold.stderr}`).toBe(0);
    expect(compareDirectories(out, path.join(root, 'dist'))).toStrictEqual([]);
    // The build info lives where git ignores it.
    expect(fs.existsSync(path.join(project, '.tmp/tsc/app.tsbuildinfo'))).toBe(true);
    expect(spawnSync('git', ['check-ignore', '-q', '.tmp/tsc/app.tsbuildinfo'], { cwd: root }).status).toBe(0);
    expect(npmRunSynth().status).toBe(0);
  });

  it('fails on a misspelt prop that tsx alone renders silently (even with the build info of the good app at hand), naming it, and leaves the output untouched', () => {
    const before = readTree(out);
    expect(Object.keys(before)).toStrictEqual(['demo.k8s.yaml']);
    const source = fs.readFileSync(chart, 'utf8');
    expect(source).toContain('replicas: 2,');
    fs.writeFileSync(chart, source.replace('replicas: 2,', 'replica: 3,'));
    try {
      // The hazard: run without the type check, the typo is dropped and one member is rendered.
      const unchecked = spawnSync(tsx, ['main.ts'], { cwd: project, env: { ...process.env, CDK8S_OUTDIR: path.join(scratch, 'unchecked') }, encoding: 'utf8' });
      expect(unchecked.status).toBe(0);
      expect(fs.readFileSync(path.join(scratch, 'unchecked/demo.k8s.yaml'), 'utf8')).toContain('  replicas: 1\n');

      for (const result of [npmRunSynth(), cdk8sYamlApp()]) {
        expect(result.status).not.toBe(0);
        expect(result.stdout).toContain("charts/demo-chart.ts(16,7): error TS2561: Object literal may only specify known properties, but 'replica' does not exist in type 'ArchivedPostgresProps'. Did you mean to write 'replicas'?");
        expect(readTree(out)).toStrictEqual(before);
        expect(fs.readdirSync(scratch).filter((f) => f.includes('staging'))).toStrictEqual([]);
      }
    } finally {
      fs.writeFileSync(chart, source);
    }
    // Fixed, it synthesizes again (through cdk8s.yaml's command too).
    expect(cdk8sYamlApp().status).toBe(0);
    expect(compareDirectories(out, path.join(root, 'dist'))).toStrictEqual([]);
  });
});

describe('npm run synth:check', () => {
  const check = (dir: string) => spawnSync(tsx, ['scripts/synth-check.ts', dir], { cwd: root, encoding: 'utf8' });

  it('passes on an up-to-date dist/', () => {
    const result = check(path.join(root, 'dist'));
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('fails on a stale dist/, naming the changed, missing and stale files', () => {
    const stale = path.join(scratch, 'stale');
    execFileSync('cp', ['-r', path.join(root, 'dist'), stale]);
    fs.appendFileSync(path.join(stale, 'demo.k8s.yaml'), '# edited by hand\n');
    fs.writeFileSync(path.join(stale, 'old-chart.k8s.yaml'), 'kind: Old\n');
    const result = check(stale);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${stale}/demo.k8s.yaml: differs`);
    expect(result.stderr).toContain(`${stale}/old-chart.k8s.yaml: stale (the code no longer produces it)`);
    fs.rmSync(path.join(stale, 'demo.k8s.yaml'));
    expect(check(stale).stderr).toContain(`${stale}/demo.k8s.yaml: missing (the code produces it)`);
  });
});
