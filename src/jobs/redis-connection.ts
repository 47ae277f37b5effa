import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { RedisTarget } from "../settings.js";
import { redactUrl } from "../observability/redact.js";

/** A connection to the deployment's Redis: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

export interface ConnectOptions extends RedisOptions {
  /**
   * The adapter's sharded subscriber: SSUBSCRIBE goes to the node that owns each channel's slot. ioredis only
   * moves those subscriptions when it refreshes the cluster's slot map, which nothing triggers on a connection that
   * only listens (a manual CLUSTER FAILOVER left subscriptions on the demoted master, silently deaf, in our test),
   * so this connection refreshes the map every second.
   */
  shardedSubscriber?: boolean;
}

/** The cluster-level options ioredis takes outside `redisOptions`. */
const CLUSTER_LEVEL = ["enableOfflineQueue", "enableReadyCheck", "lazyConnect"] as const;

export function connectRedis(target: RedisTarget, options: ConnectOptions = {}): RedisClient {
  const { shardedSubscriber, ...redisOptions } = options;
  if (!target.clusterNodes) return new Redis(target.url, redisOptions);
  const clusterOptions: ClusterOptions = {
    redisOptions,
    // A failover takes a few seconds; commands issued meanwhile wait for the new master instead of failing.
    retryDelayOnFailover: 200,
    ...(shardedSubscriber ? { shardedSubscribers: true, slotsRefreshInterval: 1000 } : {}),
  };
  for (const key of CLUSTER_LEVEL)
    if (redisOptions[key] !== undefined) (clusterOptions as Record<string, unknown>)[key] = redisOptions[key];
  return new Cluster([...target.clusterNodes], clusterOptions);
}

/** How the target is named in logs: the URL without its password, or the cluster's seed nodes. */
export function describeRedis(target: RedisTarget): string {
  return target.clusterNodes ? `cluster ${target.clusterNodes.map((n) => `${n.host}:${n.port}`).join(",")}` : redactUrl(target.url);
}
