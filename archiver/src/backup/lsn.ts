/**
 * Log sequence numbers: PostgreSQL's `X/Y` text form (two hexadecimal halves of a 64-bit WAL
 * position), compared and turned into the name of the segment that holds them.
 */

/** An LSN as a bigint, from `16/B374D848`. Throws on anything else. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!match) throw new Error(`${JSON.stringify(text)} is not an LSN (e.g. 0/3000028: two hexadecimal numbers separated by '/')`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** PostgreSQL's text form of an LSN: `16/B374D848`. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function isLsn(text: string): boolean {
  return /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(text.trim());
}

const hex8 = (n: bigint) => n.toString(16).toUpperCase().padStart(8, '0');

/** The name of the segment of `timeline` that holds the byte at `lsn`. */
export function segmentNameOf(timeline: number, lsn: bigint, segmentSize: number): string {
  const segno = lsn / BigInt(segmentSize);
  const perLog = 0x1_0000_0000n / BigInt(segmentSize);
  return `${hex8(BigInt(timeline))}${hex8(segno / perLog)}${hex8(segno % perLog)}`;
}

/**
 * The last segment a recovery must replay to reach `lsn` (an end position, such as a backup's stop
 * LSN): the one holding the byte just before it. A stop LSN at a segment boundary needs the segment
 * before the boundary only.
 */
export function segmentEndingAt(timeline: number, lsn: bigint, segmentSize: number): string {
  return segmentNameOf(timeline, lsn === 0n ? 0n : lsn - 1n, segmentSize);
}

/** The timeline of a segment name. */
export function timelineOf(segmentName: string): number {
  return parseInt(segmentName.slice(0, 8), 16);
}
