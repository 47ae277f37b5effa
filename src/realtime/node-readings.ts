import type { RedisClient } from "../jobs/redis-connection.js";
import type { RedisKeys } from "../jobs/redis-keys.js";
import { NAMESPACES, type NamespaceName } from "../protocol/namespaces.js";
import type { NodeView } from "../protocol/nodes.js";
import type { SwitchyardServer } from "./types.js";
import type { Logger } from "../observability/logger.js";
import type { TenantDeliveries } from "../observability/tenant-deliveries.js";
import { every, type Periodic } from "../every.js";

export interface NodeReadingsOptions {
  nodeId: string;
  version: string;
}

/** How often each node publishes its reading for GET /api/v1/nodes; a reading lives for TTL_INTERVALS of these. */
const INTERVAL_MS = 2000;

/** A reading not renewed for this many intervals is gone: its node stopped or died. */
const TTL_INTERVALS = 3;

type SocketCounts = Record<NamespaceName, number>;
const noSockets = (): SocketCounts => ({ pools: 0, tasks: 0, workflows: 0 });

/** What a node stores about itself: nothing of any one tenant. */
interface NodeWide {
  nodeId: string;
  startedAt: string;
  version: string;
  at: string;
  totalSockets: number;
  /** Null where the node cannot count deliveries (on a Redis Cluster: the sharded adapter delivers on its own). */
  totalEventsPerSecond: number | null;
}

/** What a node stores for one tenant, in that tenant's own hash. */
interface TenantReading {
  sockets: SocketCounts;
  eventsPerSecond: number | null;
}

/**
 * Every node publishes a small reading about itself to Redis every interval, and `GET /api/v1/nodes` reads the
 * readings of every live node back. Node-wide figures (id, start, version, total sockets and events/s) are in the
 * node's own key; each tenant's figures (its sockets per namespace, the events/s delivered to them) are in a hash
 * of that tenant's, so a reader is handed its own tenant's numbers and nothing else. Keys expire after a few
 * intervals: a node that dies disappears by itself, one that stops withdraws at once.
 */
export class NodeReadings {
  private timer: Periodic | undefined;
  private readonly startedAt = new Date().toISOString();
  private lastAt = Date.now();
  /** The tenants this node wrote a reading for last time: one that has no socket left is withdrawn. */
  private written = new Set<string>();
  private failing = false;

  constructor(
    private readonly io: SwitchyardServer,
    private readonly deliveries: TenantDeliveries | undefined,
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
    private readonly options: NodeReadingsOptions,
  ) {}

  private get ttlMs(): number {
    return INTERVAL_MS * TTL_INTERVALS;
  }

  start(): void {
    void this.publish();
    this.timer = every(INTERVAL_MS, () => this.publish(), { name: "node reading", logger: this.logger });
  }

  /** Stops publishing and withdraws this node's readings. */
  async stop(): Promise<void> {
    this.timer?.stop();
    this.timer = undefined;
    const pipeline = this.redis.pipeline().del(this.keys.nodeReading(this.options.nodeId)).srem(this.keys.nodeIndex, this.options.nodeId);
    for (const tenantId of this.written) pipeline.hdel(this.keys.tenantNodeReadings(tenantId), this.options.nodeId);
    await pipeline
      .exec()
      .catch((error: unknown) => this.logger.warn({ err: (error as Error).message }, "could not withdraw this node's reading"));
  }

  /** This node's sockets, per tenant and namespace (the main namespace serves nothing: not counted). */
  private socketsByTenant(): Map<string, SocketCounts> {
    const byTenant = new Map<string, SocketCounts>();
    for (const namespace of NAMESPACES) {
      for (const socket of this.io.of(`/${namespace}`).sockets.values()) {
        const tenantId = socket.data.principal?.tenantId;
        if (tenantId === undefined) continue;
        let counts = byTenant.get(tenantId);
        if (!counts) byTenant.set(tenantId, (counts = noSockets()));
        counts[namespace]++;
      }
    }
    return byTenant;
  }

  async publish(): Promise<void> {
    const now = Date.now();
    const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
    this.lastAt = now;
    const delivered = this.deliveries?.take();
    const rate = (count: number | undefined): number | null => (this.deliveries ? Math.round(((count ?? 0) / seconds) * 10) / 10 : null);
    const sockets = this.socketsByTenant();
    let totalSockets = 0;
    for (const counts of sockets.values()) totalSockets += counts.pools + counts.tasks + counts.workflows;
    let totalDelivered = 0;
    for (const count of delivered?.values() ?? []) totalDelivered += count;
    const wide: NodeWide = {
      nodeId: this.options.nodeId,
      startedAt: this.startedAt,
      version: this.options.version,
      at: new Date(now).toISOString(),
      totalSockets,
      totalEventsPerSecond: rate(totalDelivered),
    };
    const { nodeId } = this.options;
    const pipeline = this.redis
      .multi()
      .set(this.keys.nodeReading(nodeId), JSON.stringify(wide), "PX", this.ttlMs)
      .sadd(this.keys.nodeIndex, nodeId);
    const tenants = new Set([...sockets.keys(), ...(delivered?.keys() ?? [])]);
    for (const tenantId of tenants) {
      const reading: TenantReading = { sockets: sockets.get(tenantId) ?? noSockets(), eventsPerSecond: rate(delivered?.get(tenantId)) };
      const key = this.keys.tenantNodeReadings(tenantId);
      pipeline.hset(key, nodeId, JSON.stringify(reading)).pexpire(key, this.ttlMs);
    }
    for (const tenantId of this.written) if (!tenants.has(tenantId)) pipeline.hdel(this.keys.tenantNodeReadings(tenantId), nodeId);
    try {
      await pipeline.exec();
      this.written = tenants;
      if (this.failing) this.logger.info("node reading published again");
      this.failing = false;
    } catch (error) {
      // Redis away: the reading expires and the node is missing from the list until Redis is back.
      if (!this.failing) this.logger.warn({ err: (error as Error).message }, "could not publish this node's reading");
      this.failing = true;
    }
  }

  /** Every live node, with `tenantId`'s figures on it (zeros where the tenant has nothing there), oldest first. */
  async read(tenantId: string): Promise<NodeView[]> {
    const ids = await this.redis.smembers(this.keys.nodeIndex);
    if (ids.length === 0) return [];
    const tenantKey = this.keys.tenantNodeReadings(tenantId);
    const [wide, mine] = await Promise.all([this.redis.mget(ids.map((id) => this.keys.nodeReading(id))), this.redis.hgetall(tenantKey)]);
    const dead = ids.filter((_, i) => wide[i] === null);
    if (dead.length > 0) {
      // Forget nodes whose reading expired (a node that died without withdrawing).
      const cleanup = this.redis
        .pipeline()
        .srem(this.keys.nodeIndex, ...dead)
        .hdel(tenantKey, ...dead);
      void cleanup.exec().catch(() => undefined);
    }
    const views: NodeView[] = [];
    wide.forEach((raw, i) => {
      if (raw === null) return;
      const node = JSON.parse(raw) as NodeWide;
      const reading = mine[ids[i]!] === undefined ? undefined : (JSON.parse(mine[ids[i]!]!) as TenantReading);
      views.push({
        ...node,
        self: node.nodeId === this.options.nodeId,
        sockets: reading?.sockets ?? noSockets(),
        eventsPerSecond: reading ? reading.eventsPerSecond : node.totalEventsPerSecond === null ? null : 0,
      });
    });
    return views.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.nodeId.localeCompare(b.nodeId));
  }
}
