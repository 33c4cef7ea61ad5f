/**
 * What the specifications of constructs/ share. Each file specifies the source file it is named
 * after: `<source>.test.ts` what the source renders (cdk8s-core's habit: snapshots and exact
 * `toStrictEqual` for the minimal case, GIVEN / WHEN / THEN), `<source>.<what>.test.ts` the
 * rendered output run against real programs or schemas (`.real-postgres`, `.real-archiver`,
 * `.schema`).
 *
 * Apps come from `testApp()`, never from cdk8s's `Testing.app()`: that one makes a
 * `cdk8s.outdir.*` directory in the system temp dir per call and never removes it. Every file that
 * imports this module fails when a `cdk8s.outdir.*` directory appeared while it ran.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Chart, Testing } from 'cdk8s';
import { afterAll } from 'vitest';
import { ARCHIVER_IMAGE_HOME, ARCHIVER_INSTALL_DIR } from '../../contract';
import { ArchivedPostgres, ArchivedPostgresProps, ArchiverImage, ArchiveStorage } from '../../constructs';
import { ROOT } from '../../testkit/archiver';

/** The names of `cdk8s.outdir.*` directories in `dir` (Testing.app()'s leftovers). */
export function cdk8sOutdirs(dir: string = os.tmpdir()): string[] {
  return fs.readdirSync(dir).filter((name) => name.startsWith('cdk8s.outdir.')).sort();
}

const outdirsBefore = new Set(cdk8sOutdirs());
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'constructs-test-'));
let apps = 0;
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
  const left = cdk8sOutdirs().filter((name) => !outdirsBefore.has(name));
  if (left.length > 0) {
    throw new Error(`${left.length} cdk8s.outdir.* director${left.length === 1 ? 'y was' : 'ies were'} left in ${os.tmpdir()} while this file ran (${left.join(', ')}): make apps with testApp() from test/constructs/fixtures.ts, not Testing.app()`);
  }
});

/** An output directory for an app, inside this file's scratch directory (removed after the file). Not created. */
export function testOutdir(): string {
  return path.join(scratch, `app-${++apps}`);
}

/** The archiver image test apps set (`ArchiverImage.use`): fully qualified, never pulled by a test. */
export const TEST_ARCHIVER_IMAGE = 'registry.example.com/pg-wal-archiver:0.1.0';

/**
 * `Testing.app()` with its output directory in this file's scratch directory, and the archiver
 * image set as app.ts sets it (`archiverImage: null` for an app without one).
 */
export function testApp(options: { archiverImage?: string | null; allowLocalImage?: boolean } = {}): App {
  const app = Testing.app({ outdir: testOutdir() });
  const image = options.archiverImage === undefined ? TEST_ARCHIVER_IMAGE : options.archiverImage;
  if (image !== null) ArchiverImage.use(app, image, { allowLocalImage: options.allowLocalImage });
  return app;
}

/** The seed example's props: 2 members, 1Gi `standard` volumes, archive to the `kubedb` bucket. */
export function seedProps(overrides: Partial<ArchivedPostgresProps> = {}): ArchivedPostgresProps {
  return {
    version: 15,
    replicas: 2,
    storage: { storageClassName: 'standard', accessModes: ['ReadWriteOnce'], size: '1Gi' },
    archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'https://s3.amazonaws.com', bucket: 'kubedb' }) },
    ...overrides,
  };
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  [key: string]: any;
}

/** A chart in namespace `demo` holding one database built from `props`, not yet synthesized. */
export function databaseChart(props: ArchivedPostgresProps, id = 'wal-postgres'): { app: App; chart: Chart; db: ArchivedPostgres } {
  const app = testApp();
  const chart = new Chart(app, 'test', { namespace: 'demo', disableResourceNameHashes: true });
  const db = new ArchivedPostgres(chart, id, props);
  return { app, chart, db };
}

/** The chart's objects, as `npm run synth` writes them. */
export function synth(chart: Chart): KubeObject[] {
  return Testing.synth(chart) as KubeObject[];
}

/** `databaseChart`, synthesized at once. */
export function synthDatabase(props: ArchivedPostgresProps, id = 'wal-postgres'): { app: App; chart: Chart; db: ArchivedPostgres; objects: KubeObject[] } {
  const { app, chart, db } = databaseChart(props, id);
  return { app, chart, db, objects: synth(chart) };
}

export function find(objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

export function postgresContainer(statefulSet: KubeObject): any {
  return statefulSet.spec.template.spec.containers.find((c: any) => c.name === 'postgres');
}

export function envOf(container: any): Record<string, any> {
  return Object.fromEntries(container.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
}

export function container(statefulSet: KubeObject, name: string): any {
  return statefulSet.spec.template.spec.containers.find((c: any) => c.name === name);
}

/** A container's environment as the kubelet builds it in pod `podName`, with `secrets[name][key]` for secretKeyRefs. */
export function containerEnvironment(container: any, secrets: Record<string, Record<string, string>>, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom?.secretKeyRef) {
      const { name, key } = variable.valueFrom.secretKeyRef;
      const value = secrets[name]?.[key];
      // The kubelet leaves an optional reference to a missing Secret or key unset.
      if (value === undefined && variable.valueFrom.secretKeyRef.optional === true) continue;
      if (value === undefined) throw new Error(`the pod references Secret ${name} key ${key}, which the test does not provide`);
      env[variable.name] = value;
    } else if (variable.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[variable.name] = podName;
  }
  return env;
}

/** The environment of a container of pod 0 of `statefulSet` (see containerEnvironment). */
export function podEnvironment(statefulSet: KubeObject, secrets: Record<string, Record<string, string>>, containerName = 'postgres'): Record<string, string> {
  return containerEnvironment(container(statefulSet, containerName), secrets, `${statefulSet.metadata.name}-0`);
}

/** A command of the image (ARCHIVER_IMAGE_HOME) on the files the build ships. */
export function fromBuild(file: string): string {
  return path.join(ROOT, 'archiver/dist', file.slice(ARCHIVER_IMAGE_HOME.length));
}

/** The `archiver` sidecar's rendered command, run from the build. */
export function sidecarCommand(statefulSet: KubeObject): string[] {
  return (container(statefulSet, 'archiver').command as string[]).map((arg) => (arg.startsWith(`${ARCHIVER_IMAGE_HOME}/`) ? fromBuild(arg) : arg));
}

/** Replaces `from` in `text`, failing when it is not there (the rendering changed: update the test). */
export function replaced(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`the rendered file no longer contains ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

/** The launcher installed where the pod has it: the rendered commands name ARCHIVER_INSTALL_DIR. */
export function inInstallDir(command: string): string {
  return command.replace(ARCHIVER_INSTALL_DIR, path.join(ROOT, 'archiver/dist'));
}
