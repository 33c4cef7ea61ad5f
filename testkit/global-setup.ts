/** Builds the archiver once per test run: the tests run the same files the image ships. */
import { buildArchiver } from '../archiver/scripts/build';

export default async function setup(): Promise<void> {
  await buildArchiver();
}
