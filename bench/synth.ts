/**
 * Synthesis speed: apps of 1, 10 and 100 ArchivedPostgres, whole-process wall time (median of
 * several runs) for each way of running the app, with plain `cdk8s synth` beside them.
 * Target: 100 databases in under 3 s, and no more than 3x the time of 1.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
/** tsx is the project's runner; the runners it is compared with come from bench/package.json. */
const bin = (name: string) => path.join(root, name === 'tsx' ? 'node_modules/.bin' : 'bench/node_modules/.bin', name);
const tsNode = (entry: string) => require.resolve(`ts-node/${entry}`, { paths: [path.join(root, 'bench')] });
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function time(command: string, args: string[], env: NodeJS.ProcessEnv, cwd = root): number {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const result = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
    samples.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  return median(samples);
}

export function runSynthBenchmark(): void {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synth-'));
  try {
    // Compiled JavaScript: one esbuild bundle of the bench app (the cdk8s libraries stay external).
    // It sits under build/ so that node resolves the external packages from node_modules.
    const bundle = path.join(root, 'build', 'bench-synth-app.js');
    execFileSync(bin('esbuild'), ['bench/synth-app.ts', '--bundle', '--platform=node', '--packages=external', `--outfile=${bundle}`, '--log-level=warning'], { cwd: root });
    // A cdk8s project directory for plain `cdk8s synth`, running the app with tsx.
    const cdk8sDir = path.join(scratch, 'cdk8s');
    fs.mkdirSync(cdk8sDir);
    fs.writeFileSync(path.join(cdk8sDir, 'cdk8s.yaml'), `language: typescript\napp: ${bin('tsx')} ${path.join(root, 'bench/synth-app.ts')}\noutput: dist\n`);

    const out = path.join(scratch, 'dist');
    const rows: string[][] = [];
    const results: Record<string, number[]> = {};
    const counts = [1, 10, 100];
    const ways: [string, (n: number) => number][] = [
      ['tsx (npm run synth)', (n) => time(bin('tsx'), ['bench/synth-app.ts'], { BENCH_DATABASES: String(n), CDK8S_OUTDIR: out })],
      ['node, compiled bundle', (n) => time(process.execPath, [bundle], { BENCH_DATABASES: String(n), CDK8S_OUTDIR: out })],
      ['ts-node --transpile-only', (n) => time(process.execPath, ['-r', tsNode('register/transpile-only'), 'bench/synth-app.ts'], { BENCH_DATABASES: String(n), CDK8S_OUTDIR: out })],
      ['ts-node (type-checks)', (n) => time(process.execPath, ['-r', tsNode('register'), 'bench/synth-app.ts'], { BENCH_DATABASES: String(n), CDK8S_OUTDIR: out })],
      ['cdk8s synth --no-check-upgrade (tsx app)', (n) => time(bin('cdk8s'), ['synth', '--no-check-upgrade'], { BENCH_DATABASES: String(n) }, cdk8sDir)],
    ];
    for (const [name, run] of ways) {
      results[name] = counts.map((n) => run(n));
      const [one, , hundred] = results[name];
      rows.push([name, ...results[name].map((s) => s.toFixed(2)), (hundred / one).toFixed(2)]);
    }
    const header = ['runner', '1 db (s)', '10 dbs (s)', '100 dbs (s)', '100/1'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
    console.log(`\n## Synthesis: whole-process seconds, median of ${RUNS} runs (target: 100 dbs < 3 s and <= 3x of 1 db)\n`);
    console.log(line(header));
    console.log(line(widths.map((w) => '-'.repeat(w))));
    for (const row of rows) console.log(line(row));
    const chosen = results['tsx (npm run synth)'];
    const ok = chosen[2] < 3 && chosen[2] / chosen[0] <= 3;
    console.log(`\nnpm run synth (tsx): 100 databases in ${chosen[2].toFixed(2)} s, ${(chosen[2] / chosen[0]).toFixed(2)}x of one: target ${ok ? 'met' : 'MISSED'}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

if (require.main === module) runSynthBenchmark();
