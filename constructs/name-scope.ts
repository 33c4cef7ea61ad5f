/**
 * Name scopes: the part of the construct tree whose objects share one cluster, so that two of its
 * objects with the same kind, namespace and name would be one object. The app is one by default;
 * an Environment is one of its own (its databases run in their own cluster or namespaces), so
 * `dev/demo/wal-postgres` and `prod/demo/wal-postgres` are two databases, not a collision.
 */
import { IConstruct } from 'constructs';

const NAME_SCOPE = Symbol.for('archived-postgres.name-scope');

/** Makes `scope` a name scope: its objects are checked for collisions among themselves only. */
export function markNameScope(scope: IConstruct): void {
  (scope as unknown as Record<symbol, boolean>)[NAME_SCOPE] = true;
}

/** The innermost name scope that holds `construct`: its closest marked ancestor, else the app. */
export function nameScopeOf(construct: IConstruct): IConstruct {
  const marked = construct.node.scopes.slice().reverse().find((s) => (s as unknown as Record<symbol, boolean>)[NAME_SCOPE] === true);
  return marked ?? construct.node.root;
}
