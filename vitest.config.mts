import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['testkit/global-setup.ts'],
    // Integration tests start real servers (PostgreSQL, s3rver, the GCS emulator) as child
    // processes; forks keep each file's servers and environment apart.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
