/**
 * The contract between the constructs (which render Kubernetes YAML) and the archiver (which
 * PostgreSQL runs inside the pod): environment names, paths, commands, exit codes, the spool and
 * the archive's layout, and the line protocol of the background archiver. Both sides import these
 * names from here, the launcher scripts get them at build time (archiver/scripts/build.ts), and
 * contract tests fail when one side stops following them.
 *
 * Zero dependencies, no I/O: the cdk8s app imports it, and it must never pull the archiver's
 * cloud SDKs into synthesis.
 */
export * from './archive-layout';
export * from './config-mount';
export * from './credentials';
export * from './duration';
export * from './environment';
export * from './exit-codes';
export * from './installation';
export * from './locations';
export * from './metrics';
export * from './only-when-gone';
export * from './pod-role';
export * from './protocol';
export * from './recovery';
export * from './spool';
