import * as path from 'node:path';
import { App, Chart, Testing } from 'cdk8s';
import { ARCHIVER_IMAGE_HOME, ARCHIVER_INSTALL_DIR } from '../../contract';
import { ArchivedPostgres, ArchivedPostgresProps, ArchiveStorage } from '../../constructs';
import { ROOT } from '../../testkit/archiver';

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

/** A chart in namespace `demo` holding one database built from `props`. */
export function synthDatabase(props: ArchivedPostgresProps, id = 'wal-postgres'): { app: App; chart: Chart; db: ArchivedPostgres; objects: KubeObject[] } {
  const app = Testing.app();
  const chart = new Chart(app, 'test', { namespace: 'demo', disableResourceNameHashes: true });
  const db = new ArchivedPostgres(chart, id, props);
  return { app, chart, db, objects: Testing.synth(chart) as KubeObject[] };
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

/** The container's environment as the kubelet builds it, with `secrets[name][key]` for secretKeyRefs. */
export function podEnvironment(statefulSet: KubeObject, secrets: Record<string, Record<string, string>>, containerName = 'postgres'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container(statefulSet, containerName).env) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom?.secretKeyRef) {
      const { name, key } = variable.valueFrom.secretKeyRef;
      const value = secrets[name]?.[key];
      if (value === undefined) throw new Error(`the pod references Secret ${name} key ${key}, which the test does not provide`);
      env[variable.name] = value;
    } else if (variable.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[variable.name] = `${statefulSet.metadata.name}-0`;
  }
  return env;
}

/** A command of the image (ARCHIVER_IMAGE_HOME) on the files the build ships. */
export function fromBuild(file: string): string {
  return path.join(ROOT, 'archiver/dist', file.slice(ARCHIVER_IMAGE_HOME.length));
}

/** The `archiver` sidecar's rendered command, run from the build. */
export function sidecarCommand(statefulSet: KubeObject): string[] {
  const [node, bundle, ...args] = container(statefulSet, 'archiver').command;
  return [fromBuild(node), fromBuild(bundle), ...args];
}

/** The launcher installed where the pod has it: the rendered commands name ARCHIVER_INSTALL_DIR. */
export function inInstallDir(command: string): string {
  return command.replace(ARCHIVER_INSTALL_DIR, path.join(ROOT, 'archiver/dist'));
}
