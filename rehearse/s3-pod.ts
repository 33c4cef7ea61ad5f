/**
 * The S3-compatible server of the rehearsal, in a pod of its own: s3rver (testkit's, the same the
 * tests use) run by the Node of the archiver image, its data in a directory of the rehearsal so
 * that the checks read the bucket's objects from the host and a stopped pod keeps them.
 * TEST INFRASTRUCTURE: it stands in for the object store a real cluster archives to.
 */
import * as path from 'node:path';
import { ROOT } from '../testkit/archiver';
import type { KubeObject, RenderedPod } from './pod-rendering';

/** The port s3rver listens on in its pod. */
export const S3_PORT = 9000;

const SERVER_SCRIPT = `'use strict';
// s3rver on every address of the pod, its data in /data, the buckets of S3_BUCKETS.
const S3rver = require('s3rver');
new S3rver({
  address: '0.0.0.0',
  port: ${S3_PORT},
  directory: '/data',
  silent: false,
  vhostBuckets: false,
  configureBuckets: process.env.S3_BUCKETS.split(',').map((name) => ({ name })),
}).run().then(() => console.log('s3rver listening on ${S3_PORT}'), (error) => { console.error(error); process.exit(1); });
`;

/** The S3 pod, for PodmanCluster.play: `image` is one with Node at /archiver/bin/node (the archiver image). */
export function renderS3Pod(image: string, buckets: readonly string[], directory: string): RenderedPod & { readonly dataDirectory: string } {
  const scriptDirectory = path.join(directory, 'volumes/script');
  const dataDirectory = path.join(directory, 'volumes/data');
  const pod: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 's3' },
    spec: {
      restartPolicy: 'OnFailure',
      containers: [{
        name: 's3rver',
        image,
        // s3rver's continuation tokens use DES (testkit/s3-server.ts).
        command: ['/archiver/bin/node', '--openssl-legacy-provider', '/s3/app/server.js'],
        env: [{ name: 'S3_BUCKETS', value: buckets.join(',') }, { name: 'NODE_PATH', value: '/s3/node_modules' }],
        securityContext: { runAsUser: 999, runAsGroup: 999 },
        volumeMounts: [
          { name: 'script', mountPath: '/s3/app', readOnly: true },
          { name: 'modules', mountPath: '/s3/node_modules', readOnly: true },
          { name: 'data', mountPath: '/data' },
        ],
      }],
      volumes: [
        { name: 'script', hostPath: { path: scriptDirectory, type: 'Directory' } },
        { name: 'modules', hostPath: { path: path.join(ROOT, 'testkit/node_modules'), type: 'Directory' } },
        { name: 'data', hostPath: { path: dataDirectory, type: 'Directory' } },
      ],
    },
  };
  return {
    pod,
    claims: [],
    directories: [
      { volume: 'script', path: scriptDirectory, kind: 'files', files: { 'server.js': { content: SERVER_SCRIPT, mode: 0o444 } }, group: 999 },
      { volume: 'data', path: dataDirectory, kind: 'empty', group: 999 },
    ],
    probes: [],
    terminationGracePeriodSeconds: 5,
    adaptations: [],
    dataDirectory,
  };
}
