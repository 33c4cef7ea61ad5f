/**
 * The app: every chart a team deploys. Pure definition, no I/O and no environment: the entry
 * (main.ts) and the tooling (scripts/synth-check.ts, tests) import it and decide where it goes.
 *
 *   constructs/ <- charts/ <- app.ts <- main.ts, scripts/synth-check.ts -> scripts/synthesize.ts
 */
import { App, YamlOutputType } from 'cdk8s';
import { DemoChart } from './charts/demo-chart';
import { ArchiverImage } from './constructs';

/**
 * The archiver image every database of the app runs, where the nodes pull it from: a placeholder
 * registry; a team sets its own (`ARCHIVER_IMAGE=<this> npm run archiver:image -- --push` builds
 * and pushes it; pin it with the digest that prints: `...:0.1.0@sha256:...`).
 */
export const ARCHIVER_IMAGE = 'ghcr.io/your-org/pg-wal-archiver:0.1.0';

export function buildApp(outdir: string): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  ArchiverImage.use(app, ARCHIVER_IMAGE);
  new DemoChart(app, 'demo');
  return app;
}
