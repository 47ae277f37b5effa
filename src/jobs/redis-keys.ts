/**
 * Every Redis key and channel name Switchyard uses, in one place, shared by the server and the standalone
 * worker (in the way BullMQ's QueueKeys names its own). Everything starts with the deployment's REDIS_PREFIX,
 * so deployments sharing a Redis never meet, and a test run can delete exactly what it made.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Socket.IO redis-adapter channels. */
  get adapter(): string {
    return `${this.prefix}:socket.io`;
  }

  /** BullMQ's own prefix: its keys are `<bull>:<queue>:…`. */
  get bull(): string {
    return `${this.prefix}:bull`;
  }

  /**
   * One BullMQ queue per (tenant, pool): pools never take each other's work and a worker's token decides which
   * queue it may serve. Neither tenant nor pool ids may contain '.', so names cannot collide.
   */
  static queueName(tenantId: string, poolId: string): string {
    return `pool.${tenantId}.${poolId}`;
  }

  /** A queue's key prefix inside BullMQ (`…:completed` and `…:failed` are its finished-job sets). */
  queue(tenantId: string, poolId: string): string {
    return `${this.bull}:${RedisKeys.queueName(tenantId, poolId)}`;
  }

  /** A task's job hash (the job id is the task id); BullMQ keeps the job's lock at `<job>:lock`. */
  job(tenantId: string, poolId: string, taskId: string): string {
    return `${this.queue(tenantId, poolId)}:${taskId}`;
  }

  /** Pub/sub channel on which cancellations reach every worker process. */
  get taskCancel(): string {
    return `${this.prefix}:task-cancel`;
  }

  /** Set of tenants whose `default` pool has had work: every node's embedded worker serves them all. */
  get defaultPoolTenants(): string {
    return `${this.prefix}:default-pool-tenants`;
  }

  /** Task types a pool's standalone workers registered. */
  taskTypes(tenantId: string, poolId: string): string {
    return `${this.prefix}:task-types:${tenantId}:${poolId}`;
  }

  /** A worker's presence: its value is the id of the connection that owns it, its TTL the heartbeat timeout. */
  presence(tenantId: string, workerId: string): string {
    return `${this.prefix}:presence:${tenantId}:${workerId}`;
  }

  get retentionLock(): string {
    return `${this.prefix}:retention-lock`;
  }

  get reconcileLock(): string {
    return `${this.prefix}:reconcile-lock`;
  }
}
