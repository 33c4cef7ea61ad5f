/**
 * The PodMonitor and PrometheusRule a database renders, against the openAPIV3Schema of the
 * Prometheus operator's CRDs (../shared/crds), strictly (unknown fields are errors); the dashboard
 * ConfigMap against the Kubernetes 1.27 schemas.
 */
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { CrdSchema } from '../../testkit/crd-schema';
import { KubernetesSchema } from '../../testkit/kubernetes-schema';
import { find, seedProps, synthDatabase } from './fixtures';

const crds = new CrdSchema();
const kubernetes = new KubernetesSchema();

describe('the monitoring objects validate against their schemas', () => {
  it.each([
    ['defaults', seedProps()],
    ['a schedule, retention, labels, a scrape interval and every threshold', seedProps({
      backups: { schedule: '0 2 * * *', retention: { count: 7, window: Duration.days(14) } },
      monitoring: {
        labels: { release: 'kube-prometheus-stack' },
        scrapeInterval: Duration.seconds(15),
        alerts: { backlogFiles: 32, backlogAge: Duration.minutes(30), volumeUsedPercent: 90, volumeFullWithin: Duration.hours(2), backupMaxAge: Duration.days(2), recoveryWindow: Duration.days(7) },
      },
    })],
  ])('%s', (_name, props) => {
    const objects = synthDatabase(props).objects;
    const custom = objects.filter((o) => crds.knows(o));
    expect(custom.map((o) => o.kind)).toStrictEqual(['PodMonitor', 'PrometheusRule']);
    expect(custom.flatMap((o) => crds.validate(o))).toStrictEqual([]);
    expect(kubernetes.validate(find(objects, 'ConfigMap', 'wal-postgres-dashboard'))).toStrictEqual([]);
  });
});

describe('the CRD validator catches injected errors', () => {
  const objects = synthDatabase(seedProps()).objects;
  const podMonitor = () => structuredClone(find(objects, 'PodMonitor', 'wal-postgres'));
  const rule = () => structuredClone(find(objects, 'PrometheusRule', 'wal-postgres'));

  it('fails a misspelt field', () => {
    const object = podMonitor();
    object.spec.podMetricEndpoints = object.spec.podMetricsEndpoints;
    expect(crds.validate(object)).toStrictEqual(['PodMonitor/wal-postgres: /spec must NOT have additional properties (podMetricEndpoints)']);
  });

  it('fails a wrong type and a missing required field', () => {
    const object = rule();
    object.spec.groups[0].rules[0].for = 5;
    delete object.spec.groups[0].name;
    expect(crds.validate(object)).toStrictEqual(expect.arrayContaining([
      "PrometheusRule/wal-postgres: /spec/groups/0 must have required property 'name'",
      'PrometheusRule/wal-postgres: /spec/groups/0/rules/0/for must be string',
    ]));
  });

  it('fails a value outside the schema\'s pattern', () => {
    const object = podMonitor();
    object.spec.podMetricsEndpoints[0].interval = 'thirty seconds';
    expect(crds.validate(object).join('\n')).toMatch(/\/spec\/podMetricsEndpoints\/0\/interval must match pattern/);
  });
});
