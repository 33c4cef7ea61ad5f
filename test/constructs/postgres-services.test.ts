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

  it('routes the standby Service to every ready member (the primary too: no label tells pod 0 apart)', () => {
    expect(find(objects, 'Service', 'wal-postgres-standby').spec).toStrictEqual({ type: 'ClusterIP', selector, ports: [port] });
    expect(db.standbyServiceName).toBe('wal-postgres-standby');
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
