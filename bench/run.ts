/**
 * `npm run bench`: every benchmark, printing figures and ratios against the reference tools side
 * by side in one run (never timed tests: this machine is shared and noisy, so compare rows of
 * one run only).
 *
 *   npm run bench                       everything: synthesis, compression, archiving, restore, backup
 *   npm run bench -- --quick            fewer segments, a smaller database and fewer repeats, for development
 *   npm run bench -- --only archiving   one section: synth, compression, archiving, restore, backup
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { runArchivingBenchmark } from './archiving';
import { runBackupBenchmark } from './backup';
import { runRestoreBenchmark } from './restore';
import { runSynthBenchmark } from './synth';

const SECTIONS = ['synth', 'compression', 'archiving', 'restore', 'backup'] as const;
type Section = (typeof SECTIONS)[number];

function parseArgs(argv: readonly string[]): { quick: boolean; only: Section[] } {
  const quick = argv.includes('--quick');
  const onlyIndex = argv.indexOf('--only');
  const only = onlyIndex >= 0 ? argv[onlyIndex + 1]?.split(',') ?? [] : [...SECTIONS];
  for (const section of only) {
    if (!SECTIONS.includes(section as Section)) throw new Error(`--only ${section}: expected one of ${SECTIONS.join(', ')}`);
  }
  return { quick, only: only as Section[] };
}

async function main(): Promise<void> {
  const { quick, only } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  console.log(`# Benchmarks (${new Date().toISOString()}, ${quick ? 'quick' : 'full'})`);
  if (only.includes('synth')) runSynthBenchmark();
  if (only.includes('compression')) {
    console.log('\n## Compression of one 16 MiB WAL-like segment\n');
    spawnSync(path.join(__dirname, '../node_modules/.bin/tsx'), [path.join(__dirname, 'compression.ts')], { stdio: 'inherit' });
  }
  if (only.includes('archiving')) {
    console.log('\n## WAL archiving: backlog catch-up and per-call cost\n');
    await runArchivingBenchmark({ quick, repeats: quick ? 1 : 3 });
  }
  if (only.includes('restore')) {
    console.log('\n## Restore: archive recovery through restore_command\n');
    await runRestoreBenchmark({ quick, build: !only.includes('archiving') });
  }
  if (only.includes('backup')) {
    console.log('\n## Base backups: backup, restore and point-in-time recovery of a pgbench database\n');
    await runBackupBenchmark({ quick, build: !only.includes('archiving') && !only.includes('restore') });
  }
  console.log(`\nAll benchmarks: ${((Date.now() - started) / 60000).toFixed(1)} min`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
