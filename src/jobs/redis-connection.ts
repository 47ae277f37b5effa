import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { redactUrl } from "../observability/redact.js";

/** A connection to the deployment's Redis: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

/** Where Redis is: every connection of a process is made from this, so one setting moves all of them. */
export interface RedisTarget {
  url: string;
  /** Set in cluster mode: the seed nodes; ioredis discovers the rest of the cluster from them. */
  clusterNodes?: ReadonlyArray<{ host: string; port: number }>;
}

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
  for (const key of CLUSTER_LEVEL) if (redisOptions[key] !== undefined) (clusterOptions as Record<string, unknown>)[key] = redisOptions[key];
  return new Cluster([...target.clusterNodes], clusterOptions);
}

/** `host:port,host:port` → seed nodes; undefined for an empty value. Throws on a malformed entry. */
export function parseClusterNodes(value: string | undefined): Array<{ host: string; port: number }> | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  return value.split(",").map((entry) => {
    const match = /^\s*([^\s:,]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\s*$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) throw new Error(`"${entry.trim()}" is not host:port`);
    return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
  });
}

/** How the target is named in logs: the URL without its password, or the cluster's seed nodes. */
export function describeRedis(target: RedisTarget): string {
  return target.clusterNodes ? `cluster ${target.clusterNodes.map((n) => `${n.host}:${n.port}`).join(",")}` : redactUrl(target.url);
}
