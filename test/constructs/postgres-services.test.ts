/** PostgresServices (constructs/postgres-services.ts): the read-write, read-only and governing Services. */
import { describe, expect, it } from 'vitest';
import { find, seedProps, synthDatabase } from './fixtures';

describe('PostgresServices, given the seed example', () => {
  const { db, objects } = synthDatabase(seedProps());
  const selector = { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'wal-postgres' };
  const port = { name: 'postgres', port: 5432, targetPort: 'postgres', protocol: 'TCP' };

  it('routes the primary Service to pod 0 only', () => {
    expect(find(objects, 'Service', 'wal-postgres').spec).toStrictEqual({
      type: 'ClusterIP',
      selector: { ...selector, 'statefulset.kubernetes.io/pod-name': 'wal-postgres-0' },
      ports: [port],
    });
    expect(db.primaryServiceName).toBe('wal-postgres');
  });

  it('routes the primary Service by pod name, never by the role label a sidecar patches', () => {
    expect(find(objects, 'Service', 'wal-postgres').spec.selector).not.toHaveProperty(['archived-postgres/role']);
  });

  it('routes the standby Service to the ready members labelled standby only: never to a server that accepts writes', () => {
    expect(find(objects, 'Service', 'wal-postgres-standby').spec).toStrictEqual({
      type: 'ClusterIP',
      selector: { ...selector, 'archived-postgres/role': 'standby' },
      ports: [port],
    });
    expect(db.standbyServiceName).toBe('wal-postgres-standby');
  });

  it('never renders the role label on the pod template: a new pod joins the standby Service only once its sidecar found it in recovery', () => {
    const template = find(objects, 'StatefulSet', 'wal-postgres').spec.template;
    expect(template.metadata.labels).not.toHaveProperty(['archived-postgres/role']);
    // The StatefulSet's selector neither: a label the pods change must never be part of it.
    expect(find(objects, 'StatefulSet', 'wal-postgres').spec.selector.matchLabels).toStrictEqual(selector);
  });

  it('governs the pods with a headless Service that publishes not-ready pods', () => {
    const governing = find(objects, 'Service', 'wal-postgres-pods');
    expect(find(objects, 'StatefulSet', 'wal-postgres').spec.serviceName).toBe('wal-postgres-pods');
    expect(governing.spec.clusterIP).toBe('None');
    expect(governing.spec.publishNotReadyAddresses).toBe(true);
    expect(governing.spec.selector).toStrictEqual(selector);
    expect(db.services.governing.name).toBe(db.governingServiceName);
  });
});
