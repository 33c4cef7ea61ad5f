import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareDirectories } from '../../scripts/synth-check';
import { readOutput } from '../../scripts/synthesize';
import { PREVIOUS_OUTPUT_KINDS } from '../../constructs/previous-output';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'synth-test-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Runs `npm run synth`'s command into `outdir`, as a separate process like a user would. */
function synth(outdir: string, script = 'main.ts') {
  return spawnSync(tsx, [script], { cwd: root, env: { ...process.env, CDK8S_OUTDIR: outdir }, encoding: 'utf8' });
}

/** The files `npm run synth` writes for app.ts: each database of each environment, and their delivery. */
const FILES = [
  'delivery/argocd/dev/dev.k8s.yaml',
  'delivery/argocd/prod/prod.k8s.yaml',
  'delivery/flux/dev/dev.k8s.yaml',
  'delivery/flux/prod/prod.k8s.yaml',
  'dev/demo/wal-postgres-pitr/wal-postgres-pitr.k8s.yaml',
  'dev/demo/wal-postgres/wal-postgres.k8s.yaml',
  'prod/demo/wal-postgres/wal-postgres.k8s.yaml',
];
const PROD = 'prod/demo/wal-postgres/wal-postgres.k8s.yaml';

function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const file of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const full = path.join(dir, file);
    if (fs.statSync(full).isFile()) out[file] = fs.readFileSync(full, 'utf8');
  }
  return out;
}

describe('reading the previous output', () => {
  it('with kinds, parses only the documents of those kinds: the same documents a full read has of them', () => {
    const dist = path.join(root, 'dist');
    const all = readOutput(dist);
    const only = readOutput(dist, { kinds: PREVIOUS_OUTPUT_KINDS });
    const ofKinds = (documents: unknown[]) => documents.filter((d) => PREVIOUS_OUTPUT_KINDS.includes((d as { kind?: string } | null)?.kind ?? ''));
    expect(Object.keys(only)).toStrictEqual(Object.keys(all));
    for (const file of Object.keys(all)) expect(only[file]).toStrictEqual(ofKinds(all[file]));
    // The committed output has both kinds: the comparison above is not between empty lists.
    expect(only[PROD].map((d) => (d as { kind: string }).kind)).toEqual(expect.arrayContaining(['PersistentVolumeClaim', 'StatefulSet']));
    expect(all[PROD].length).toBeGreaterThan(only[PROD].length);
  });

  it('with kinds, takes a quoted kind and leaves out a document that only mentions the kind inside it', () => {
    const dir = fs.mkdtempSync(path.join(scratch, 'output-'));
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'kind: "StatefulSet"\nmetadata:\n  name: a\n---\nkind: ConfigMap\ndata:\n  note: |\n    kind: StatefulSet\n    ---\n---\nkind: PersistentVolumeClaim\nmetadata:\n  name: c\n');
    expect(readOutput(dir, { kinds: PREVIOUS_OUTPUT_KINDS })['a.yaml']).toStrictEqual([
      { kind: 'StatefulSet', metadata: { name: 'a' } },
      { kind: 'PersistentVolumeClaim', metadata: { name: 'c' } },
    ]);
  });
});

describe('npm run synth', () => {
  it('is deterministic: two synths are byte-identical', () => {
    const a = path.join(scratch, 'a');
    const b = path.join(scratch, 'b');
    expect(synth(a).status).toBe(0);
    expect(synth(b).status).toBe(0);
    const first = readTree(a);
    expect(Object.keys(first)).toStrictEqual(FILES);
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
    fs.mkdirSync(path.join(out, 'dev/demo/removed-database'), { recursive: true });
    fs.writeFileSync(path.join(out, 'dev/demo/removed-database/removed-database.k8s.yaml'), 'kind: Stale\n');
    expect(synth(out).status).toBe(0);
    expect(Object.keys(readTree(out))).toStrictEqual(FILES);
    expect(fs.readdirSync(out).sort()).toStrictEqual(['delivery', 'dev', 'prod']);
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
  const appFile = path.join(project, 'app.ts');
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
    expect(Object.keys(before)).toStrictEqual(FILES);
    const source = fs.readFileSync(appFile, 'utf8');
    expect(source).toContain('        replicas: 3,\n');
    fs.writeFileSync(appFile, source.replace('        replicas: 3,\n', '        replica: 3,\n'));
    try {
      // The hazard: run without the type check, the typo is dropped and prod gets the definition's 2 members.
      const unchecked = spawnSync(tsx, ['main.ts'], { cwd: project, env: { ...process.env, CDK8S_OUTDIR: path.join(scratch, 'unchecked') }, encoding: 'utf8' });
      expect(unchecked.status).toBe(0);
      expect(fs.readFileSync(path.join(scratch, 'unchecked', PROD), 'utf8')).toContain('  replicas: 2\n');

      const line = source.split('\n').findIndex((l) => l === '        replicas: 3,') + 1;
      for (const result of [npmRunSynth(), cdk8sYamlApp()]) {
        expect(result.status).not.toBe(0);
        expect(result.stdout).toContain(`app.ts(${line},9): error TS2561: Object literal may only specify known properties, but 'replica' does not exist in type 'DatabaseSettings'. Did you mean to write 'replicas'?`);
        expect(readTree(out)).toStrictEqual(before);
        expect(fs.readdirSync(scratch).filter((f) => f.includes('staging'))).toStrictEqual([]);
      }
    } finally {
      fs.writeFileSync(appFile, source);
    }
    // Fixed, it synthesizes again (through cdk8s.yaml's command too).
    expect(cdk8sYamlApp().status).toBe(0);
    expect(compareDirectories(out, path.join(root, 'dist'))).toStrictEqual([]);
  });

  it('grows a volume, and refuses to shrink one below what the output directory holds, leaving it untouched', () => {
    const source = fs.readFileSync(appFile, 'utf8');
    expect(source).toContain("storage: { size: '20Gi' }");
    try {
      fs.writeFileSync(appFile, source.replace("storage: { size: '20Gi' }", "storage: { size: '30Gi' }"));
      const grown = npmRunSynth();
      expect(grown.status, grown.stderr).toBe(0);
      expect(readTree(out)[PROD]).toContain('      storage: 30Gi\n');
      const before = readTree(out);

      fs.writeFileSync(appFile, source);
      const shrunk = npmRunSynth();
      expect(shrunk.status).toBe(1);
      expect(shrunk.stderr).toContain(`synth: 3 validation errors; nothing was written to ${out}/`);
      expect(shrunk.stderr).toContain(`[prod/wal-postgres/Database] storage.size: "20Gi" would shrink the volume claim data-wal-postgres-0, which dist/${PROD} (the previous synthesis) gives 30Gi: a claim can only grow`);
      expect(readTree(out)).toStrictEqual(before);
    } finally {
      fs.writeFileSync(appFile, source);
      fs.rmSync(out, { recursive: true, force: true });
      expect(npmRunSynth().status).toBe(0);
    }
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
    const file = 'dev/demo/wal-postgres/wal-postgres.k8s.yaml';
    fs.appendFileSync(path.join(stale, file), '# edited by hand\n');
    fs.writeFileSync(path.join(stale, 'demo.k8s.yaml'), 'kind: Old\n');
    const result = check(stale);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${stale}/${file}: differs`);
    expect(result.stderr).toContain(`${stale}/demo.k8s.yaml: stale (the code no longer produces it)`);
    fs.rmSync(path.join(stale, file));
    expect(check(stale).stderr).toContain(`${stale}/${file}: missing (the code produces it)`);
  });

  it('fails when the code shrinks a volume the committed dist/ has larger, naming the claim', () => {
    const larger = path.join(scratch, 'larger');
    execFileSync('cp', ['-r', path.join(root, 'dist'), larger]);
    const file = path.join(larger, PROD);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replaceAll('      storage: 20Gi\n', '      storage: 40Gi\n'));
    const result = check(larger);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`[prod/wal-postgres/Database] storage.size: "20Gi" would shrink the volume claim data-wal-postgres-2, which dist/${PROD} (the previous synthesis) gives 40Gi`);
  });
});
