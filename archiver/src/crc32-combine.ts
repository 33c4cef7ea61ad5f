/**
 * CRC-32 of a concatenation from the CRC-32s of its pieces, as zlib's crc32_combine does
 * (Node's zlib exposes crc32 but not its combine). A base backup reads a large file as ranges on
 * several threads; each range's CRC-32 is counted where it is read, and the file's checksum in the
 * manifest is combined from them, so that it is the plain CRC-32 of the whole file (what `crc32`
 * or zlib computes over it) whatever the ranges were.
 *
 * The arithmetic is over polynomials modulo the CRC's generator, bit-reflected as zlib's CRC-32
 * is: appending `n` bytes multiplies the CRC so far by x^(8n).
 */

/** The reflected CRC-32 polynomial (zlib, PNG, Ethernet). */
const POLY = 0xedb88320;

/** a × b modulo POLY, both reflected (the top bit is x^0). */
function multiplyModP(a: number, b: number): number {
  let m = 0x80000000;
  let product = 0;
  for (;;) {
    if (a & m) {
      product ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return product >>> 0;
}

/** X2N[k] = x^(2^k) modulo POLY. */
const X2N: number[] = (() => {
  const table: number[] = [];
  let p = 0x40000000; // x^1
  table.push(p);
  for (let k = 1; k < 32; k++) {
    p = multiplyModP(p, p);
    table.push(p);
  }
  return table;
})();

/** x^(n × 2^k) modulo POLY, for a byte count n up to 2^53. */
function xPowerModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multiplyModP(X2N[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** The CRC-32 of A followed by B, from crc32(A), crc32(B) and B's length in bytes. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multiplyModP(xPowerModP(lengthB, 3), crcA >>> 0) ^ (crcB >>> 0)) >>> 0;
}
