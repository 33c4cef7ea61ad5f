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
  /** Delete everything, volume claims included, and the WAL archive too. */
  WIPE_OUT = 'WipeOut',
}

export const TERMINATION_POLICIES: readonly string[] = Object.values(TerminationPolicy);
