#!/usr/bin/env bash
# `npm run import`: generates the typed classes of the custom resources the delivery manifests
# render (Argo CD Application and AppProject; Flux GitRepository and Kustomization) and the
# databases' monitoring renders (the Prometheus operator's PodMonitor and PrometheusRule) into imports/,
# offline, from the CRDs in ../shared/crds, with the pinned cdk8s CLI (scripts/cdk8s-import/).
# imports/ is committed and never edited by hand; run this again when a CRD file changes.
#
# Each CRD gets its own module name (NAME:=FILE): the Argo CD CRDs share the API group, and
# without one the second import would overwrite the first. The ApplicationSet CRD is not imported:
# its classes are 3.3 MB of TypeScript (its template embeds the Application schema), which every
# `npm run synth` would type-check, and the delivery renders one Application per database instead.
set -euo pipefail
cd "$(dirname "$0")/.."
crds=${CRD_DIR:-../shared/crds}
bash scripts/install-packages.sh scripts/cdk8s-import
cli=scripts/cdk8s-import/node_modules/.bin/cdk8s
rm -rf imports.new
for spec in \
  "argocd-application:=$crds/argocd-application-crd.yaml" \
  "argocd-appproject:=$crds/argocd-appproject-crd.yaml" \
  "flux-gitrepository:=$crds/flux-source.toolkit.fluxcd.io_gitrepositories.yaml" \
  "flux-kustomization:=$crds/flux-kustomize.toolkit.fluxcd.io_kustomizations.yaml" \
  "podmonitor:=$crds/monitoring.coreos.com_podmonitors.yaml" \
  "prometheusrule:=$crds/monitoring.coreos.com_prometheusrules.yaml"; do
  "$cli" import --no-check-upgrade --save false --language typescript --output imports.new "$spec" >&2
done
rm -rf imports
mv imports.new imports
ls imports
