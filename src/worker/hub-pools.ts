import { RedisKeys } from "../jobs/redis-keys.js";
import type { CancellationListener } from "./cancellations.js";
import { PoolWorker, type PoolWorkerOptions } from "./pool-worker.js";
import { RemoteWorkers, type RemoteChannel } from "./remote-workers.js";

export interface HubPoolsOptions extends Pick<
  PoolWorkerOptions,
  "connection" | "keys" | "reporter" | "logger" | "failures" | "backoffMs" | "lockDurationMs" | "maxPayloadBytes"
> {
  nodeId: string;
  cancellations: CancellationListener;
}

interface HubPool {
  remotes: RemoteWorkers;
  /** Created with the first credit a worker grants: a pool whose workers asked for nothing takes no job. */
  worker?: PoolWorker;
}

/**
 * Jobs through the hub: for every pool with hub-mode workers connected to this node, one BullMQ worker takes the
 * pool's jobs on their behalf (up to the credit they granted), holds and renews each job's lock, claims the task in
 * the name of the worker that runs it, reports every step (in process, as the embedded worker does) and sends the
 * run over the worker's socket. The worker needs no Redis and no database: only the node's address and its token,
 * whose tenant and pool are the only queue it is ever given jobs from.
 *
 * At least once, as with workers that take their jobs from Redis: if this node dies mid-run, the job's lock lapses
 * and BullMQ hands the job to another worker; if the worker goes away, its jobs go back to the queue at once.
 */
export class HubPools {
  private readonly pools = new Map<string, HubPool>();
  private closed = false;

  constructor(private readonly options: HubPoolsOptions) {}

  /** A hub-mode worker connection of (tenant, pool) granted `credit` more runs; returns the credit it has now. */
  grant(tenantId: string, poolId: string, connectionId: string, channel: RemoteChannel, credit: number): number {
    if (this.closed) return 0;
    const key = RedisKeys.queueName(tenantId, poolId);
    let pool = this.pools.get(key);
    if (!pool) {
      const remotes = new RemoteWorkers();
      const created: HubPool = { remotes };
      remotes.onCapacity = (capacity) => created.worker?.setConcurrency(capacity);
      this.pools.set(key, (pool = created));
    }
    pool.remotes.add(connectionId, channel);
    const granted = pool.remotes.grant(connectionId, credit);
    if (!pool.worker) {
      pool.worker = new PoolWorker({
        ...this.options,
        tenantId,
        poolId,
        workerId: `hub@${this.options.nodeId}`,
        handlers: {},
        concurrency: Math.max(1, pool.remotes.capacity),
        executors: pool.remotes,
      });
      this.options.cancellations.add(pool.worker);
    }
    return granted;
  }

  /** The remote workers of the pool, if any are connected here. */
  remotes(tenantId: string, poolId: string): RemoteWorkers | undefined {
    return this.pools.get(RedisKeys.queueName(tenantId, poolId))?.remotes;
  }

  /** The connection closed: its runs go back to the queue; the pool's BullMQ worker stops with its last worker. */
  disconnected(tenantId: string, poolId: string, connectionId: string): void {
    const key = RedisKeys.queueName(tenantId, poolId);
    const pool = this.pools.get(key);
    if (!pool) return;
    pool.remotes.remove(connectionId);
    if (pool.remotes.size > 0) return;
    this.pools.delete(key);
    const worker = pool.worker;
    if (!worker) return;
    this.options.cancellations.delete(worker);
    void worker
      .close()
      .catch((error: unknown) => this.options.failures.report(error, "could not stop a hub pool's worker", { pool: poolId }));
  }

  /** Graceful shutdown: no new jobs; the runs under way finish (their workers are still connected) or go back. */
  async close(force = false): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(
      pools.map(async (pool) => {
        if (!pool.worker) return;
        this.options.cancellations.delete(pool.worker);
        await pool.worker.close(force);
      }),
    );
  }
}
