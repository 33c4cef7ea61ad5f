import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArguments } from '../../scripts/diff';
import { DistTree, diffDist, formatDiff, quantityBytes } from '../../scripts/dist-diff';
import { readOutput } from '../../scripts/synthesize';

const root = path.resolve(__dirname, '../..');
const fixtures = path.join(root, 'test/fixtures/diff');

/** The comparison of a committed fixture pair: test/fixtures/diff/<name>/{base,head}/ are two dist/ trees. */
function fixture(name: string) {
  const diff = diffDist(readOutput(path.join(fixtures, name, 'base')), readOutput(path.join(fixtures, name, 'head')));
  return { diff, report: formatDiff(diff), kinds: diff.dangers.map((d) => d.kind) };
}

describe('the comparison of two dist/ trees', () => {
  it('says there is nothing to review when both trees render the same', () => {
    const { diff, report } = fixture('unchanged');
    expect(report).toBe('dist/: no changes\n');
    expect(diff.dangers).toStrictEqual([]);
  });

  it('names each database added and the fields that changed, in words, and the delivery files', () => {
    expect(fixture('fields').report).toBe([
      'dist/: 1 added, 0 removed, 1 changed',
      '  + dev/shop/orders: added',
      '  ~ prod/shop/orders: replicas 2 → 3; archive_timeout 60 s → 30 s (reloaded in place: no pod restarts)',
      '  + delivery/argocd/dev/dev.k8s.yaml: added',
      '',
      'No dangerous changes.',
      '',
    ].join('\n'));
  });

  it('names the objects that changed when no summarized field did, and that a configuration change is reloaded in place', () => {
    const base = readOutput(path.join(fixtures, 'unchanged/base'));
    const head: DistTree = JSON.parse(JSON.stringify(base));
    const [configMap] = head['prod/shop/orders/orders.k8s.yaml'] as { data: Record<string, string> }[];
    configMap.data['postgresql.conf'] += 'log_min_duration_statement = 250\n';
    expect(formatDiff(diffDist(base, head))).toBe([
      'dist/: 0 added, 0 removed, 1 changed',
      '  ~ prod/shop/orders: changed objects: ConfigMap/orders-config (reloaded in place: no pod restarts)',
      '',
      'No dangerous changes.',
      '',
    ].join('\n'));
  });

  describe('flags, in a section of its own, what is dangerous or will fail', () => {
    it('a StatefulSet field the API server refuses to update (serviceName)', () => {
      const { report, kinds } = fixture('immutable-field');
      expect(kinds).toStrictEqual(['immutable-field']);
      expect(report).toBe([
        'dist/: 0 added, 0 removed, 1 changed',
        '  ~ prod/shop/orders: StatefulSet serviceName changed',
        '',
        'DANGEROUS (1): review before merging',
        '  ! prod/shop/orders: StatefulSet serviceName changes: the API server refuses to update it, so the sync will fail; delete the StatefulSet alone first (kubectl delete statefulset --cascade=orphan)',
        '',
      ].join('\n'));
    });

    it('a storage shrink', () => {
      const { report, kinds } = fixture('storage-shrink');
      expect(kinds).toStrictEqual(['storage-shrink']);
      expect(report).toContain('  ~ prod/shop/orders: storage 10Gi → 5Gi\n');
      expect(report).toContain('  ! prod/shop/orders: storage shrinks 10Gi → 5Gi: a volume claim cannot shrink\n');
    });

    it('a change of archive location', () => {
      const { report, kinds } = fixture('archive-location');
      expect(kinds).toStrictEqual(['archive-location']);
      expect(report).toContain('  ! prod/shop/orders: archive location changes s3://pg-archive/prod/kubedb/shop/orders/archive → s3://pg-archive/prod/kubedb/shop/orders-v2/archive: new WAL and backups go to the new location; recovery from the old one needs it named\n');
    });

    it('an archive inside another database\'s', () => {
      const { report, kinds } = fixture('shared-archive');
      expect(kinds).toStrictEqual(['shared-archive']);
      expect(report).toContain('  + prod/shop/payments: added\n');
      expect(report).toContain('  ! prod/shop/orders: archive s3://pg-archive/prod/kubedb/shop/orders/archive shares its location with prod/shop/payments (s3://pg-archive/prod/kubedb/shop/orders/archive/payments): two databases must never write one archive\n');
    });

    it('WipeOut switched on', () => {
      const { report, kinds } = fixture('wipeout-on');
      expect(kinds).toStrictEqual(['wipeout-on']);
      expect(report).toContain('  ! prod/shop/orders: terminationPolicy Delete → WipeOut: removing this database will delete its archive\n');
    });

    it('a database removed, with what its termination policy deletes', () => {
      const { report, kinds } = fixture('database-removed');
      expect(kinds).toStrictEqual(['database-removed', 'database-removed']);
      expect(report).toBe([
        'dist/: 0 added, 2 removed, 0 changed',
        '  - prod/shop/orders: removed (terminationPolicy Delete)',
        '  - prod/shop/payments: removed (terminationPolicy Halt)',
        '',
        'DANGEROUS (2): review before merging',
        '  ! prod/shop/orders: removed, with terminationPolicy Delete: its volumes are deleted, its archive is kept',
        '  ! prod/shop/payments: removed, with terminationPolicy Halt: its volumes and its archive are kept',
        '',
      ].join('\n'));
    });

    it('a major version change', () => {
      const { report, kinds } = fixture('major-version');
      expect(kinds).toStrictEqual(['major-version']);
      expect(report).toContain('  ~ prod/shop/orders: image docker.io/library/postgres:16 → docker.io/library/postgres:17 (rolls the pods, one at a time)\n');
      expect(report).toContain('  ! prod/shop/orders: major version 16 → 17: PostgreSQL will not start on the old data directory (a major upgrade needs pg_upgrade or a dump and restore)\n');
    });

    it('a shorter retention, by count and by window', () => {
      const { report, kinds } = fixture('shorter-retention');
      expect(kinds).toStrictEqual(['shorter-retention', 'shorter-retention']);
      expect(report).toContain('  ~ prod/shop/orders: backups kept 7 → 3; backup window 14d → 7d (rolls the pods, one at a time)\n');
      expect(report).toContain('  ! prod/shop/orders: backups kept 7 → 3: older backups are deleted at the next backup\n');
      expect(report).toContain('  ! prod/shop/orders: backup window 14d → 7d: the archive older than the new window is deleted\n');
    });

    it('a wal_level change', () => {
      const { report, kinds } = fixture('wal-level');
      expect(kinds).toStrictEqual(['wal-level']);
      expect(report).toContain('  ! prod/shop/orders: wal_level replica → logical: takes effect only when every member restarts\n');
    });

    it('an archive_mode change', () => {
      const { report, kinds } = fixture('archive-mode');
      expect(kinds).toStrictEqual(['archive-mode']);
      expect(report).toContain('  ! prod/shop/orders: archive_mode on → off: takes effect only when every member restarts; from then on no WAL reaches the archive: no recovery past this point\n');
    });

    it('a recovery bootstrap added to a live database', () => {
      const { report, kinds } = fixture('recovery-bootstrap');
      expect(kinds).toStrictEqual(['recovery-bootstrap']);
      expect(report).toContain('  ~ prod/shop/orders: bootstrap from (none) → s3://pg-archive/prod/kubedb/shop/legacy/archive (rolls the pods, one at a time)\n');
      expect(report).toContain('  ! prod/shop/orders: recovery bootstrap from s3://pg-archive/prod/kubedb/shop/legacy/archive added to a live database: a member whose volume is empty recovers from that archive instead of its own\n');
    });
  });

  it('reads Kubernetes quantities in bytes (for the shrink check)', () => {
    expect(quantityBytes('20Gi')).toBe(20 * 2 ** 30);
    expect(quantityBytes('500M')).toBe(500e6);
    expect(quantityBytes('1.5Ti')).toBe(1.5 * 2 ** 40);
    expect(quantityBytes('lots')).toBeUndefined();
  });
});

describe('npm run diff', () => {
  it('fails on an unknown argument, naming it', () => {
    expect(() => parseArguments(['--bsae', 'main'])).toThrow('unknown argument "--bsae": usage: npm run diff -- [--base <ref>] [--json]');
    expect(parseArguments(['--base', 'origin/main', '--json'])).toStrictEqual({ base: 'origin/main', json: true });
  });

  // A copy of this repository's app in a git repository of its own: main at the copy, and a branch
  // whose working tree changes the catalog, as a pull request would.
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'diff-e2e-'));
  const git = (...args: string[]) => spawnSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd: repo, encoding: 'utf8' });
  const diff = (...args: string[]) => spawnSync('npm', ['run', '--silent', 'diff', '--', ...args], { cwd: repo, encoding: 'utf8' });
  const catalog = path.join(repo, 'charts/demo-databases.ts');

  beforeAll(() => {
    for (const entry of ['app.ts', 'main.ts', 'package.json', 'tsconfig.json', 'charts', 'constructs', 'contract', 'imports', 'scripts']) {
      fs.cpSync(path.join(root, entry), path.join(repo, entry), { recursive: true });
    }
    fs.writeFileSync(path.join(repo, '.gitignore'), 'node_modules\n');
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(repo, 'node_modules'));
    git('init', '--quiet', '-b', 'main');
    git('add', '-A');
    git('commit', '--quiet', '-m', 'the app');
    git('checkout', '--quiet', '-b', 'more-members');
  });
  afterAll(() => fs.rmSync(repo, { recursive: true, force: true }));

  it('compares the working tree with its merge base with main, and exits 0 when nothing is dangerous (a volume grows)', () => {
    // The pitr copy's volume, 1Gi in the catalog, and in dev (the only environment that runs it).
    fs.writeFileSync(catalog, fs.readFileSync(catalog, 'utf8').replace("storage: { storageClassName: 'standard', size: '1Gi' },", "storage: { storageClassName: 'standard', size: '2Gi' },"));
    const result = diff();
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe([
      `dist/ (working tree vs merge base with main, ${git('merge-base', 'HEAD', 'main').stdout.trim().slice(0, 7)}): 0 added, 0 removed, 1 changed`,
      '  ~ dev/demo/wal-postgres-pitr: storage 1Gi → 2Gi (reloaded in place: no pod restarts)',
      '',
      'No dangerous changes.',
      '',
    ].join('\n'));
    expect(result.status).toBe(0);
  });

  it('exits 1 when a change is dangerous, and --json says which, for machines', () => {
    fs.writeFileSync(catalog, fs.readFileSync(catalog, 'utf8').replace('version: 15,\n    replicas', 'version: 16,\n    replicas'));
    const result = diff('--base', 'main', '--json');
    expect(result.status).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.dangers.map((d: { database: string; kind: string }) => `${d.database} ${d.kind}`)).toStrictEqual([
      'dev/demo/wal-postgres major-version',
      'prod/demo/wal-postgres major-version',
    ]);
  });

  it('exits 2 when the working tree does not synthesize, with synth\'s errors', () => {
    const code = fs.readFileSync(catalog, 'utf8');
    fs.writeFileSync(catalog, code.replace("size: '2Gi' },", "size: '100Mi' },"));
    try {
      const result = diff('--base', 'main');
      expect(result.status).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('diff: the working tree does not synthesize:\nsynth: 1 validation error');
    } finally {
      fs.writeFileSync(catalog, code);
    }
  });

  it('exits 2 when the base is not a ref, and leaves no worktree behind', () => {
    const result = diff('--base', 'no-such-branch');
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('diff: git rev-parse --verify no-such-branch^{commit}');
    expect(git('worktree', 'list').stdout.trim().split('\n')).toHaveLength(1);
  });

  it('removes its worktree and temporary directory when interrupted (Ctrl-C) during a synthesis', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diff-interrupted-'));
    // Its own process group, as a terminal's foreground job: Ctrl-C signals every process of it.
    const child = spawn('npm', ['run', '--silent', 'diff', '--', '--base', 'main'], { cwd: repo, env: { ...process.env, TMPDIR: tmp }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Once a synthesis writes its staging directory (<tmp>/pg-diff-*/<side>-dist.staging-<pid>).
    const synthesizing = () => fs.readdirSync(tmp).some((d) => d.startsWith('pg-diff-') && fs.readdirSync(path.join(tmp, d), { withFileTypes: true }).some((f) => f.name.includes('.staging-')));
    const started = () => { try { return synthesizing(); } catch { return false; } };
    for (let waited = 0; !started() && waited < 20_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited).not.toBe(0);
    expect(stderr).toContain('synthesis was stopped by SIGINT');
    expect(git('worktree', 'list').stdout.trim().split('\n')).toHaveLength(1);
    expect(fs.readdirSync(tmp).filter((name) => !/^(tsx|v8-compile-cache)-/.test(name))).toStrictEqual([]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('leaves no worktree behind after a run', () => {
    expect(git('worktree', 'list', '--porcelain').stdout.match(/^worktree /gm)).toHaveLength(1);
  });
});
