import type { RedisClient } from "../jobs/redis-connection.js";
import { DEFAULT_POOL_ID } from "../domains/tenants.js";
import type { CancellationListener } from "./cancellations.js";
import { builtinHandlers } from "./handlers.js";
import { PoolWorker, type PoolWorkerOptions } from "./pool-worker.js";
import { every, type Periodic } from "../every.js";

export interface EmbeddedWorkersOptions extends Pick<
  PoolWorkerOptions,
  "connection" | "keys" | "reporter" | "logger" | "failures" | "concurrency" | "backoffMs" | "lockDurationMs" | "maxPayloadBytes"
> {
  nodeId: string;
  /** Plain command client, for the tenant registry. */
  redis: RedisClient;
  cancellations: CancellationListener;
}

/** How often a node reads the set of tenants other nodes saw, to serve their default pools too. */
const SYNC_INTERVAL_MS = 2000;

/**
 * The worker inside the server process (EMBEDDED_WORKER=true): runs the built-in handlers for every tenant's
 * `default` pool, so one node executes tasks with nothing else started. Queues are per tenant, so it keeps one
 * BullMQ worker per tenant it has seen, and learns of tenants other nodes saw from a Redis set.
 */
export class EmbeddedWorkers {
  private readonly workers = new Map<string, PoolWorker>();
  private timer: Periodic | undefined;
  private closed = false;

  constructor(private readonly options: EmbeddedWorkersOptions) {}

  async start(): Promise<void> {
    await this.sync();
    this.timer = every(SYNC_INTERVAL_MS, () => this.sync(), { name: "embedded worker tenant sync", logger: this.options.logger });
  }

  /** Makes sure this node serves the tenant's default pool. */
  ensure(tenantId: string): void {
    if (this.closed || this.workers.has(tenantId)) return;
    const worker = new PoolWorker({
      ...this.options,
      tenantId,
      poolId: DEFAULT_POOL_ID,
      workerId: `embedded@${this.options.nodeId}`,
      handlers: builtinHandlers,
    });
    this.workers.set(tenantId, worker);
    this.options.cancellations.add(worker);
  }

  private async sync(): Promise<void> {
    try {
      const tenants = await this.options.redis.smembers(this.options.keys.defaultPoolTenants);
      for (const tenantId of tenants) this.ensure(tenantId);
    } catch (error) {
      this.options.failures.report(error, "embedded worker cannot read the tenant registry");
    }
  }

  /**
   * Stops taking jobs and lets running ones finish (graceful shutdown). With `force`, running jobs are not waited
   * for (while Redis is away BullMQ could not record their end anyway): their locks expire and BullMQ hands them
   * to another worker.
   */
  async close(force = false): Promise<void> {
    this.closed = true;
    this.timer?.stop();
    const workers = [...this.workers.values()];
    this.workers.clear();
    for (const worker of workers) this.options.cancellations.delete(worker);
    await Promise.allSettled(workers.map((w) => w.close(force)));
  }
}
