/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG): the checksum of every archived WAL
 * segment and of every file of a base backup.
 *
 * Computed by @node-rs/crc32 (crc32fast: PCLMULQDQ on x86-64, the CRC instructions on arm64),
 * which measured ~10 GB/s here against ~3–4 GB/s for node:zlib's crc32 — ~3 ms of CPU saved per
 * 16 MiB segment on this machine's slow cores, and ~0.2 s per GiB restored. The values are the
 * same bytes for bytes (a test pins it), so objects written by either read with the other.
 *
 * Loaded at the first checksum, not at start-up: the archiver starts once per WAL segment, and
 * most of its commands never compute one. On glibc Linux the platform's binary is required
 * directly (~2.5 ms): the package's own loader first tells glibc from musl, by reading
 * /usr/bin/ldd or, where there is none (the archiver's image), by a process report (~5 ms more).
 * Where no binary loads (a platform napi-rs does not build for), node:zlib's crc32 does the same
 * work, slower.
 */
type Crc32 = (data: Uint8Array, initial?: number) => number;
type Native = { crc32(input: Uint8Array, initialState?: number): number };

let loaded: { readonly crc32: Crc32; readonly implementation: 'simd' | 'zlib' } | undefined;

function load(): NonNullable<typeof loaded> {
  const candidates: (() => Native)[] = [
    // The build ships this one (scripts/build.ts NATIVE); required by name so that the bundler keeps it external.
    ...(process.platform === 'linux' && process.arch === 'x64' ? [() => require('@node-rs/crc32-linux-x64-gnu') as Native] : []),
    () => require('@node-rs/crc32') as Native,
  ];
  for (const candidate of candidates) {
    try {
      const native = candidate();
      return { crc32: (data, initial = 0) => native.crc32(data, initial), implementation: 'simd' };
    } catch {
      // the next one
    }
  }
  const { crc32: zlibCrc32 } = require('node:zlib') as typeof import('node:zlib');
  return { crc32: (data, initial = 0) => zlibCrc32(data, initial), implementation: 'zlib' };
}

/** The CRC-32 of `data`, continuing from `initial` (the CRC of what came before it). */
export function crc32(data: Uint8Array, initial = 0): number {
  return (loaded ??= load()).crc32(data, initial);
}

/** Which implementation computes it: 'simd' (@node-rs/crc32) or 'zlib' (no binary of it loads here). */
export function crc32Implementation(): 'simd' | 'zlib' {
  return (loaded ??= load()).implementation;
}
