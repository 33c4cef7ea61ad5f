/**
 * Every Argo CD and Flux object GitOpsDelivery renders, against the openAPIV3Schema of its
 * CustomResourceDefinition in ../shared/crds (unknown fields are errors, as the API server would
 * drop them); every other object of the app against the Kubernetes 1.27 schemas.
 */
import { Duration } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../app';
import { GitOpsDelivery } from '../../constructs';
import { CrdSchema } from '../../testkit/crd-schema';
import { KubernetesSchema } from '../../testkit/kubernetes-schema';
import { KubeObject, testOutdir } from './fixtures';
import { REPO, environment, gitOpsApp } from './gitops-fixtures';

const crds = new CrdSchema();
const core = new KubernetesSchema();

/** Every object of an app's charts, synthesized in memory. */
function objectsOf(app: ReturnType<typeof gitOpsApp>): KubeObject[] {
  return app.charts.flatMap((chart) => chart.toJson() as KubeObject[]);
}

describe('The Argo CD and Flux objects validate against their CRDs', () => {
  it('the app in app.ts: each object against its CRD or the Kubernetes schemas, none left unchecked', () => {
    const objects = objectsOf(buildApp(testOutdir()) as ReturnType<typeof gitOpsApp>);
    const custom = objects.filter((o) => crds.knows(o));
    expect([...new Set(custom.map((o) => `${o.apiVersion} ${o.kind}`))].sort()).toStrictEqual([
      'argoproj.io/v1alpha1 AppProject',
      'argoproj.io/v1alpha1 Application',
      'kustomize.toolkit.fluxcd.io/v1 Kustomization',
      'monitoring.coreos.com/v1 PodMonitor',
      'monitoring.coreos.com/v1 PrometheusRule',
      'source.toolkit.fluxcd.io/v1 GitRepository',
    ]);
    expect(custom.flatMap((o) => crds.validate(o))).toStrictEqual([]);
    expect(objects.filter((o) => !crds.knows(o) && !core.knows(o)).map((o) => `${o.apiVersion} ${o.kind}`)).toStrictEqual([]);
    expect(objects.filter((o) => core.knows(o)).flatMap((o) => core.validate(o))).toStrictEqual([]);
  });

  it('with every option set: another cluster by name, no prune or self-heal, allowed kinds, Flux secret, interval and dependencies', () => {
    const app = gitOpsApp();
    const prod = environment(app, 'prod', { cluster: { name: 'prod-eu' }, argoCd: { destinationNamespace: 'shop' }, flux: { dependsOn: ['postgres-secrets'] } });
    new GitOpsDelivery(app, 'delivery', {
      repoURL: 'ssh://git@git.example.com/team-a/databases.git',
      targetRevision: 'release/2026',
      path: 'deploy/dist',
      environments: [prod],
      argoCd: { namespace: 'gitops', prune: false, selfHeal: false },
      flux: { namespace: 'flux', prune: false, interval: Duration.seconds(90), secretName: 'repo-ssh' },
    });
    const custom = objectsOf(app).filter((o) => crds.knows(o));
    // The delivery's 8, and each database's PodMonitor and PrometheusRule.
    expect(custom.filter((o) => o.apiVersion !== 'monitoring.coreos.com/v1')).toHaveLength(8);
    expect(custom.flatMap((o) => crds.validate(o))).toStrictEqual([]);
  });
});

describe('The CRD validator catches injected errors', () => {
  const app = gitOpsApp();
  new GitOpsDelivery(app, 'delivery', { repoURL: REPO, environments: [environment(app, 'dev')] });
  const pick = (kind: string) => structuredClone(objectsOf(app).find((o) => o.kind === kind)!);

  it('fails a misspelt field', () => {
    const application = pick('Application');
    application.spec.sycnPolicy = {};
    expect(crds.validate(application)).toStrictEqual(['Application/dev-postgres: /spec must NOT have additional properties (sycnPolicy)']);
  });

  it('fails a missing required field and a wrong type', () => {
    const kustomization = pick('Kustomization');
    delete kustomization.spec.sourceRef;
    kustomization.spec.prune = 'yes';
    expect(crds.validate(kustomization)).toStrictEqual([
      "Kustomization/dev-postgres-delivery: /spec must have required property 'sourceRef'",
      'Kustomization/dev-postgres-delivery: /spec/prune must be boolean',
    ]);
  });

  it('fails a value outside the CRD\'s pattern: a scp-like URL in a GitRepository', () => {
    const source = pick('GitRepository');
    source.spec.url = 'git@git.example.com:team-a/databases.git';
    expect(crds.validate(source)).toStrictEqual(['GitRepository/dev-postgres: /spec/url must match pattern "^(http|https|ssh)://.*$"']);
  });

  it('knows no kind its CRDs do not define', () => {
    expect(crds.validate({ apiVersion: 'argoproj.io/v1alpha1', kind: 'ApplicationSets', metadata: { name: 'x' } })).toStrictEqual([
      'ApplicationSets/x: no CRD for apiVersion argoproj.io/v1alpha1 kind ApplicationSets',
    ]);
  });
});
