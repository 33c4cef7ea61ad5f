/**
 * Where a background archiver listens: the spool's daemon.port file, "PORT TOKEN PID" (contract
 * spool.ts), written atomically with mode 0600 so that only the spool's owner (the postgres user)
 * can read the token.
 */
import * as fs from 'node:fs';

export interface DaemonAddress {
  readonly port: number;
  readonly token: string;
  readonly pid: number;
}

export function formatAddress(address: DaemonAddress): string {
  return `${address.port} ${address.token} ${address.pid}\n`;
}

export function parseAddress(text: string): DaemonAddress | undefined {
  const [port, token, pid] = text.trim().split(' ');
  const address = { port: Number(port), token, pid: Number(pid) };
  return Number.isInteger(address.port) && address.port > 0 && address.port < 65536 && /^[0-9a-f]{32}$/.test(token ?? '') && Number.isInteger(address.pid)
    ? address
    : undefined;
}

export function readAddress(file: string): DaemonAddress | undefined {
  try {
    return parseAddress(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

export function writeAddress(file: string, address: DaemonAddress): void {
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, formatAddress(address), { mode: 0o600 });
  fs.renameSync(temporary, file);
}

/** Removes `file` only if it still holds `address` (a newer background archiver may have replaced it). */
export function removeAddress(file: string, address: DaemonAddress): void {
  const current = readAddress(file);
  if (current && current.port === address.port && current.token === address.token) fs.rmSync(file, { force: true });
}
