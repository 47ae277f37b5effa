import type { NextFunction, Request, Response } from "express";
import type { Principal } from "../auth/principal.js";
import { can } from "../auth/principal.js";
import { bearerToken, type TokenVerifier } from "../auth/verify.js";
import { ForbiddenError } from "../errors.js";
import type { Permission } from "../protocol/permissions.js";

declare module "express-serve-static-core" {
  interface Locals {
    principal?: Principal;
  }
}

/** Verifies `Authorization: Bearer <jwt>` and stores the principal in res.locals. */
export function authenticate(verify: TokenVerifier) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.locals.principal = verify(bearerToken(req.headers.authorization));
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
