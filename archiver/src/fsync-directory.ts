/**
 * fsync of a directory: makes the names created, renamed or removed in it durable (a file's own
 * fsync covers its bytes, not its entry in the directory).
 */
import * as fs from 'node:fs/promises';

export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await fs.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
