import type { NextFunction, Request, Response } from "express";
import type { Principal } from "../auth/principal.js";
import { can } from "../auth/principal.js";
import { bearerToken, type TokenVerifier } from "../auth/verify.js";
import { ForbiddenError } from "../errors.js";
import { currentRequest, type RequestContext } from "../observability/request-context.js";
import type { Permission } from "../protocol/permissions.js";

declare module "express-serve-static-core" {
  interface Locals {
    principal?: Principal;
    /** The request's log context (src/observability/request-context.ts). */
    requestContext?: RequestContext;
  }
}

/** Verifies `Authorization: Bearer <jwt>` and stores the principal in res.locals. */
export function authenticate(verify: TokenVerifier) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const principal = verify(bearerToken(req.headers.authorization));
    res.locals.principal = principal;
    // From here on, this request's log lines also name who made it.
    const context = currentRequest();
    if (context) {
      context.tenant = principal.tenantId;
      context.sub = principal.subject;
    }
    next();
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal;
  if (!principal) throw new Error("route mounted without authenticate()");
  return principal;
}

export function requirePermission(res: Response, permission: Permission): Principal {
  const principal = principalOf(res);
  if (!can(principal, permission)) throw new ForbiddenError(`missing permission ${permission}`);
  return principal;
}
