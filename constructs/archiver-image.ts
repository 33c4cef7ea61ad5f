/**
 * The archiver image, set once per app. The constructs render the environment, flags and paths of
 * the archiver built from the same commit (contract/), so one image serves every database of the
 * app; `ArchiverImage.use(app, reference)` names it, in app.ts, before the charts.
 */
import { Construct, IConstruct } from 'constructs';
import { checkImageReference } from './validation';

/** The construct context key under which `ArchiverImage.use` records the image. */
export const ARCHIVER_IMAGE_CONTEXT = 'archived-postgres:archiver-image';

/** An example of a fully qualified archiver image reference, for messages and documentation. */
export const ARCHIVER_IMAGE_EXAMPLE = 'ghcr.io/your-org/pg-wal-archiver:0.1.0';

export interface ArchiverImageOptions {
  /**
   * The reference names no registry (`pg-wal-archiver:0.1.0`) or names the node itself
   * (`localhost/pg-wal-archiver:0.1.0`), and that is meant: the image is loaded onto every node
   * by hand (kind load, podman kube play), never pulled from a registry.
   * @default false - the reference must name the registry the nodes pull from
   */
  readonly allowLocalImage?: boolean;
}

/**
 * The archiver image of every database under the scope it is set on (the App; a Chart may set its
 * own for its databases). It renders no object; it checks the reference once, under its own
 * construct path (`ArchiverImage`).
 *
 * ```ts
 * const app = new App();
 * ArchiverImage.use(app, 'ghcr.io/your-org/pg-wal-archiver:0.1.0');
 * new Environment(app, 'prod', { ... });
 * ```
 */
export class ArchiverImage extends Construct {
  /**
   * Sets the archiver image of every database in `scope`. Call it before anything is added to
   * `scope` (construct context can only be set then): first thing after `new App()`.
   */
  public static use(scope: IConstruct, reference: string, options: ArchiverImageOptions = {}): ArchiverImage {
    if (scope.node.children.length > 0) {
      throw new Error(`ArchiverImage.use(${JSON.stringify(reference)}) on "${scope.node.path || 'the app'}" comes after ${scope.node.children.map((c) => c.node.id).join(', ')}: call it before anything is added to it (first thing after new App())`);
    }
    scope.node.setContext(ARCHIVER_IMAGE_CONTEXT, { reference, allowLocalImage: options.allowLocalImage ?? false });
    return new ArchiverImage(scope, 'ArchiverImage', reference, options.allowLocalImage ?? false);
  }

  /** The image reference set for `scope` or one of its ancestors, or undefined when none is. */
  public static referenceOf(scope: IConstruct): string | undefined {
    const value = scope.node.tryGetContext(ARCHIVER_IMAGE_CONTEXT);
    return typeof value?.reference === 'string' ? value.reference : undefined;
  }

  private constructor(scope: IConstruct, id: string, public readonly reference: string, public readonly allowLocalImage: boolean) {
    super(scope as Construct, id);
    this.node.addValidation({
      validate: () => {
        const message = checkImageReference(this.reference, { allowLocalImage: this.allowLocalImage, example: ARCHIVER_IMAGE_EXAMPLE });
        return message ? [`reference: ${message}`] : [];
      },
    });
  }
}
