import type { PrismaClient } from "../../db/client.js";
import type { FailureReporter } from "../../dependencies/status.js";
import { ClusterTimer } from "../../jobs/cluster-timer.js";
import type { RedisClient } from "../../jobs/redis-connection.js";
import type { Logger } from "../../observability/logger.js";
import type { PoolService } from "./service.js";

/** The most workers autoscaling asks for when a pool sets no maximum (the API's own bound on desiredWorkers). */
const MAX_DESIRED = 10_000;

export interface AutoscaleSettings {
  minWorkers: number | null;
  maxWorkers: number | null;
  targetQueuedPerWorker: number;
}

/** How many workers a pool with `depth` queued and running tasks should have: one per target, within the bounds. */
export function autoscaledWorkers(depth: number, settings: AutoscaleSettings): number {
  const wanted = Math.ceil(Math.max(0, depth) / settings.targetQueuedPerWorker);
  const min = settings.minWorkers ?? 0;
  const max = settings.maxWorkers ?? MAX_DESIRED;
  return Math.max(min, Math.min(max, wanted));
}

export interface PoolAutoscalerOptions {
  /** Where the lock of one pass lives, so one node at a time scales (ClusterTimer). */
  lockKey: string;
  intervalMs: number;
  failures: FailureReporter;
  logger: Logger;
}

/**
 * Sets `desiredWorkers` of the pools that ask for it (`targetQueuedPerWorker` set) from their queue depth, on one
 * node per interval; each change is an ordinary scale, announced as `pool.scaling`. Whatever keeps the pool's size
 * acts on it: the agent on a worker host, or a Kubernetes autoscaler reading the pool (deploy/k8s/). A scale an
 * operator made since the pass read the pool wins (the pass changes nothing then).
 */
export class PoolAutoscaler {
  private readonly timer: ClusterTimer;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly queues: { depth(tenantId: string, poolId: string): Promise<number> },
    private readonly pools: PoolService,
    redis: RedisClient,
    private readonly options: PoolAutoscalerOptions,
  ) {
    this.timer = new ClusterTimer(
      redis,
      options.lockKey,
      options.intervalMs,
      async () => void (await this.pass()),
      options.failures,
      "autoscale pass",
    );
  }

  start(): void {
    this.timer.start();
  }

  stop(): void {
    this.timer.stop();
  }

  /** One pass over the autoscaled pools; returns how many it rescaled. */
  async pass(): Promise<number> {
    const pools = await this.prisma.pool.findMany({
      where: { targetQueuedPerWorker: { not: null } },
      select: { tenantId: true, id: true, desiredWorkers: true, minWorkers: true, maxWorkers: true, targetQueuedPerWorker: true },
    });
    let changed = 0;
    for (const pool of pools) {
      const depth = await this.queues.depth(pool.tenantId, pool.id);
      const desired = autoscaledWorkers(depth, {
        minWorkers: pool.minWorkers,
        maxWorkers: pool.maxWorkers,
        targetQueuedPerWorker: pool.targetQueuedPerWorker!,
      });
      if (desired === pool.desiredWorkers) continue;
      const scaled = await this.pools.scaleTo(pool.tenantId, pool.id, desired, { from: pool.desiredWorkers });
      if (!scaled) continue;
      changed++;
      this.options.logger.info(
        { tenant: pool.tenantId, pool: pool.id, depth, from: pool.desiredWorkers, to: desired },
        "autoscaled a pool",
      );
    }
    return changed;
  }
}
