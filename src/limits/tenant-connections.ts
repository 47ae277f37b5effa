import { randomBytes } from "node:crypto";
import { defineScripts } from "../jobs/lua.js";
import type { RedisClient } from "../jobs/redis-connection.js";
import type { RedisKeys } from "../jobs/redis-keys.js";
import type { Logger } from "../observability/logger.js";
import { every, type Periodic } from "../every.js";

export interface TenantConnectionsOptions {
  nodeId: string;
  /** Connections one tenant may have across all nodes. */
  limit: number;
  /** How long a node's counts keep counting after its last heartbeat: a dead node's connections are freed then. */
  liveForMs: number;
}

/**
 * Counts every tenant's connections across the cluster, in Redis, so MAX_CONNECTIONS_PER_TENANT holds whatever
 * node a client reaches. Each node keeps its own counts in memory (the truth for its sockets) and mirrors them
 * into one field per node of a per-tenant hash; a Lua script sums the fields of live nodes and admits atomically.
 * No library fits: rate-limiter-flexible counts events in time windows, while this counts what is open now, and
 * must forget a node that died (kill -9) without closing its sockets. So a node is live only while it refreshes
 * its entry in a sorted set (every third of `liveForMs`); past that its counts stop counting. Every write carries
 * the node's whole count (not +1/-1), so a lost or late write is repaired by the next one, and the heartbeat
 * rewrites them all (a Redis that restarted empty has them back within one heartbeat).
 *
 * Without Redis the limit holds per node only (fail open): a Redis outage already stops cross-node delivery, and
 * refusing every connection would turn it into a full outage for dashboards.
 */
export class TenantConnections {
  private readonly local = new Map<string, number>();
  /** Per process, not per NODE_ID: a node restarted under the same id must not inherit its former life's counts. */
  private readonly instance: string;
  private heartbeats: Periodic | undefined;
  private lastWarning = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
    private readonly options: TenantConnectionsOptions,
  ) {
    this.instance = `${options.nodeId}#${randomBytes(4).toString("hex")}`;
    defineScripts(redis);
  }

  get limit(): number {
    return this.options.limit;
  }

  start(): void {
    this.heartbeats = every(Math.max(100, Math.floor(this.options.liveForMs / 3)), () => this.heartbeat(), {
      name: "connection count heartbeat",
      logger: this.logger,
    });
  }

  /** Stops counting this node: its sockets are closed by now, so this only tidies up. */
  async stop(): Promise<void> {
    this.heartbeats?.stop();
    const pipeline = this.redis.pipeline();
    for (const tenantId of this.local.keys()) pipeline.hdel(this.keys.connections(tenantId), this.instance);
    pipeline.zrem(this.keys.connectionNodes, this.instance);
    await pipeline.exec().catch((error: unknown) => this.warn(error, "could not withdraw this node's connection counts"));
  }

  /** Takes a connection slot for the tenant, or says no when the tenant is at its limit. Never throws. */
  async admit(tenantId: string): Promise<boolean> {
    const mine = (this.local.get(tenantId) ?? 0) + 1;
    // Over the limit on this node alone: no need to ask (and it still holds while Redis is away).
    if (mine > this.options.limit) return false;
    this.local.set(tenantId, mine);
    let admitted: boolean;
    try {
      const [ok] = await this.redis.tenantConnectionsAdmit(
        this.keys.connections(tenantId),
        this.keys.connectionNodes,
        this.instance,
        mine,
        this.options.limit,
        this.options.liveForMs,
      );
      admitted = ok === 1;
    } catch (error) {
      this.warn(error, "connection limit checked on this node only");
      return true;
    }
    if (!admitted) this.release(tenantId);
    return admitted;
  }

  /** Gives a slot back (the socket disconnected, or was never admitted after all). */
  release(tenantId: string): void {
    const count = (this.local.get(tenantId) ?? 0) - 1;
    if (count > 0) this.local.set(tenantId, count);
    else this.local.delete(tenantId);
    this.write(tenantId, Math.max(0, count)).catch((error: unknown) =>
      this.warn(error, "could not record a closed connection; the next heartbeat will"),
    );
  }

  private write(tenantId: string, count: number): Promise<unknown> {
    const key = this.keys.connections(tenantId);
    if (count === 0) return this.redis.hdel(key, this.instance);
    return this.redis.pipeline().hset(key, this.instance, count).pexpire(key, this.options.liveForMs).exec();
  }

  /** Keeps this node live and rewrites all its counts (which also renews the tenants' hashes). */
  private async heartbeat(): Promise<void> {
    const pipeline = this.redis.pipeline().tenantConnectionsHeartbeat(this.keys.connectionNodes, this.instance, this.options.liveForMs);
    for (const [tenantId, count] of this.local) {
      const key = this.keys.connections(tenantId);
      pipeline.hset(key, this.instance, count).pexpire(key, this.options.liveForMs);
    }
    await pipeline.exec().catch((error: unknown) => this.warn(error, "connection counts not refreshed"));
  }

  /** Logs a Redis problem at most every 10 s: during an outage every connect would say it again. */
  private warn(error: unknown, message: string): void {
    const now = Date.now();
    if (now - this.lastWarning < 10_000) return;
    this.lastWarning = now;
    this.logger.warn({ err: error instanceof Error ? error.message : String(error) }, message);
  }
}
