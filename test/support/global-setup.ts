/** Builds the archiver once per test run: the tests run the same files the image ships. */
import { buildArchiver } from '../../scripts/build-archiver';

export default async function setup(): Promise<void> {
  await buildArchiver();
}
