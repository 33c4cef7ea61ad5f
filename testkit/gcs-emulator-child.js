'use strict';
// Child process entry for testkit/gcs-emulator.ts: runs firebase-tools' Cloud Storage emulator
// (firebase-tools 15.34.2, lib/emulator/storage) on 127.0.0.1 without Java and without a download.
//
// The emulator's CLI starts a Java rules runtime (downloaded on first use) that only Firebase
// client SDK requests need. The GCS JSON API (apis/gcloud.js) goes through the admin storage layer,
// which allows everything, so the rules runtime's start/stop are replaced by no-ops and no rules
// are given (`rules: []`: a resource-based rules manager with no resources, nothing to load).
//
// The instance is registered through EmulatorRegistry.start because the API builds absolute URLs
// (resumable upload `location`, ACL self links) from the registry's host and port.
//
// Blobs go to `${os.tmpdir()}/firebase/storage/blobs`: the parent sets TMPDIR to a directory of
// its own. Input: one JSON argument { port, projectId }. Output over IPC: { ready, port } or { error }.
const path = require('node:path');

const firebaseLib = path.dirname(require.resolve('firebase-tools/package.json')) + '/lib';

async function main() {
  const config = JSON.parse(process.argv[2]);
  const { StorageEmulator } = require(`${firebaseLib}/emulator/storage/index.js`);
  const { StorageRulesRuntime } = require(`${firebaseLib}/emulator/storage/rules/runtime.js`);
  const { EmulatorRegistry } = require(`${firebaseLib}/emulator/registry.js`);
  StorageRulesRuntime.prototype.start = async function start() {};
  StorageRulesRuntime.prototype.stop = async function stop() {};

  const emulator = new StorageEmulator({
    projectId: config.projectId,
    host: '127.0.0.1',
    port: config.port,
    rules: [],
    auto_download: false,
  });
  await EmulatorRegistry.start(emulator);
  process.send({ ready: true, port: config.port });
}

// Die with the parent: the IPC channel closes when the test process exits or is killed.
process.on('disconnect', () => process.exit(0));

main().catch((error) => {
  process.send({ error: String(error && error.stack ? error.stack : error) });
  process.exitCode = 1;
  process.disconnect();
});
