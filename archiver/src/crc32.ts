/**
 * CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG): the checksum of every archived WAL
 * segment and of every file of a base backup.
 *
 * Computed by @node-rs/crc32 (crc32fast: PCLMULQDQ on x86-64, the CRC instructions on arm64),
 * which measured ~10 GB/s here against ~3–4 GB/s for node:zlib's crc32 — ~3 ms of CPU saved per
 * 16 MiB segment on this machine's slow cores, and ~0.2 s per GiB restored. The values are the
 * same bytes for bytes (a test pins it), so objects written by either read with the other.
 * Where its prebuilt binary is missing (a platform napi-rs does not build for), node:zlib's
 * crc32 does the same work, slower.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';

type Crc32 = (data: Uint8Array, initial?: number) => number;

function load(): { crc32: Crc32; implementation: 'simd' | 'zlib' } {
  try {
    const native = require('@node-rs/crc32') as { crc32: (input: Uint8Array, initialState?: number) => number };
    return { crc32: (data, initial = 0) => native.crc32(data, initial), implementation: 'simd' };
  } catch {
    return { crc32: (data, initial = 0) => zlibCrc32(data, initial), implementation: 'zlib' };
  }
}

const loaded = load();

/** The CRC-32 of `data`, continuing from `initial` (the CRC of what came before it). */
export const crc32: Crc32 = loaded.crc32;

/** Which implementation computes it: 'simd' (@node-rs/crc32) or 'zlib' (its binary is missing). */
export const CRC32_IMPLEMENTATION = loaded.implementation;
