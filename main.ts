/**
 * The entry of `npm run synth` and `cdk8s synth`: synthesizes the app (app.ts) into dist/ (or
 * $CDK8S_OUTDIR), atomically. This is the only place that reads the environment; nothing imports it.
 */
import { buildApp } from './app';
import { synthesizeAtomically } from './scripts/synthesize';

process.exitCode = synthesizeAtomically(buildApp, process.env.CDK8S_OUTDIR ?? 'dist');
