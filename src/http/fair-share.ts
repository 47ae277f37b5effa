import type { NextFunction, Request, Response } from "express";
import type { TenantFairShare } from "../limits/tenant-fair-share.js";
import { principalOf } from "./authenticate.js";

/**
 * Each authenticated request holds a place in its tenant's share of the node (TenantFairShare) from here until its
 * response is finished or its connection closed: a tenant with a hundred requests in flight has a few of them
 * running and the rest waiting in its own queue, while another tenant's request starts at the next free place.
 * A request whose client left while it waited is not run.
 */
export function tenantFairShare(share: TenantFairShare) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const { tenantId } = principalOf(res);
    let admitted: Promise<void> | void;
    try {
      admitted = share.admit(tenantId);
    } catch (error) {
      return next(error);
    }
    const begin = (): void => {
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        share.done(tenantId);
      };
      res.once("finish", release);
      res.once("close", release);
      if (req.destroyed) return release();
      next();
    };
    if (admitted) void admitted.then(begin);
    else begin();
  };
}
