import type { RedisClient } from "../jobs/redis-connection.js";
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { RedisKeys } from "../jobs/redis-keys.js";
import type { Logger } from "../observability/logger.js";

/** The burst allowance (as many requests again as the sustained rate) refills over this many seconds. */
const BURST_WINDOW_S = 10;

/** Refused: `retryInMs` until the tenant's window reopens, and the same in whole seconds (at least 1) for Retry-After. */
export type RateDecision = { allowed: true } | { allowed: false; retryInMs: number; retryAfterS: number };

/**
 * REST_RATE_PER_TENANT: a tenant's requests per second across all nodes, counted in Redis by rate-limiter-flexible.
 * `perSecond` requests in each one-second window, plus a burst allowance of `perSecond` more per ten seconds
 * (BurstyRateLimiter), so a tenant may make twice the rate in one second but not keep it up.
 *
 * Redis unreachable: each limiter falls back to its insuranceLimiter, the same limits in this node's memory, so a
 * tenant keeps being limited (per node, up to nodes × the rate) instead of unlimited or refused outright; the
 * Redis client it is given does not queue commands while disconnected and has a command timeout, so a request
 * never waits on an absent or hung Redis longer than that. A tenant over its limit is refused from memory until
 * the window ends (inMemoryBlockOnConsumed), so a flood costs no Redis round trips.
 */
export class TenantRequestRate {
  private readonly limiter: BurstyRateLimiter;

  constructor(
    redis: RedisClient,
    keys: RedisKeys,
    perSecond: number,
    private readonly logger: Logger,
  ) {
    const limiter = (keyPrefix: string, duration: number): RateLimiterRedis =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix,
        points: perSecond,
        duration,
        rejectIfRedisNotReady: true,
        inMemoryBlockOnConsumed: perSecond + 1,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix, points: perSecond, duration }),
      });
    this.limiter = new BurstyRateLimiter(limiter(keys.restRate, 1), limiter(keys.restRateBurst, BURST_WINDOW_S));
  }

  /** Counts one request of the tenant; a refusal says when it may try again. */
  async take(tenantId: string): Promise<RateDecision> {
    try {
      await this.limiter.consume(tenantId);
      return { allowed: true };
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        return { allowed: false, retryInMs: rejection.msBeforeNext, retryAfterS: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)) };
      }
      // Neither Redis nor the in-memory insurance answered: serve the request rather than fail it over a limit.
      this.logger.warn({ err: rejection instanceof Error ? rejection.message : String(rejection) }, "request rate not checked");
      return { allowed: true };
    }
  }
}
