import { k8s } from 'cdk8s-plus-27';

/**
 * What happens to a database's data when it is removed from Git and the GitOps tool prunes it.
 * The names and meanings follow KubeDB's `spec.terminationPolicy`; without an operator they are
 * rendered into the objects themselves.
 */
export enum TerminationPolicy {
  /**
   * The GitOps tool must never delete the objects: they are annotated so that Argo CD
   * (`argocd.argoproj.io/sync-options: Delete=false`) and Flux
   * (`kustomize.toolkit.fluxcd.io/prune: disabled`) skip them when pruning, and the volume claims
   * are retained.
   */
  DO_NOT_TERMINATE = 'DoNotTerminate',
  /** Delete the StatefulSet and Services but keep the volume claims (data) and the archive. */
  HALT = 'Halt',
  /** Delete everything in the cluster, volume claims included; keep the WAL archive. */
  DELETE = 'Delete',
  /**
   * Delete everything, volume claims included, and the WAL archive too: an Argo CD PostDelete hook
   * Job (WipeOutJob) that deletes the archive only once the StatefulSet and its pod 0 are gone.
   */
  WIPE_OUT = 'WipeOut',
}

export const TERMINATION_POLICIES: readonly string[] = Object.values(TerminationPolicy);

/**
 * What the StatefulSet's controller does with the volume claims. Scaling down keeps a standby's
 * volume under every policy: scaling up again resumes it instead of re-cloning.
 */
export function volumeClaimRetention(policy: TerminationPolicy): k8s.StatefulSetPersistentVolumeClaimRetentionPolicy {
  const keepData = policy === TerminationPolicy.DO_NOT_TERMINATE || policy === TerminationPolicy.HALT;
  return { whenDeleted: keepData ? 'Retain' : 'Delete', whenScaled: 'Retain' };
}

/** The annotations every object of a database carries under `policy`: DoNotTerminate tells Argo CD and Flux never to prune it. */
export function pruneAnnotations(policy: TerminationPolicy): Record<string, string> {
  if (policy !== TerminationPolicy.DO_NOT_TERMINATE) return {};
  return {
    'argocd.argoproj.io/sync-options': 'Delete=false',
    'kustomize.toolkit.fluxcd.io/prune': 'disabled',
  };
}
