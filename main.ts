/**
 * The app: every chart a team deploys. `npm run synth` writes them to dist/ (or $CDK8S_OUTDIR).
 * This is the only place that reads the environment.
 */
import { App, YamlOutputType } from 'cdk8s';
import { DemoChart } from './charts/demo-chart';
import { synthesizeAtomically } from './scripts/synthesize';

export function buildApp(outdir: string): App {
  const app = new App({ outdir, yamlOutputType: YamlOutputType.FILE_PER_CHART });
  new DemoChart(app, 'demo');
  return app;
}

if (require.main === module) {
  const outdir = process.env.CDK8S_OUTDIR ?? 'dist';
  process.exitCode = synthesizeAtomically(buildApp, outdir);
}
