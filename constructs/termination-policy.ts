import { k8s } from 'cdk8s-plus-27';

/**
 * What happens to a database's data when it is removed from Git and the GitOps tool prunes it.
 * The names and meanings follow KubeDB's `spec.terminationPolicy`; without an operator they are
 * rendered into the objects themselves.
 */
export enum TerminationPolicy {
  /**
   * The GitOps tool must never delete the objects: they are annotated so that Argo CD
   * (`argocd.argoproj.io/sync-options: Prune=false,Delete=false`: neither pruned when removed from
   * Git nor deleted with the Application) and Flux (`kustomize.toolkit.fluxcd.io/prune: disabled`)
   * skip them, and the volume claims are retained.
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
 * What the StatefulSet's controller does with the volume claims. The controller keeps a standby's
 * volume when it scales down under every policy; the claims are rendered too (one per member,
 * see PostgresStatefulSet), so what the GitOps tool does with the claim of a member no longer in
 * Git is `claimAnnotations`'.
 */
export function volumeClaimRetention(policy: TerminationPolicy): k8s.StatefulSetPersistentVolumeClaimRetentionPolicy {
  const keepData = policy === TerminationPolicy.DO_NOT_TERMINATE || policy === TerminationPolicy.HALT;
  return { whenDeleted: keepData ? 'Retain' : 'Delete', whenScaled: 'Retain' };
}

/** Argo CD and Flux never delete an object that carries these, neither when it leaves Git nor when its Application goes. */
const NEVER_PRUNED: Readonly<Record<string, string>> = Object.freeze({
  'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false',
  'kustomize.toolkit.fluxcd.io/prune': 'disabled',
});

/** The annotations every object of a database carries under `policy`: DoNotTerminate tells Argo CD and Flux never to prune it. */
export function pruneAnnotations(policy: TerminationPolicy): Record<string, string> {
  if (policy !== TerminationPolicy.DO_NOT_TERMINATE) return {};
  return { ...NEVER_PRUNED };
}

/**
 * The annotations of each rendered data volume claim under `policy`. Under Halt and DoNotTerminate
 * Argo CD and Flux never delete a claim: not when its member is scaled away in Git, not when the
 * database is removed (the data stays, as the policy says). Under Delete and WipeOut a claim
 * leaves with its member or its database, as any object removed from Git.
 */
export function claimAnnotations(policy: TerminationPolicy): Record<string, string> {
  return policy === TerminationPolicy.HALT || policy === TerminationPolicy.DO_NOT_TERMINATE ? { ...NEVER_PRUNED } : {};
}
