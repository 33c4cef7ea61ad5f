/** TerminationPolicy (constructs/termination-policy.ts): what removing a database from Git deletes. */
import { describe, expect, it } from 'vitest';
import { TerminationPolicy } from '../../constructs';
import { find, seedProps, synthDatabase } from './fixtures';

const statefulSetOf = (terminationPolicy?: TerminationPolicy) =>
  find(synthDatabase(seedProps({ terminationPolicy })).objects, 'StatefulSet', 'wal-postgres');

describe('TerminationPolicy', () => {
  it('deletes the volume claims with the StatefulSet under the default Delete policy', () => {
    const statefulSet = statefulSetOf();
    expect(statefulSet.spec.persistentVolumeClaimRetentionPolicy).toStrictEqual({ whenDeleted: 'Delete', whenScaled: 'Retain' });
    expect(statefulSet.metadata.annotations).toStrictEqual({ 'archived-postgres/termination-policy': 'Delete', 'archived-postgres/postgres-major-version': '15' });
  });

  it('keeps the volume claims and tells Argo CD and Flux not to prune under DoNotTerminate', () => {
    const { objects } = synthDatabase(seedProps({ terminationPolicy: TerminationPolicy.DO_NOT_TERMINATE }));
    expect(find(objects, 'StatefulSet', 'wal-postgres').spec.persistentVolumeClaimRetentionPolicy).toStrictEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
    expect(objects).toHaveLength(14);
    for (const object of objects) {
      expect(object.metadata.annotations).toMatchObject({
        'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false',
        'kustomize.toolkit.fluxcd.io/prune': 'disabled',
      });
    }
  });

  it('keeps the claims of members scaled away in Git or of a removed database under Halt and DoNotTerminate only', () => {
    const claimAnnotations = (terminationPolicy: TerminationPolicy) => synthDatabase(seedProps({ terminationPolicy })).objects
      .filter((o) => o.kind === 'PersistentVolumeClaim').map((o) => o.metadata.annotations);
    const neverPruned = { 'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false', 'kustomize.toolkit.fluxcd.io/prune': 'disabled' };
    expect(claimAnnotations(TerminationPolicy.HALT)).toStrictEqual([neverPruned, neverPruned]);
    expect(claimAnnotations(TerminationPolicy.DO_NOT_TERMINATE)).toStrictEqual([neverPruned, neverPruned]);
    expect(claimAnnotations(TerminationPolicy.DELETE)).toStrictEqual([undefined, undefined]);
    expect(claimAnnotations(TerminationPolicy.WIPE_OUT)).toStrictEqual([undefined, undefined]);
  });

  it('keeps the volume claims under Halt and deletes them under WipeOut', () => {
    expect(statefulSetOf(TerminationPolicy.HALT).spec.persistentVolumeClaimRetentionPolicy.whenDeleted).toBe('Retain');
    expect(statefulSetOf(TerminationPolicy.WIPE_OUT).spec.persistentVolumeClaimRetentionPolicy.whenDeleted).toBe('Delete');
  });

  it('annotates the objects for pruning under DoNotTerminate only (under Halt, the claims alone)', () => {
    for (const policy of [TerminationPolicy.DELETE, TerminationPolicy.HALT, TerminationPolicy.WIPE_OUT]) {
      const { objects } = synthDatabase(seedProps({ terminationPolicy: policy }));
      expect(objects.filter((o) => o.metadata.annotations?.['kustomize.toolkit.fluxcd.io/prune'] !== undefined).map((o) => o.kind))
        .toStrictEqual(policy === TerminationPolicy.HALT ? ['PersistentVolumeClaim', 'PersistentVolumeClaim'] : []);
    }
  });

  it('deletes the archive under WipeOut only: an Argo CD PostDelete hook Job (see wipe-out-job.test.ts)', () => {
    for (const policy of Object.values(TerminationPolicy)) {
      const jobs = synthDatabase(seedProps({ terminationPolicy: policy })).objects.filter((o) => o.kind === 'Job');
      expect(jobs.map((o) => `${o.metadata.name} ${o.metadata.annotations?.['argocd.argoproj.io/hook']}`)).toStrictEqual(policy === TerminationPolicy.WIPE_OUT ? ['wal-postgres-wipeout PostDelete'] : []);
    }
  });
});
