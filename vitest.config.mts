import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['testkit/global-setup.ts'],
    // Integration tests start real servers (PostgreSQL, s3rver, the GCS emulator) as child
    // processes; forks keep each file's servers and environment apart.
    pool: 'forks',
    // Two files at a time, also on a 2-core machine (vitest's default there is one): most of a
    // file's time is spent waiting on servers, timers and the disk, not on the CPU.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
