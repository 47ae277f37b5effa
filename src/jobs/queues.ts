import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { TaskJobData } from "../protocol/tasks.js";
import { RedisKeys } from "./redis-keys.js";

/** What BullMQ holds for a task's job, as the reconciler needs it. */
export type JobState =
  | { kind: "missing" }
  /** Waiting, delayed, prioritized or active: BullMQ still owns it. */
  | { kind: "pending" }
  | { kind: "completed"; result: unknown }
  | { kind: "failed"; reason: string };

export interface EnqueueOptions {
  maxAttempts: number;
  /** 0 (least urgent) … 100 (most urgent). */
  priority: number;
  backoffMs: number;
}

/** Producer side of the task queues. The job id is the task id, which makes enqueueing idempotent. */
export class TaskQueues {
  private readonly queues = new Map<string, Queue<TaskJobData>>();

  constructor(
    private readonly connection: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private queue(tenantId: string, poolId: string): Queue<TaskJobData> {
    const name = RedisKeys.queueName(tenantId, poolId);
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue<TaskJobData>(name, { connection: this.connection, prefix: this.keys.bull });
      queue.on("error", () => undefined); // connection errors surface on the shared client's own listener
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** True when `token` holds the lock of the task's job: the worker presenting it really took the job. */
  async holdsLock(tenantId: string, poolId: string, taskId: string, token: string): Promise<boolean> {
    return (await this.connection.get(`${this.keys.job(tenantId, poolId, taskId)}:lock`)) === token;
  }

  /** The state of many tasks' jobs in one round trip. */
  async jobStates(jobs: ReadonlyArray<{ tenantId: string; poolId: string; id: string }>): Promise<JobState[]> {
    if (jobs.length === 0) return [];
    const pipeline = this.connection.pipeline();
    for (const job of jobs) {
      const queueKey = this.keys.queue(job.tenantId, job.poolId);
      const jobKey = this.keys.job(job.tenantId, job.poolId, job.id);
      pipeline.exists(jobKey);
      pipeline.zscore(`${queueKey}:completed`, job.id);
      pipeline.zscore(`${queueKey}:failed`, job.id);
      pipeline.hmget(jobKey, "returnvalue", "failedReason");
    }
    const replies = (await pipeline.exec()) ?? [];
    return jobs.map((_, i) => {
      const [exists, completed, failed, fields] = replies.slice(i * 4, i * 4 + 4).map(([error, value]) => {
        if (error) throw error;
        return value;
      });
      const [returnvalue = null, failedReason = null] = (fields ?? []) as Array<string | null>;
      if (exists !== 1) return { kind: "missing" };
      if (completed !== null) return { kind: "completed", result: returnvalue === null ? null : (JSON.parse(returnvalue) as unknown) };
      if (failed !== null) return { kind: "failed", reason: failedReason ?? "failed" };
      return { kind: "pending" };
    });
  }

  async enqueue(data: TaskJobData, options: EnqueueOptions): Promise<void> {
    await this.queue(data.tenantId, data.poolId).add(data.type, data, {
      jobId: data.taskId,
      attempts: options.maxAttempts,
      backoff: { type: "exponential", delay: options.backoffMs },
      // BullMQ runs lower numbers first; ours reads the other way round, so that "more" means "sooner".
      priority: 101 - options.priority,
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 24 * 3600, count: 10_000 },
    });
  }

  /** Removes a job that no worker holds yet; false when it is running (its worker is told to abort instead). */
  async remove(tenantId: string, poolId: string, taskId: string): Promise<boolean> {
    try {
      return (await this.queue(tenantId, poolId).remove(taskId)) === 1;
    } catch {
      return false;
    }
  }

  async waitingCount(tenantId: string, poolId: string): Promise<number> {
    return this.queue(tenantId, poolId).getJobCountByTypes("wait", "prioritized", "delayed");
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}

/**
 * Task types a pool can run: the built-ins, plus those its standalone workers registered.
 * Kept in Redis so every node validates submissions the same way.
 */
export class TaskTypeRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private key(tenantId: string, poolId: string): string {
    return this.keys.taskTypes(tenantId, poolId);
  }

  async register(tenantId: string, poolId: string, types: readonly string[]): Promise<void> {
    if (types.length === 0) return;
    await this.redis.sadd(this.key(tenantId, poolId), ...types);
  }

  async has(tenantId: string, poolId: string, type: string): Promise<boolean> {
    return (await this.redis.sismember(this.key(tenantId, poolId), type)) === 1;
  }
}
