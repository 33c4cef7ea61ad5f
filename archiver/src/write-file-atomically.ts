/**
 * A file written whole or not at all: through a temporary file in the same directory and a rename
 * (readers never see it half-written, and a failure leaves nothing behind).
 */
import * as fs from 'node:fs/promises';

/** Writes `data` to `file` through a temporary file in the same directory and a rename. */
export async function writeFileAtomically(file: string, data: Buffer, durable: boolean): Promise<void> {
  const temporary = `${file}.archiver-${process.pid}-${Math.random().toString(36).slice(2, 8)}.tmp`;
  const handle = await fs.open(temporary, 'w', 0o600);
  try {
    try {
      await handle.writeFile(data);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, file);
  } catch (error) {
    // Nothing half-written stays behind: not the temporary file, whatever failed.
    await fs.rm(temporary, { force: true });
    throw error;
  }
}
