import type { NextFunction, Request, Response } from "express";
import { NotFoundError } from "../../errors.js";
import { ID_PATTERN } from "../../protocol/rooms.js";

/**
 * `router.param("id", resourceId("task"))`: an id outside the id grammar (the one room names use) names nothing,
 * so it is a 404 before any query. Without this, a NUL character in a path id ("%00") reached PostgreSQL, which
 * cannot encode it, and became a 500.
 */
export function resourceId(what: string) {
  return (_req: Request, _res: Response, next: NextFunction, id: unknown): void => {
    next(typeof id === "string" && ID_PATTERN.test(id) ? undefined : new NotFoundError(what));
  };
}
