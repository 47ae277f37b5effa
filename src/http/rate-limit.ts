import type { NextFunction, Request, Response } from "express";
import { RateLimitedError } from "../errors.js";
import type { TenantRequestRate } from "../limits/tenant-request-rate.js";
import type { Metrics } from "../observability/metrics.js";
import { principalOf } from "./authenticate.js";

/** A refused request is answered when its tenant may try again, but never later than this. */
const MAX_REFUSAL_DELAY_MS = 1000;
/** Refusals a node holds back at once; beyond that they are answered at once (held ones cost a timer and a socket). */
const MAX_HELD_REFUSALS = 1000;

/**
 * REST_RATE_PER_TENANT for every authenticated /api/v1 request: beyond it, 429 RATE_LIMITED with `Retry-After`
 * (whole seconds). Mounted after authenticate() (the tenant is the verified token's), before the body is read.
 *
 * The 429 is sent when the tenant's window reopens (at most 1 s later), not at once. A client that keeps N requests
 * in flight and sends the next as soon as one is answered would otherwise turn faster refusals into more requests,
 * and keep the node's CPU busy with its refusals while other tenants' requests wait behind them; held, its requests
 * cost no CPU while they wait, and it can make at most N per second. A client that honours Retry-After loses
 * nothing: it would have waited anyway.
 */
export function tenantRateLimit(rate: TenantRequestRate, metrics: Metrics) {
  let held = 0;
  return (_req: Request, res: Response, next: NextFunction): void => {
    const { tenantId } = principalOf(res);
    void rate.take(tenantId).then((decision) => {
      if (decision.allowed) return next();
      metrics.rateLimited.inc({ kind: "rest" });
      res.setHeader("Retry-After", String(decision.retryAfterS));
      const refuse = (): void => next(new RateLimitedError(`too many requests for this tenant; retry in ${decision.retryAfterS} s`));
      if (held >= MAX_HELD_REFUSALS) return refuse();
      held++;
      setTimeout(
        () => {
          held--;
          refuse();
        },
        Math.min(MAX_REFUSAL_DELAY_MS, decision.retryInMs),
      );
    }, next);
  };
}
