import { createTokenVerifier, type TokenVerifier } from "../auth/verify.js";
import type { Config } from "../config.js";
import { TokenRevocations } from "../domains/token-revocations.js";
import { TenantConnections } from "../limits/tenant-connections.js";
import { TenantRequestRate } from "../limits/tenant-request-rate.js";
import type { Logger } from "../observability/logger.js";
import type { Infrastructure } from "./infrastructure.js";

/** Who may come in, and how much of the node a tenant may hold: tokens, their revocations, the per-tenant limits. */
export interface Access {
  revocations: TokenRevocations;
  verifyToken: TokenVerifier;
  connections: TenantConnections;
  requestRate: TenantRequestRate;
}

export function wireAccess(config: Config, infra: Infrastructure, logger: Logger): Access {
  const { keys, redis, limitsRedis } = infra;
  const revocations = new TokenRevocations(redis, infra.redisClient("revocations"), keys, logger, {
    retentionMs: (config.jwt.maxLifetimeS + config.jwt.clockToleranceS) * 1000,
    maxPerTenant: config.limits.maxRevocationsPerTenant,
  });
  const connections = new TenantConnections(limitsRedis, keys, logger, {
    nodeId: config.nodeId,
    limit: config.limits.maxConnectionsPerTenant,
    // A dead node's sockets stop counting as fast as a dead worker goes offline.
    liveForMs: config.workers.heartbeatTimeoutMs,
  });
  return {
    revocations,
    verifyToken: createTokenVerifier(config.jwt, revocations.list),
    connections,
    requestRate: new TenantRequestRate(limitsRedis, keys, config.limits.restRatePerTenant, logger),
  };
}
