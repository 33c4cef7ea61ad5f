/**
 * The fixtures (test/constructs/fixtures.ts) leave nothing behind: apps made with testApp() write
 * inside a scratch directory that is removed after each file, and a `cdk8s.outdir.*` directory
 * left in the system temp dir (cdk8s's Testing.app()) fails the file that ran while it appeared.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Chart, Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { cdk8sOutdirs, testApp } from './fixtures';

const ROOT = path.resolve(__dirname, '../..');

/** Test sources under test/, relative to the repository. */
function testSources(dir = path.join(ROOT, 'test')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return testSources(full);
    return entry.name.endsWith('.ts') ? [path.relative(ROOT, full)] : [];
  });
}

describe('test apps', () => {
  it('write their output inside the file\'s scratch directory, never into the temp dir itself', () => {
    const before = cdk8sOutdirs();
    const app = testApp();
    new Chart(app, 'chart');
    app.synth();
    expect(fs.readdirSync(app.outdir)).toStrictEqual(['chart.k8s.yaml']);
    expect(path.dirname(path.dirname(app.outdir))).toBe(os.tmpdir());
    expect(path.basename(path.dirname(app.outdir))).toMatch(/^constructs-test-/);
    expect(cdk8sOutdirs()).toStrictEqual(before);
  });

  it('are what the check looks for: Testing.app() without an outdir leaves a cdk8s.outdir.* directory behind', () => {
    // In a temp dir of its own, so that no other file's check sees it.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leftover-check-'));
    const saved = process.env.TMPDIR;
    try {
      process.env.TMPDIR = tmp;
      const app = Testing.app();
      expect(path.dirname(app.outdir)).toBe(tmp);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    expect(cdk8sOutdirs(tmp)).toHaveLength(1);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('are the only apps the tests make: no test calls Testing.app() or Testing.chart()', () => {
    const allowed = ['test/constructs/fixtures.ts', 'test/constructs/fixtures.test.ts'];
    const offenders = testSources().filter((file) => !allowed.includes(file) && /Testing\s*\.\s*(app|chart)\s*\(/.test(fs.readFileSync(path.join(ROOT, file), 'utf8')));
    expect(offenders).toStrictEqual([]);
    expect(testSources()).toContain('test/constructs/validation.test.ts');
  });
});
