/** The NetworkPolicy a database renders, against the Kubernetes 1.27 schemas, strictly. */
import { describe, expect, it } from 'vitest';
import { ArchiveStorage } from '../../constructs';
import { KubernetesSchema } from '../../testkit/kubernetes-schema';
import { find, seedProps, synthDatabase } from './fixtures';

const kubernetes = new KubernetesSchema();

describe('the NetworkPolicy validates against the Kubernetes schema', () => {
  it.each([
    ['the defaults', seedProps({ networkPolicy: {} })],
    ['clients, a pod selector, a MinIO by namespace, no monitoring', seedProps({
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'http://minio.storage.svc:9000', bucket: 'kubedb' }) },
      monitoring: { enabled: false },
      networkPolicy: { clientNamespaces: ['team-a'], clientPodSelector: { app: 'orders-api' }, archiveEgress: { namespaces: ['storage'] } },
    })],
    ['storage by CIDR and port', seedProps({ networkPolicy: { archiveEgress: { cidrs: ['10.20.0.0/16'], ports: [9000] } } })],
  ])('%s', (_name, props) => {
    expect(kubernetes.validate(find(synthDatabase(props).objects, 'NetworkPolicy', 'wal-postgres'))).toStrictEqual([]);
  });

  it('the validator catches an injected error', () => {
    const policy = structuredClone(find(synthDatabase(seedProps({ networkPolicy: {} })).objects, 'NetworkPolicy', 'wal-postgres'));
    policy.spec.egress[0].ports[0].protocl = 'UDP';
    expect(kubernetes.validate(policy).join('\n')).toMatch(/must NOT have additional properties \(protocl\)/);
  });
});
