/**
 * What the previous synthesis wrote: the output directory a synthesis replaces (dist/ as the
 * working tree has it). It is read at the top (scripts/synthesize.ts), never by a construct, and
 * handed to the app as construct context, so that a construct can compare what it renders with
 * what Git already holds: a volume claim cannot shrink.
 */
import { IConstruct } from 'constructs';

/**
 * The YAML documents of each file of the previous output, by path relative to it: those of the
 * kinds in PREVIOUS_OUTPUT_KINDS only.
 */
export type PreviousOutputFiles = Readonly<Record<string, readonly unknown[]>>;

/**
 * The kinds a construct compares with the previous output (database-chart.ts: a claim that would
 * shrink, a StatefulSet of another major version). Only these are read: add a kind here before a
 * construct looks for it.
 */
export const PREVIOUS_OUTPUT_KINDS: readonly string[] = ['PersistentVolumeClaim', 'StatefulSet'];

/** The previous output and the directory it was read from (for messages: "dist"). */
export interface PreviousOutputOptions {
  /** @default "dist" */
  readonly directory?: string;
}

/** The construct context key under which `PreviousOutput.use` records it. */
export const PREVIOUS_OUTPUT_CONTEXT = 'archived-postgres:previous-output';

export interface PreviousOutputContext {
  readonly directory: string;
  readonly files: PreviousOutputFiles;
}

/** The previous synthesis's output, in construct context. */
export class PreviousOutput {
  /**
   * Records `files` for every construct of `app`. Call it before anything is added to the app
   * (construct context can only be set then): first thing after `new App()`.
   */
  public static use(app: IConstruct, files: PreviousOutputFiles, options: PreviousOutputOptions = {}): void {
    app.node.setContext(PREVIOUS_OUTPUT_CONTEXT, { directory: options.directory ?? 'dist', files } satisfies PreviousOutputContext);
  }

  /** The previous output seen from `scope`: no files when none was recorded (a first synthesis, a test). */
  public static of(scope: IConstruct): PreviousOutputContext {
    const value = scope.node.tryGetContext(PREVIOUS_OUTPUT_CONTEXT) as PreviousOutputContext | undefined;
    return value ?? { directory: 'dist', files: {} };
  }
}
