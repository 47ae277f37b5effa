import type { Config } from "../config.js";
import { createDatabase, type Database } from "../db/client.js";
import { withDeadline } from "../dependencies/deadline.js";
import { closeRedis, createRedisClient, type RedisRole } from "../jobs/redis-clients.js";
import { DependencyStatus } from "../dependencies/status.js";
import type { RedisClient } from "../jobs/redis-connection.js";
import { RedisKeys } from "../jobs/redis-keys.js";
import type { Logger } from "../observability/logger.js";
import { createMetrics, type Metrics } from "../observability/metrics.js";

/** What every domain is built on: metrics, Redis keys and connections, the database, and who hears of their outages. */
export interface Infrastructure {
  metrics: Metrics;
  keys: RedisKeys;
  /** REDIS_CLUSTER_NODES is set: keys used together are hash-tagged, pub/sub is sharded. */
  cluster: boolean;
  /** DEPENDENCY_TIMEOUT_MS. */
  deadlineMs: number;
  status: DependencyStatus;
  /**
   * Commands of request paths (and BullMQ's producer side): they fail fast while Redis is away, so /ready and
   * requests answer at once. How each connection behaves is in dependencies/redis-clients.ts.
   */
  redis: RedisClient;
  /** Limits get their own connection, so that their deadline-bound commands never queue behind others'. */
  limitsRedis: RedisClient;
  database: Database;
  /** A further connection for a role that must not share one (a blocking or subscribed connection); closed by close(). */
  redisClient(role: RedisRole): RedisClient;
  /** Closes every connection at once, each within the deadline: a server that is down or frozen delays the exit by one deadline. */
  close(): Promise<unknown>;
}

export function wireInfrastructure(config: Config, logger: Logger): Infrastructure {
  const metrics = createMetrics(config.nodeId, { tenantLabels: config.metrics.tenantLabels });
  const cluster = config.redis.clusterNodes !== undefined;
  const keys = new RedisKeys(config.redisPrefix, { cluster });
  const deadlineMs = config.dependencyTimeoutMs;
  const status = new DependencyStatus(logger, { deadlineMs });
  const redisClients: RedisClient[] = [];
  // Every connection to REDIS_URL, or to the Redis Cluster of REDIS_CLUSTER_NODES (jobs/redis-connection.ts).
  const redisClient = (role: RedisRole): RedisClient => {
    const client = createRedisClient(config.redis, role, { owner: config.nodeId, deadlineMs, status });
    redisClients.push(client);
    return client;
  };
  const redis = redisClient("commands");
  const limitsRedis = redisClient("limits");
  const database = createDatabase(config.databaseUrl, { deadlineMs, status });
  return {
    metrics,
    keys,
    cluster,
    deadlineMs,
    status,
    redis,
    limitsRedis,
    database,
    redisClient,
    close: () =>
      Promise.allSettled([
        withDeadline(database.close(), deadlineMs, "postgresql"),
        ...redisClients.map((client) => closeRedis(client, deadlineMs)),
      ]),
  };
}
