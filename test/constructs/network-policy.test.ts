/**
 * The database's NetworkPolicy (constructs/network-policy.ts), rendered only when asked for:
 * PostgreSQL from the client namespaces and the members, the metrics port from the monitoring
 * namespace when monitoring is on; out: DNS, the members, the archive's storage.
 */
import { describe, expect, it } from 'vitest';
import { ArchiveStorage } from '../../constructs';
import { databaseChart, find, seedProps, synth, synthDatabase } from './fixtures';

const SELECTOR = { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' };
const inNamespace = (namespace: string) => ({ matchLabels: { 'kubernetes.io/metadata.name': namespace } });
const DNS = {
  to: [{ namespaceSelector: inNamespace('kube-system'), podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
};
const MEMBERS = { to: [{ podSelector: { matchLabels: SELECTOR } }], ports: [{ protocol: 'TCP', port: 5432 }] };

const policyOf = (props: Parameters<typeof seedProps>[0]) => find(synthDatabase(seedProps(props)).objects, 'NetworkPolicy', 'wal-postgres');

describe('DatabaseNetworkPolicy', () => {
  it('renders none unless asked for', () => {
    expect(synthDatabase(seedProps()).objects.filter((o) => o.kind === 'NetworkPolicy')).toStrictEqual([]);
  });

  it('with the defaults: PostgreSQL from its own namespace and its members, metrics from "monitoring"; out: DNS, the members, any address on 443', () => {
    const policy = policyOf({ networkPolicy: {} });
    expect(policy.metadata).toStrictEqual({ name: 'wal-postgres', namespace: 'demo', labels: { ...SELECTOR, 'app.kubernetes.io/component': 'database', 'app.kubernetes.io/managed-by': 'cdk8s' } });
    expect(policy.spec).toStrictEqual({
      podSelector: { matchLabels: SELECTOR },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        { from: [{ namespaceSelector: inNamespace('demo'), podSelector: {} }, { podSelector: { matchLabels: SELECTOR } }], ports: [{ protocol: 'TCP', port: 5432 }] },
        { from: [{ namespaceSelector: inNamespace('monitoring') }], ports: [{ protocol: 'TCP', port: 9188 }] },
      ],
      egress: [DNS, MEMBERS, { to: [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }], ports: [{ protocol: 'TCP', port: 443 }] }],
    });
  });

  it('clients from chosen namespaces and pods; no metrics rule without monitoring; a MinIO in the cluster by namespace, on its endpoint\'s port', () => {
    const policy = policyOf({
      archiver: { storage: ArchiveStorage.s3({ storageSecretName: 's3-secret', endpoint: 'http://minio.storage.svc:9000', bucket: 'kubedb' }) },
      monitoring: { enabled: false },
      networkPolicy: { clientNamespaces: ['team-a', 'team-b'], clientPodSelector: { app: 'orders-api' }, archiveEgress: { namespaces: ['storage'] } },
    });
    expect(policy.spec.ingress).toStrictEqual([
      {
        from: [
          { namespaceSelector: inNamespace('team-a'), podSelector: { matchLabels: { app: 'orders-api' } } },
          { namespaceSelector: inNamespace('team-b'), podSelector: { matchLabels: { app: 'orders-api' } } },
          { podSelector: { matchLabels: SELECTOR } },
        ],
        ports: [{ protocol: 'TCP', port: 5432 }],
      },
    ]);
    expect(policy.spec.egress[2]).toStrictEqual({ to: [{ namespaceSelector: inNamespace('storage') }], ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 9000 }] });
  });

  it('storage by CIDR on given ports, and the monitoring namespace given', () => {
    const policy = policyOf({ networkPolicy: { monitoringNamespace: 'prometheus', archiveEgress: { cidrs: ['10.20.0.0/16', '2001:db8::/32'], ports: [9000] } } });
    expect(policy.spec.ingress[1].from).toStrictEqual([{ namespaceSelector: inNamespace('prometheus') }]);
    expect(policy.spec.egress[2]).toStrictEqual({ to: [{ ipBlock: { cidr: '10.20.0.0/16' } }, { ipBlock: { cidr: '2001:db8::/32' } }], ports: [{ protocol: 'TCP', port: 9000 }] });
  });

  it('is one of the database\'s objects: addAnnotation reaches it', () => {
    const { chart, db } = databaseChart(seedProps({ networkPolicy: {} }));
    db.addAnnotation('example.com/reviewed', 'yes');
    expect(find(synth(chart), 'NetworkPolicy', 'wal-postgres').metadata.annotations).toMatchObject({ 'example.com/reviewed': 'yes' });
  });

  it('fails for input that cannot work, naming the construct path, the field, the value and the fix', () => {
    const { app } = databaseChart(seedProps({
      networkPolicy: {
        clientNamespaces: ['Team_A'],
        clientPodSelector: { 'bad key!': 'x' },
        monitoringNamespace: '',
        archiveEgress: { cidrs: ['s3.amazonaws.com'], ports: [0], namespaces: [] },
      },
    }));
    expect(() => app.synth()).toThrow(
      /test\/wal-postgres\/NetworkPolicy[\s\S]*networkPolicy\.clientNamespaces\[0\]: "Team_A" is not a valid namespace[\s\S]*networkPolicy\.clientPodSelector: "bad key!": "x" is not a Kubernetes label[\s\S]*networkPolicy\.monitoringNamespace: "" is not a valid namespace[\s\S]*networkPolicy\.archiveEgress\.namespaces: \[\] is not a non-empty list[\s\S]*networkPolicy\.archiveEgress\.cidrs\[0\]: "s3\.amazonaws\.com" is not a CIDR: .*NetworkPolicy takes no host names[\s\S]*networkPolicy\.archiveEgress\.ports\[0\]: 0 is not a TCP port from 1 to 65535/,
    );
  });
});
