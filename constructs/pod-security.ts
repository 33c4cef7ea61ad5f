/**
 * The security settings of every pod that runs PostgreSQL or the archiver (Kubernetes' "restricted"
 * Pod Security Standard): the postgres user, no privilege escalation, no capabilities, a read-only
 * root filesystem and the runtime's default seccomp profile. Functions that return a fresh object
 * each time, so that no two containers share one.
 */
import { k8s } from 'cdk8s-plus-27';
import { POSTGRES_UID } from './pod-layout';

/** The pod's security context: uid/gid 999 (the official image's postgres user), never root. */
export function podSecurityContext(): k8s.PodSecurityContext {
  return {
    runAsUser: POSTGRES_UID,
    runAsGroup: POSTGRES_UID,
    runAsNonRoot: true,
    fsGroup: POSTGRES_UID,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Each container's security context: no privileges, no capabilities, nothing written outside its volumes. */
export function containerSecurityContext(): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
  };
}
