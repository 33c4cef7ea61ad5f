/**
 * The app: every chart a team deploys. Pure definition, no I/O and no environment: the entry
 * (main.ts) and the tooling (scripts/synth-check.ts, tests) import it and decide where it goes.
 *
 *   constructs/ <- charts/ <- app.ts <- main.ts, scripts/synth-check.ts -> scripts/synthesize.ts
 */
import { App, YamlOutputType } from 'cdk8s';
import { DemoChart } from './charts/demo-chart';

export function buildApp(outdir: string): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  new DemoChart(app, 'demo');
  return app;
}
