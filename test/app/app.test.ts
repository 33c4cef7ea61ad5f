/**
 * The app (app.ts) and what imports it. Dependencies go one way:
 *
 *   contract/ <- constructs/ <- charts/ <- app.ts <- main.ts, scripts/synth-check.ts
 *                                                    (both -> scripts/synthesize.ts)
 *
 * so the app never depends on the tooling that synthesizes it, and nothing imports the entry.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../app';
import { testOutdir } from '../constructs/fixtures';

const ROOT = path.resolve(__dirname, '../..');

/** The relative imports of each .ts file under the given entries, as repository paths; bare imports left out. */
function importGraph(entries: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (file: string) => {
    if (graph.has(file)) return;
    const imports = ts.preProcessFile(fs.readFileSync(path.join(ROOT, file), 'utf8')).importedFiles
      .map((i) => i.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => {
        const target = path.join(path.dirname(file), name);
        return fs.existsSync(path.join(ROOT, `${target}.ts`)) ? `${target}.ts` : path.join(target, 'index.ts');
      });
    graph.set(file, imports);
    imports.forEach(visit);
  };
  entries.forEach(visit);
  return graph;
}

/** Every module reachable from `file` in `graph`. */
function reachable(graph: Map<string, string[]>, file: string): Set<string> {
  const seen = new Set<string>();
  const stack = [...(graph.get(file) ?? [])];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    stack.push(...(graph.get(next) ?? []));
  }
  return seen;
}

describe('app.ts', () => {
  const graph = importGraph(['main.ts', 'scripts/synth-check.ts', 'test/fixtures/invalid-app.ts']);

  it('builds the charts the team deploys, without writing anything: each database of each environment, and their delivery', () => {
    const outdir = testOutdir();
    const app = buildApp(outdir);
    expect(app.charts.map((c) => c.node.path)).toStrictEqual([
      'dev/wal-postgres', 'dev/wal-postgres-pitr', 'prod/wal-postgres', 'argocd-dev', 'flux-dev', 'argocd-prod', 'flux-prod',
    ]);
    expect(fs.existsSync(outdir)).toBe(false);
  });

  it('depends on the charts, the constructs and the generated imports only, never on the tooling or the entry', () => {
    const deps = [...reachable(graph, 'app.ts')];
    expect(deps.filter((f) => !/^(charts|constructs|contract|imports)\//.test(f))).toStrictEqual([]);
  });

  it('is imported by the entry and the check, which share the synthesis helper; the helper imports neither', () => {
    expect(graph.get('main.ts')).toStrictEqual(['app.ts', 'scripts/synthesize.ts']);
    expect(graph.get('scripts/synth-check.ts')).toStrictEqual(['app.ts', 'scripts/synthesize.ts']);
    // Only the construct module that says which kinds of the previous output the constructs read.
    expect(graph.get('scripts/synthesize.ts')).toStrictEqual(['constructs/previous-output.ts']);
  });

  it('has no import cycle among its modules, and nothing imports main.ts (tests and benchmarks included)', () => {
    for (const file of graph.keys()) expect(reachable(graph, file).has(file), `${file} imports itself through ${[...reachable(graph, file)].join(', ')}`).toBe(false);
    const sources = (dir: string): string[] => fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })
      .filter((e) => e.name !== 'node_modules')
      .flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
    const everything = importGraph(['test', 'bench', 'scripts', 'charts', 'constructs'].flatMap(sources));
    expect(everything.size).toBeGreaterThan(graph.size);
    expect([...everything].filter(([, imports]) => imports.includes('main.ts')).map(([file]) => file)).toStrictEqual([]);
  });

  it('reaches the contract through its index only, and nothing of the archiver', () => {
    const everything = [...graph.keys()];
    expect(everything.filter((f) => f.startsWith('archiver/'))).toStrictEqual([]);
    expect(everything.filter((f) => f.startsWith('contract/')).sort()).toStrictEqual(
      ['contract/index.ts', ...fs.readdirSync(path.join(ROOT, 'contract')).filter((f) => f !== 'index.ts').map((f) => `contract/${f}`)].sort(),
    );
    for (const [file, imports] of graph) {
      if (!file.startsWith('contract/')) expect(imports.filter((i) => i.startsWith('contract/') && i !== 'contract/index.ts'), file).toStrictEqual([]);
    }
  });
});
