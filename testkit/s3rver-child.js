'use strict';
// Child process entry for testkit/s3-server.ts: runs one s3rver 3.7.1 on 127.0.0.1 so that
// the server has its own core, can be killed (crash tests), paused with SIGSTOP (hung-server tests)
// and restarted on the same port with the same data directory.
//
// Plain CommonJS on purpose: started with `node` directly, no TypeScript loader (fast restarts).
// Input: one JSON argument { directory, port, buckets, key?, cert? } (key/cert: PEM file paths).
// Output: over the IPC channel, { ready: true, port } once listening, or { error: message }.
const fs = require('node:fs');
const S3rver = require('s3rver');

async function main() {
  const config = JSON.parse(process.argv[2]);
  const server = new S3rver({
    address: '127.0.0.1',
    port: config.port,
    directory: config.directory,
    silent: true,
    // Path-style requests only (the SDK is configured with forcePathStyle).
    vhostBuckets: false,
    configureBuckets: config.buckets.map((name) => ({ name })),
    ...(config.key && config.cert
      ? { key: fs.readFileSync(config.key), cert: fs.readFileSync(config.cert) }
      : {}),
  });
  const address = await server.run();
  process.send({ ready: true, port: address.port });
}

// Die with the parent: the IPC channel closes when the test process exits or is killed.
process.on('disconnect', () => process.exit(0));

main().catch((error) => {
  process.send({ error: String(error && error.stack ? error.stack : error) });
  process.exitCode = 1;
  process.disconnect();
});
