import type { NamespaceName } from "../protocol/namespaces.js";
import type { Permission } from "../protocol/permissions.js";

/** Who is calling, as proven by a verified token. The tenant comes only from here. */
export interface Principal {
  tenantId: string;
  subject: string;
  permissions: ReadonlySet<Permission>;
  /** Only for `pools:work` tokens: the one pool this worker may speak for. */
  poolId: string | undefined;
  /** Seconds since the epoch. */
  expiresAt: number;
  /** The token's `iat` (seconds since the epoch), if it has one: revoking a subject refuses tokens issued before. */
  issuedAt: number | undefined;
  /** The token's `jti`, if it has one: what revokes this one token. */
  tokenId: string | undefined;
}

/** `admin` grants every permission of the principal's own tenant, never another tenant's. */
export function can(principal: Principal, permission: Permission): boolean {
  return principal.permissions.has(permission) || principal.permissions.has("admin");
}

export function canRead(principal: Principal, namespace: NamespaceName): boolean {
  return can(principal, `${namespace}:read`);
}
