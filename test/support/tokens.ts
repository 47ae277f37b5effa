import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import type { Permission } from "../../src/protocol/permissions.js";
import { TEST_JWT_SECRET } from "./env.js";

export interface TokenOptions {
  tenant: string;
  permissions?: Permission[];
  sub?: string;
  poolId?: string;
  /** Seconds until expiry; negative for an already expired token. */
  ttl?: number;
  /** The token's `jti` (what revokes it alone); random by default, like `npm run token`. */
  jti?: string;
  secret?: string;
  extra?: Record<string, unknown>;
}

export function mintToken(options: TokenOptions): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign(
    {
      sub: options.sub ?? "test-user",
      tenant_id: options.tenant,
      permissions: options.permissions ?? ["admin"],
      ...(options.poolId ? { pool_id: options.poolId } : {}),
      iat: now,
      exp: now + (options.ttl ?? 3600),
      jti: options.jti ?? randomUUID(),
      ...options.extra,
    },
    options.secret ?? TEST_JWT_SECRET,
    { algorithm: "HS256" },
  );
}
