/**
 * The app whose charts each name the file they are written to: one directory per environment and
 * database (`<environment>/<namespace>/<name>/<name>.k8s.yaml`) and the delivery manifests
 * (`delivery/argocd/<environment>/`, `delivery/flux/<environment>/`), instead of cdk8s's one flat
 * file per chart. A chart that names no file is written as cdk8s writes it, `<chart>.k8s.yaml`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiObject, App, AppProps, Chart, ChartProps, DependencyGraph, Names, Yaml } from 'cdk8s';
import { Construct } from 'constructs';

/** A chart written to a file of its own choosing, relative to the app's output directory. */
export abstract class FileChart extends Chart {
  /** Whether `x` is a FileChart (by a symbol, as cdk8s recognises its own classes). */
  public static isFileChart(x: unknown): x is FileChart {
    return x !== null && typeof x === 'object' && FILE_CHART in x;
  }

  /** The file, relative to the output directory: `prod/demo/wal-postgres/wal-postgres.k8s.yaml`. */
  public abstract readonly outputFile: string;

  constructor(scope: Construct, id: string, props: ChartProps = {}) {
    super(scope, id, props);
    Object.defineProperty(this, FILE_CHART, { value: true });
  }

  /** The chart's objects as `Testing.synth()` and `cdk8s synth` see them (the app validated first). */
  public toJson(): any[] {
    return this.transform(super.toJson());
  }

  /** The chart's objects in the file's order, without validating the app (GitOpsApp validates once). */
  public render(): any[] {
    const objects = new DependencyGraph(this.node).topology()
      .filter((c): c is ApiObject => ApiObject.isApiObject(c) && Chart.of(c) === this)
      .map((o) => o.toJson());
    return this.transform(objects);
  }

  /** What the chart does to its rendered objects before they are written (e.g. annotations by kind). */
  protected transform(objects: any[]): any[] {
    return objects;
  }
}

const FILE_CHART = Symbol.for('archived-postgres.FileChart');

/**
 * An App that writes each FileChart to its `outputFile`, creating directories, and every other
 * chart to `<chart>.k8s.yaml`. It validates the app once (every error, each with its construct
 * path) and refuses two charts that name one file.
 */
export class GitOpsApp extends App {
  constructor(props: AppProps = {}) {
    super(props);
  }

  /** Every chart's relative output file, in the order the charts were added. */
  public get outputFiles(): Map<Chart, string> {
    return new Map(this.charts.map((chart) => [chart, FileChart.isFileChart(chart) ? chart.outputFile : `${Names.toDnsLabel(chart)}${this.outputFileExtension}`]));
  }

  public synth(): void {
    const errors: string[] = [];
    for (const construct of this.node.findAll()) {
      for (const message of construct.node.validate()) errors.push(`[${construct.node.path}] ${message}`);
    }
    if (errors.length > 0) throw new Error(`Validation failed with the following errors:\n  ${errors.join('\n  ')}`);

    const writers = new Map<string, Chart>();
    for (const [chart, file] of this.outputFiles) {
      const other = writers.get(file);
      if (other) throw new Error(`${chart.node.path} and ${other.node.path} would both write ${file}: give each chart a file of its own`);
      writers.set(file, chart);
    }
    for (const [chart, file] of this.outputFiles) {
      const objects = FileChart.isFileChart(chart) ? chart.render() : chart.toJson();
      const target = path.join(this.outdir, file);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      Yaml.save(target, objects);
    }
  }
}
